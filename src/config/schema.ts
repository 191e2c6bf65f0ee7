/**
 * Every environment variable Sluice reads, with its default and meaning. The README's configuration
 * table and the deployment manifests are checked against this one list.
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { MIN_BATCH_INTERVAL_MS } from '../job/plan.ts';
import { isUnitlessNumber, parseDuration } from '../util/duration.ts';

/**
 * A duration with a unit (`500ms`, `10s`, `5m`; `0` alone may omit it), at least `minMs`, or more than
 * zero when `positive`. A bare number other than 0 is refused rather than read as milliseconds: in
 * an environment variable `30` is as likely meant as seconds.
 */
const durationOf = ({ minMs = 0, positive = false }: { minMs?: number; positive?: boolean } = {}) =>
  z.string().transform((value, ctx) => {
    const ms = parseDuration(value);
    const issue = (message: string): typeof z.NEVER => {
      ctx.addIssue({ code: 'custom', message });
      return z.NEVER;
    };
    if (ms === undefined) {
      return issue(
        isUnitlessNumber(value)
          ? `"${value}" has no unit (e.g. ${value.trim()}ms or ${value.trim()}s; only 0 may omit it)`
          : `"${value}" is not a duration (e.g. 500ms, 10s, 5m)`,
      );
    }
    if (positive && ms <= 0) return issue(`must be more than 0 (got "${value}")`);
    if (ms < minMs) return issue(`must be at least ${minMs}ms (got ${ms} ms)`);
    return ms;
  });
