/**
 * The one place that reads `process.env`: validates every variable once, reports all problems in
 * one error naming each variable, and returns a deep-frozen configuration.
 */
import { readFileSync } from 'node:fs';
import { availableParallelism, hostname } from 'node:os';
import { ConfigError } from '../errors.ts';
import { ENV, type EnvName } from './schema.ts';

export interface KafkaConfig {
  readonly brokers: readonly string[];
  readonly clientId: string;
  readonly ssl:
    | false
    | { readonly ca?: string; readonly cert?: string; readonly key?: string; readonly rejectUnauthorized: boolean };
  readonly sasl:
    | undefined
    | {
        readonly mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512';
        readonly username: string;
        readonly password: string;
      };
}

export interface ResolvedConfig {
  readonly kafka: KafkaConfig;
  readonly groupId: string | undefined;
  readonly sessionTimeoutMs: number;
  readonly startFrom: 'earliest' | 'latest';
  readonly createTopics: boolean;
  readonly workers: number;
  readonly batchIntervalMs: number | undefined;
  readonly maxBatchRecords: number | undefined;
  /** Overrides the job's delivery. */
  readonly delivery: 'exactly-once' | 'at-least-once' | undefined;
  /** Exactly-once: how long a transaction may stay open before the broker aborts it. */
  readonly transactionTimeoutMs: number;
  readonly buffer: { readonly maxRecords: number; readonly maxBytes: number };
  readonly maxRecordBytes: number;
  /** Heap limit (V8 old generation) of each worker thread, in bytes. */
  readonly workerHeapBytes: number;
  readonly shutdownTimeoutMs: number;
  /** Start-up retries retriable Kafka failures for this long. */
  readonly startupTimeoutMs: number;
  /** User code on one record longer than this: the worker is hung (replaced, the record suspected). */
  readonly recordTimeoutMs: number;
  readonly http: {
    readonly host: string;
    readonly port: number;
    /** Where the other replicas reach this one (advertised in the consumer group), without a trailing slash. */
    readonly advertisedUrl: string;
    /** Bearer token every `/api/*` route requires; undefined: the API is open. */
    readonly token: string | undefined;
    /** `/metrics` requires the token too. */
    readonly metricsRequireToken: boolean;
  };
  readonly logLevel: 'fatal' | 'error' | 'warn' | 'info' | 'debug' | 'trace' | 'silent';
  readonly stallFactor: number;
  readonly batchHistory: number;
}

function deepFreeze<T>(value: T): T {
  if (value && typeof value === 'object') {
    for (const v of Object.values(value)) deepFreeze(v);
    Object.freeze(value);
  }
  return value;
}