const positiveInt = z.string().transform((value, ctx) => {
  const n = Number(value);
  if (!/^\d+$/.test(value.trim()) || !Number.isSafeInteger(n) || n <= 0) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a positive integer` });
    return z.NEVER;
  }
  return n;
});
const port = positiveInt.refine((n) => n <= 65535, 'is not a port number (1-65535)');
/**
 * Where other replicas reach this one: an http(s) URL without query or fragment (a path prefix is kept,
 * for a replica behind a proxy), or a bare host — an IP address as Kubernetes' `status.podIP` gives it,
 * or a host name — to which `http://` and SLUICE_HTTP_PORT are added (resolve.ts).
 */
const advertisedUrl = z.string().transform((value, ctx): { url: string } | { host: string } => {
  const text = value.trim();
  const example = 'e.g. http://sluice-0.sluice:8080, or a bare host such as 10.0.0.7';
  const bare = text.replace(/^\[(.*)\]$/, '$1');
  if (
    isIP(bare) !== 0 ||
    /^[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*$/.test(text)
  ) {
    return { host: bare };
  }
  let url: URL | undefined;
  try {
    url = new URL(text);
  } catch {
    url = undefined;
  }
  if (!url || (url.protocol !== 'http:' && url.protocol !== 'https:') || !url.hostname || url.search || url.hash) {
    ctx.addIssue({
      code: 'custom',
      message: `"${value}" is not an http(s) URL without query or fragment (${example})`,
    });
    return z.NEVER;
  }
  if (url.username || url.password) {
    ctx.addIssue({ code: 'custom', message: 'must not carry credentials (the bearer token is SLUICE_HTTP_TOKEN)' });
    return z.NEVER;
  }
  return { url: url.href.replace(/\/+$/, '') };
});
/** RFC 6750's token characters, long enough not to be guessed. */
const bearerToken = z
  .string()
  .regex(
    /^[A-Za-z0-9._~+/-]+=*$/,
    'must be made of A-Z a-z 0-9 - . _ ~ + / (e.g. the output of `openssl rand -hex 32`)',
  )
  .min(16, 'must be at least 16 characters long');
const bool = z
  .enum(['true', 'false', '1', '0', 'yes', 'no'])
  .transform((v) => v === 'true' || v === '1' || v === 'yes');
const bytes = z.string().transform((value, ctx) => {
  const match = /^(\d+)\s*(b|kb|kib|mb|mib|gb|gib)?$/i.exec(value.trim());
  const units: Record<string, number> = { b: 1, kb: 1e3, kib: 1024, mb: 1e6, mib: 1024 ** 2, gb: 1e9, gib: 1024 ** 3 };
  const n = match?.[1] ? Number(match[1]) * (units[(match[2] ?? 'b').toLowerCase()] ?? 1) : NaN;
  if (!Number.isSafeInteger(n) || n <= 0) {
    ctx.addIssue({ code: 'custom', message: `"${value}" is not a size (e.g. 1048576, 64MiB)` });
    return z.NEVER;
  }
  return n;
});

export interface EnvVar {
  /** Shown in the README table. */
  readonly description: string;
  /** Default as it appears in the environment; undefined = no default. */
  readonly default?: string;
  /** How the README shows a default computed at start-up. */
  readonly computedDefault?: string;
  readonly secret?: boolean;
  readonly schema: z.ZodType;
}

export const ENV = {
  KAFKA_BROKERS: {
    description: 'Comma-separated Kafka bootstrap servers (host:port).',
    schema: z
      .string()
      .transform((s) =>
        s
          .split(',')
          .map((b) => b.trim())
          .filter(Boolean),
      )
      .refine((list) => list.length > 0 && list.every((b) => /^[^\s:]+:\d+$/.test(b)), 'must list host:port pairs'),
  },
  KAFKA_CLIENT_ID: { description: 'Kafka client id.', default: 'sluice', schema: z.string().min(1) },
  KAFKA_SSL: { description: 'Use TLS to reach the brokers.', default: 'false', schema: bool },
  KAFKA_SSL_CA_FILE: { description: 'PEM file with the CA certificates to trust (TLS).', schema: z.string().min(1) },
  KAFKA_SSL_CERT_FILE: { description: 'PEM client certificate for mutual TLS.', schema: z.string().min(1) },
  KAFKA_SSL_KEY_FILE: { description: 'PEM private key of the client certificate.', schema: z.string().min(1) },
  KAFKA_SSL_REJECT_UNAUTHORIZED: {
    description: 'Verify the brokers’ certificates.',
    default: 'true',
    schema: bool,
  },
  KAFKA_SASL_MECHANISM: {
    description: 'SASL mechanism: plain, scram-sha-256 or scram-sha-512 (unset: no SASL).',
    schema: z.enum(['plain', 'scram-sha-256', 'scram-sha-512']),
  },
  KAFKA_SASL_USERNAME: { description: 'SASL user name.', schema: z.string().min(1) },
  KAFKA_SASL_PASSWORD: { description: 'SASL password.', secret: true, schema: z.string().min(1) },
  SLUICE_GROUP_ID: {
    description: 'Consumer group id (default: the job name).',
    schema: z.string().regex(/^[a-zA-Z0-9._-]{1,200}$/, 'must match [a-zA-Z0-9._-]{1,200}'),
  },
  SLUICE_SESSION_TIMEOUT: {
    description:
      'Consumer group session timeout: how long a replica that died is waited for before its partitions move (the broker allows 6s to 5m by default).',
    default: '30s',
    schema: durationOf({ positive: true }),
  },
  SLUICE_START_FROM: {
    description: 'Where a partition without a committed offset starts: earliest or latest.',
    default: 'earliest',
    schema: z.enum(['earliest', 'latest']),
  },
  SLUICE_CREATE_TOPICS: {
    description: 'Create missing output, dead-letter, repartition and changelog topics at start-up.',
    default: 'true',
    schema: bool,
  },
  SLUICE_WORKERS: {
    description: 'Worker threads.',
    computedDefault: 'cores − 1, at least 1',
    schema: positiveInt,
  },
  SLUICE_BATCH_INTERVAL: {
    description: 'Overrides the job’s batchInterval.',
    schema: durationOf({ minMs: MIN_BATCH_INTERVAL_MS }),
  },
  SLUICE_MAX_BATCH_RECORDS: { description: 'Overrides the job’s maxBatchRecords.', schema: positiveInt },
  SLUICE_DELIVERY: {
    description: 'Overrides the job’s delivery: exactly-once or at-least-once.',
    schema: z.enum(['exactly-once', 'at-least-once']),
  },
  SLUICE_TRANSACTION_TIMEOUT: {
    description:
      'Exactly-once: how long a batch’s transaction may stay open before the broker aborts it; also about how long a replica that died mid-batch holds read_committed readers of its partitions back.',
    default: '10s',
    schema: durationOf({ minMs: 1000 }),
  },
  SLUICE_BUFFER_MAX_RECORDS: {
    description: 'Records the receiver may buffer across all partitions before pausing them.',
    default: '50000',
    schema: positiveInt,
  },
  SLUICE_BUFFER_MAX_BYTES: {
    description:
      'Bytes the receiver may buffer across all partitions before pausing them, as held: packed records and their index.',
    default: '32MiB',
    schema: bytes,
  },
  SLUICE_WORKER_HEAP: {
    description:
      'Heap limit of each worker thread (its V8 old generation): its tasks’ state and a batch’s records live there. A worker that reaches it is replaced and reported (`SLUICE_WORKER_CRASHED`, out of memory).',
    default: '256MiB',
    schema: bytes,
  },
  SLUICE_MAX_RECORD_BYTES: {
    description: 'Records larger than this (key + value) go to the dead-letter topic.',
    default: '1MiB',
    schema: bytes,
  },
  SLUICE_STARTUP_TIMEOUT: {
    description:
      'How long start-up retries retriable Kafka failures (brokers not up yet, topic metadata still propagating) before it gives up; configuration mistakes stop it at once.',
    default: '60s',
    schema: durationOf({ positive: true }),
  },
  SLUICE_RECORD_TIMEOUT: {
    description:
      'How long user code may run on one record before its worker thread is replaced; a record that hangs or kills its worker twice is dead-lettered.',
    default: '30s',
    schema: durationOf({ minMs: 100 }),
  },
  SLUICE_SHUTDOWN_TIMEOUT: {
    description: 'Time allowed for a graceful stop (finish the batch, publish, commit, leave the group).',
    default: '30s',
    schema: durationOf({ positive: true }),
  },
  SLUICE_HTTP_HOST: { description: 'Address the HTTP server binds.', default: '0.0.0.0', schema: z.string().min(1) },
  SLUICE_HTTP_PORT: {
    description: 'Port of the HTTP server (health, metrics, status page).',
    default: '8080',
    schema: port,
  },
  SLUICE_HTTP_ADVERTISED_URL: {
    description:
      'Where the other replicas reach this one’s HTTP server, advertised in the consumer group: a request for a key another replica owns is proxied there. A URL, or a bare host (an IP, e.g. Kubernetes’ `status.podIP`) to which `http://` and the port are added.',
    computedDefault: '`http://<host name>:<SLUICE_HTTP_PORT>`',
    schema: advertisedUrl,
  },
  SLUICE_HTTP_TOKEN: {
    description:
      'When set, every `/api/*` route (and `/metrics` with SLUICE_METRICS_REQUIRE_TOKEN) requires `Authorization: Bearer <token>`; `/healthz` and `/readyz` stay open. At least 16 characters.',
    secret: true,
    schema: bearerToken,
  },
  SLUICE_METRICS_REQUIRE_TOKEN: {
    description: '`/metrics` requires SLUICE_HTTP_TOKEN too (the scraper then sends it as a bearer token).',
    default: 'false',
    schema: bool,
  },
  SLUICE_LOG_LEVEL: {
    description: 'Log level: fatal, error, warn, info, debug, trace or silent.',
    default: 'info',
    schema: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']),
  },
  SLUICE_STALL_FACTOR: {
    description: '/healthz fails when no batch completed for this many batch intervals while records wait.',
    default: '20',
    schema: positiveInt,
  },
  SLUICE_BATCH_HISTORY: {
    description: 'Recent batches kept for /api/batches and the status page.',
    default: '600',
    schema: positiveInt,
  },
} as const satisfies Record<string, EnvVar>;

export type EnvName = keyof typeof ENV;