export function resolveConfig(env: Readonly<Record<string, string | undefined>> = process.env): ResolvedConfig {
  const issues: string[] = [];
  const values: Partial<Record<EnvName, unknown>> = {};
  for (const [name, spec] of Object.entries(ENV) as Array<[EnvName, (typeof ENV)[EnvName]]>) {
    const raw = env[name] !== undefined && env[name] !== '' ? env[name] : 'default' in spec ? spec.default : undefined;
    if (raw === undefined) continue;
    const parsed = spec.schema.safeParse(raw);
    if (parsed.success) values[name] = parsed.data;
    else issues.push(`${name} ${parsed.error.issues.map((i) => i.message).join(', ')}`);
  }
  if (values.KAFKA_BROKERS === undefined && !issues.some((i) => i.startsWith('KAFKA_BROKERS'))) {
    issues.push('KAFKA_BROKERS is required (e.g. KAFKA_BROKERS=kafka:9092)');
  }
  const mechanism = values.KAFKA_SASL_MECHANISM as 'plain' | 'scram-sha-256' | 'scram-sha-512' | undefined;
  if (mechanism) {
    if (values.KAFKA_SASL_USERNAME === undefined)
      issues.push('KAFKA_SASL_USERNAME is required when KAFKA_SASL_MECHANISM is set');
    if (values.KAFKA_SASL_PASSWORD === undefined)
      issues.push('KAFKA_SASL_PASSWORD is required when KAFKA_SASL_MECHANISM is set');
  } else if (values.KAFKA_SASL_USERNAME !== undefined || values.KAFKA_SASL_PASSWORD !== undefined) {
    issues.push('KAFKA_SASL_MECHANISM is required when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set');
  }
  const readPem = (name: 'KAFKA_SSL_CA_FILE' | 'KAFKA_SSL_CERT_FILE' | 'KAFKA_SSL_KEY_FILE'): string | undefined => {
    const file = values[name] as string | undefined;
    if (file === undefined) return undefined;
    try {
      return readFileSync(file, 'utf8');
    } catch (error) {
      issues.push(`${name} cannot read "${file}": ${(error as NodeJS.ErrnoException).code ?? String(error)}`);
      return undefined;
    }
  };
  const ca = readPem('KAFKA_SSL_CA_FILE');
  const cert = readPem('KAFKA_SSL_CERT_FILE');
  const key = readPem('KAFKA_SSL_KEY_FILE');
  if ((values.KAFKA_SSL_CERT_FILE === undefined) !== (values.KAFKA_SSL_KEY_FILE === undefined)) {
    issues.push('KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE must be set together');
  }
  if (values.SLUICE_METRICS_REQUIRE_TOKEN === true && values.SLUICE_HTTP_TOKEN === undefined) {
    issues.push('SLUICE_METRICS_REQUIRE_TOKEN needs SLUICE_HTTP_TOKEN to be set');
  }
  if (issues.length > 0) throw new ConfigError(issues);

  const sslOn = values.KAFKA_SSL === true || ca !== undefined || cert !== undefined;
  const config: ResolvedConfig = {
    kafka: {
      brokers: values.KAFKA_BROKERS as string[],
      clientId: values.KAFKA_CLIENT_ID as string,
      ssl: sslOn
        ? {
            ...(ca !== undefined ? { ca } : {}),
            ...(cert !== undefined ? { cert } : {}),
            ...(key !== undefined ? { key } : {}),
            rejectUnauthorized: values.KAFKA_SSL_REJECT_UNAUTHORIZED as boolean,
          }
        : false,
      sasl: mechanism
        ? { mechanism, username: values.KAFKA_SASL_USERNAME as string, password: values.KAFKA_SASL_PASSWORD as string }
        : undefined,
    },
    groupId: values.SLUICE_GROUP_ID as string | undefined,
    sessionTimeoutMs: values.SLUICE_SESSION_TIMEOUT as number,
    startFrom: values.SLUICE_START_FROM as 'earliest' | 'latest',
    createTopics: values.SLUICE_CREATE_TOPICS as boolean,
    workers: (values.SLUICE_WORKERS as number | undefined) ?? Math.max(1, availableParallelism() - 1),
    batchIntervalMs: values.SLUICE_BATCH_INTERVAL as number | undefined,
    maxBatchRecords: values.SLUICE_MAX_BATCH_RECORDS as number | undefined,
    delivery: values.SLUICE_DELIVERY as ResolvedConfig['delivery'],
    transactionTimeoutMs: values.SLUICE_TRANSACTION_TIMEOUT as number,
    buffer: {
      maxRecords: values.SLUICE_BUFFER_MAX_RECORDS as number,
      maxBytes: values.SLUICE_BUFFER_MAX_BYTES as number,
    },
    maxRecordBytes: values.SLUICE_MAX_RECORD_BYTES as number,
    workerHeapBytes: values.SLUICE_WORKER_HEAP as number,
    shutdownTimeoutMs: values.SLUICE_SHUTDOWN_TIMEOUT as number,
    startupTimeoutMs: values.SLUICE_STARTUP_TIMEOUT as number,
    recordTimeoutMs: values.SLUICE_RECORD_TIMEOUT as number,
    http: {
      host: values.SLUICE_HTTP_HOST as string,
      port: values.SLUICE_HTTP_PORT as number,
      advertisedUrl: advertisedUrlOf(
        values.SLUICE_HTTP_ADVERTISED_URL as { url: string } | { host: string } | undefined,
        values.SLUICE_HTTP_PORT as number,
      ),
      token: values.SLUICE_HTTP_TOKEN as string | undefined,
      metricsRequireToken: values.SLUICE_METRICS_REQUIRE_TOKEN as boolean,
    },
    logLevel: values.SLUICE_LOG_LEVEL as ResolvedConfig['logLevel'],
    stallFactor: values.SLUICE_STALL_FACTOR as number,
    batchHistory: values.SLUICE_BATCH_HISTORY as number,
  };
  return deepFreeze(config);
}

/** SLUICE_HTTP_ADVERTISED_URL as given (a bare host gets `http://` and the port), or this host's name and the port. */
function advertisedUrlOf(given: { url: string } | { host: string } | undefined, port: number): string {
  if (given && 'url' in given) return given.url;
  const host = given?.host ?? hostname();
  return `http://${host.includes(':') ? `[${host}]` : host}:${port}`;
}

/** The configuration as it may be logged: secrets and key material replaced. */
export function redactConfig(config: ResolvedConfig): unknown {
  return JSON.parse(
    JSON.stringify(config, (k, v: unknown) => {
      if (k === 'password' || k === 'key' || k === 'cert' || k === 'ca' || k === 'token')
        return v === undefined ? v : '[redacted]';
      return v;
    }),
  );
}
