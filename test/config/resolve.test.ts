/** Configuration from the environment: defaults, one error listing every problem, secrets, freezing. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, hostname, tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import { redactConfig, resolveConfig, type ResolvedConfig } from '../../src/config/resolve.ts';
import { ConfigError, isSluiceError } from '../../src/errors.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'sluice-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function pem(name: string, text: string): string {
  const file = path.join(dir, name);
  writeFileSync(file, text);
  return file;
}
const CA = pem('ca.pem', '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n');
const CERT = pem('cert.pem', '-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n');
const KEY = pem('key.pem', '-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n');
const MISSING = path.join(dir, 'does-not-exist.pem');

const base = { KAFKA_BROKERS: 'kafka:9092' };

function configError(env: Record<string, string | undefined>): ConfigError {
  try {
    resolveConfig(env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    return error as ConfigError;
  }
  throw new Error('expected resolveConfig to throw');
}

describe('resolveConfig', () => {
  test('defaults: only KAFKA_BROKERS is required', () => {
    const config = resolveConfig(base);
    expect(config).toEqual({
      kafka: { brokers: ['kafka:9092'], clientId: 'sluice', ssl: false, sasl: undefined },
      groupId: undefined,
      startFrom: 'earliest',
      createTopics: true,
      sessionTimeoutMs: 30_000,
      workers: Math.max(1, availableParallelism() - 1),
      batchIntervalMs: undefined,
      maxBatchRecords: undefined,
      delivery: undefined,
      transactionTimeoutMs: 10_000,
      buffer: { maxRecords: 50_000, maxBytes: 32 * 1024 * 1024 },
      maxRecordBytes: 1024 * 1024,
      workerHeapBytes: 256 * 1024 * 1024,
      shutdownTimeoutMs: 30_000,
      startupTimeoutMs: 60_000,
      recordTimeoutMs: 30_000,
      http: {
        host: '0.0.0.0',
        port: 8080,
        advertisedUrl: `http://${hostname()}:8080`,
        token: undefined,
        metricsRequireToken: false,
      },
      logLevel: 'info',
      stallFactor: 20,
      batchHistory: 600,
    } satisfies ResolvedConfig);
  });

  test('parses every kind of value', () => {
    const config = resolveConfig({
      KAFKA_BROKERS: ' a:1 , b:2,,c:3 ',
      KAFKA_CLIENT_ID: 'my-client',
      SLUICE_GROUP_ID: 'group.1_x-y',
      SLUICE_START_FROM: 'latest',
      SLUICE_CREATE_TOPICS: 'no',
      SLUICE_WORKERS: '3',
      SLUICE_BATCH_INTERVAL: '250ms',
      SLUICE_MAX_BATCH_RECORDS: '1000',
      SLUICE_DELIVERY: 'at-least-once',
      SLUICE_TRANSACTION_TIMEOUT: '2m',
      SLUICE_BUFFER_MAX_RECORDS: '5000',
      SLUICE_BUFFER_MAX_BYTES: '2kib',
      SLUICE_MAX_RECORD_BYTES: '1000',
      SLUICE_SHUTDOWN_TIMEOUT: '1500ms',
      SLUICE_HTTP_HOST: '127.0.0.1',
      SLUICE_HTTP_PORT: '65535',
      SLUICE_LOG_LEVEL: 'debug',
      SLUICE_STALL_FACTOR: '5',
      SLUICE_BATCH_HISTORY: '10',
    });
    expect(config.kafka.brokers).toEqual(['a:1', 'b:2', 'c:3']);
    expect(config.kafka.clientId).toBe('my-client');
    expect(config.groupId).toBe('group.1_x-y');
    expect(config.startFrom).toBe('latest');
    expect(config.createTopics).toBe(false);
    expect(config.workers).toBe(3);
    expect(config.batchIntervalMs).toBe(250);
    expect(config.maxBatchRecords).toBe(1000);
    expect(config.delivery).toBe('at-least-once');
    expect(config.transactionTimeoutMs).toBe(120_000);
    expect(config.buffer).toEqual({ maxRecords: 5000, maxBytes: 2048 });
    expect(config.maxRecordBytes).toBe(1000);
    expect(config.shutdownTimeoutMs).toBe(1500);
    expect(config.http).toEqual({
      host: '127.0.0.1',
      port: 65_535,
      advertisedUrl: `http://${hostname()}:65535`,
      token: undefined,
      metricsRequireToken: false,
    });
    expect(config.logLevel).toBe('debug');
    expect(config.stallFactor).toBe(5);
    expect(config.batchHistory).toBe(10);
  });

  test('an empty variable counts as unset (its default applies)', () => {
    const config = resolveConfig({ ...base, SLUICE_HTTP_PORT: '', SLUICE_LOG_LEVEL: '', SLUICE_GROUP_ID: '' });
    expect(config.http.port).toBe(8080);
    expect(config.logLevel).toBe('info');
    expect(config.groupId).toBeUndefined();
  });

  test('KAFKA_BROKERS missing or empty is reported', () => {
    for (const env of [{}, { KAFKA_BROKERS: '' }]) {
      expect(configError(env).issues).toEqual(['KAFKA_BROKERS is required (e.g. KAFKA_BROKERS=kafka:9092)']);
    }
  });

  test('every invalid value is reported in ONE ConfigError naming each variable', () => {
    const invalid = {
      KAFKA_BROKERS: 'no-port-here',
      KAFKA_SSL: 'maybe',
      SLUICE_GROUP_ID: 'has spaces',
      SLUICE_START_FROM: 'middle',
      SLUICE_CREATE_TOPICS: 'perhaps',
      SLUICE_WORKERS: '0',
      SLUICE_BATCH_INTERVAL: 'soon',
      SLUICE_MAX_BATCH_RECORDS: '-1',
      SLUICE_DELIVERY: 'twice',
      SLUICE_TRANSACTION_TIMEOUT: 'forever',
      SLUICE_BUFFER_MAX_RECORDS: '1.5',
      SLUICE_BUFFER_MAX_BYTES: 'lots',
      SLUICE_MAX_RECORD_BYTES: '0',
      SLUICE_SHUTDOWN_TIMEOUT: '-5s',
      SLUICE_HTTP_PORT: '70000',
      SLUICE_LOG_LEVEL: 'loud',
      SLUICE_STALL_FACTOR: 'ten',
      SLUICE_BATCH_HISTORY: '1e3',
    };
    const error = configError(invalid);
    const names = Object.keys(invalid);
    expect(error.issues).toHaveLength(names.length);
    for (const name of names) {
      expect(error.issues.filter((i) => i.startsWith(`${name} `))).toHaveLength(1);
      expect(error.message).toContain(name);
    }
    expect(error.code).toBe('SLUICE_CONFIG_INVALID');
    expect(isSluiceError(error)).toBe(true);
    expect(error.issues).toContain('KAFKA_BROKERS must list host:port pairs');
    expect(error.issues).toContain('SLUICE_WORKERS "0" is not a positive integer');
    expect(error.issues).toContain('SLUICE_HTTP_PORT is not a port number (1-65535)');
    expect(error.issues).toContain('SLUICE_BATCH_INTERVAL "soon" is not a duration (e.g. 500ms, 10s, 5m)');
    expect(error.issues).toContain('SLUICE_BUFFER_MAX_BYTES "lots" is not a size (e.g. 1048576, 64MiB)');
    expect(error.message).toBe(`invalid configuration: ${error.issues.join('; ')}`);
  });

  test('durations need a unit (0 alone may omit it) and respect the minimum the job option has', () => {
    expect(resolveConfig({ ...base, SLUICE_BATCH_INTERVAL: '10ms' }).batchIntervalMs).toBe(10);
    const error = configError({
      ...base,
      SLUICE_BATCH_INTERVAL: '0',
      SLUICE_SHUTDOWN_TIMEOUT: '0',
      SLUICE_SESSION_TIMEOUT: '30',
    });
    expect(error.issues).toEqual([
      'SLUICE_SESSION_TIMEOUT "30" has no unit (e.g. 30ms or 30s; only 0 may omit it)',
      'SLUICE_BATCH_INTERVAL must be at least 10ms (got 0 ms)',
      'SLUICE_SHUTDOWN_TIMEOUT must be more than 0 (got "0")',
    ]);
    expect(configError({ ...base, SLUICE_BATCH_INTERVAL: '5ms' }).issues).toEqual([
      'SLUICE_BATCH_INTERVAL must be at least 10ms (got 5 ms)',
    ]);
    expect(configError({ ...base, SLUICE_SESSION_TIMEOUT: '0s' }).issues).toEqual([
      'SLUICE_SESSION_TIMEOUT must be more than 0 (got "0s")',
    ]);
  });

  test('delivery: either mode by its exact name, overriding the job; unset leaves the job’s', () => {
    expect(resolveConfig({ ...base, SLUICE_DELIVERY: 'exactly-once' }).delivery).toBe('exactly-once');
    expect(resolveConfig({ ...base, SLUICE_DELIVERY: 'at-least-once' }).delivery).toBe('at-least-once');
    expect(resolveConfig({ ...base, SLUICE_DELIVERY: '' }).delivery).toBeUndefined();
    for (const wrong of ['Exactly-Once', 'at_least_once', 'none']) {
      const issues = configError({ ...base, SLUICE_DELIVERY: wrong }).issues;
      expect(issues).toHaveLength(1);
      expect(issues[0]).toMatch(/^SLUICE_DELIVERY .*exactly-once.*at-least-once/);
    }
  });

  test('the transaction timeout is a duration of at least 1s', () => {
    expect(resolveConfig({ ...base, SLUICE_TRANSACTION_TIMEOUT: '1s' }).transactionTimeoutMs).toBe(1_000);
    expect(resolveConfig({ ...base, SLUICE_TRANSACTION_TIMEOUT: '90s' }).transactionTimeoutMs).toBe(90_000);
    expect(configError({ ...base, SLUICE_TRANSACTION_TIMEOUT: '999ms' }).issues).toEqual([
      'SLUICE_TRANSACTION_TIMEOUT must be at least 1000ms (got 999 ms)',
    ]);
    expect(configError({ ...base, SLUICE_TRANSACTION_TIMEOUT: '20' }).issues).toEqual([
      'SLUICE_TRANSACTION_TIMEOUT "20" has no unit (e.g. 20ms or 20s; only 0 may omit it)',
    ]);
  });

  describe('SASL', () => {
    test('a mechanism with user and password configures SASL', () => {
      const config = resolveConfig({
        ...base,
        KAFKA_SASL_MECHANISM: 'scram-sha-512',
        KAFKA_SASL_USERNAME: 'alice',
        KAFKA_SASL_PASSWORD: 's3cret',
      });
      expect(config.kafka.sasl).toEqual({ mechanism: 'scram-sha-512', username: 'alice', password: 's3cret' });
    });

    test('a mechanism requires both user and password', () => {
      expect(configError({ ...base, KAFKA_SASL_MECHANISM: 'plain' }).issues).toEqual([
        'KAFKA_SASL_USERNAME is required when KAFKA_SASL_MECHANISM is set',
        'KAFKA_SASL_PASSWORD is required when KAFKA_SASL_MECHANISM is set',
      ]);
      expect(configError({ ...base, KAFKA_SASL_MECHANISM: 'plain', KAFKA_SASL_USERNAME: 'u' }).issues).toEqual([
        'KAFKA_SASL_PASSWORD is required when KAFKA_SASL_MECHANISM is set',
      ]);
    });

    test('user or password without a mechanism is reported', () => {
      expect(configError({ ...base, KAFKA_SASL_PASSWORD: 'p' }).issues).toEqual([
        'KAFKA_SASL_MECHANISM is required when KAFKA_SASL_USERNAME or KAFKA_SASL_PASSWORD is set',
      ]);
    });

    test('an unknown mechanism is reported by name', () => {
      const issues = configError({
        ...base,
        KAFKA_SASL_MECHANISM: 'gssapi',
        KAFKA_SASL_USERNAME: 'u',
        KAFKA_SASL_PASSWORD: 'p',
      }).issues;
      expect(issues.some((i) => i.startsWith('KAFKA_SASL_MECHANISM '))).toBe(true);
    });
  });

  describe('TLS', () => {
    test('KAFKA_SSL=true without files turns TLS on with verification', () => {
      expect(resolveConfig({ ...base, KAFKA_SSL: 'true' }).kafka.ssl).toEqual({ rejectUnauthorized: true });
      expect(resolveConfig({ ...base, KAFKA_SSL: '1', KAFKA_SSL_REJECT_UNAUTHORIZED: 'false' }).kafka.ssl).toEqual({
        rejectUnauthorized: false,
      });
    });

    test('PEM files are read; a CA file alone turns TLS on', () => {
      expect(resolveConfig({ ...base, KAFKA_SSL_CA_FILE: CA }).kafka.ssl).toEqual({
        ca: '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n',
        rejectUnauthorized: true,
      });
      const mtls = resolveConfig({
        ...base,
        KAFKA_SSL_CA_FILE: CA,
        KAFKA_SSL_CERT_FILE: CERT,
        KAFKA_SSL_KEY_FILE: KEY,
      });
      expect(mtls.kafka.ssl).toEqual({
        ca: '-----BEGIN CERTIFICATE-----\nCA\n-----END CERTIFICATE-----\n',
        cert: '-----BEGIN CERTIFICATE-----\nCLIENT\n-----END CERTIFICATE-----\n',
        key: '-----BEGIN PRIVATE KEY-----\nSECRET\n-----END PRIVATE KEY-----\n',
        rejectUnauthorized: true,
      });
    });

    test('a certificate requires a key, and a key requires a certificate', () => {
      expect(configError({ ...base, KAFKA_SSL_CERT_FILE: CERT }).issues).toEqual([
        'KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE must be set together',
      ]);
      expect(configError({ ...base, KAFKA_SSL_KEY_FILE: KEY }).issues).toEqual([
        'KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE must be set together',
      ]);
    });

    test('an unreadable CA file is reported with its path and reason', () => {
      expect(configError({ ...base, KAFKA_SSL_CA_FILE: MISSING }).issues).toEqual([
        `KAFKA_SSL_CA_FILE cannot read "${MISSING}": ENOENT`,
      ]);
      expect(configError({ ...base, KAFKA_SSL_CA_FILE: dir }).issues).toEqual([
        `KAFKA_SSL_CA_FILE cannot read "${dir}": EISDIR`,
      ]);
    });

    test('an unreadable key is reported once, not also as "cert without key"', () => {
      expect(configError({ ...base, KAFKA_SSL_CERT_FILE: CERT, KAFKA_SSL_KEY_FILE: MISSING }).issues).toEqual([
        `KAFKA_SSL_KEY_FILE cannot read "${MISSING}": ENOENT`,
      ]);
    });

    test('an unreadable CA does not hide an unrelated problem: a certificate without a key', () => {
      expect(configError({ ...base, KAFKA_SSL_CA_FILE: MISSING, KAFKA_SSL_CERT_FILE: CERT }).issues).toEqual([
        `KAFKA_SSL_CA_FILE cannot read "${MISSING}": ENOENT`,
        'KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE must be set together',
      ]);
    });
  });

  test('redactConfig hides password, key, cert and ca, and nothing else', () => {
    const config = resolveConfig({
      ...base,
      KAFKA_SASL_MECHANISM: 'plain',
      KAFKA_SASL_USERNAME: 'alice',
      KAFKA_SASL_PASSWORD: 's3cret',
      KAFKA_SSL_CA_FILE: CA,
      KAFKA_SSL_CERT_FILE: CERT,
      KAFKA_SSL_KEY_FILE: KEY,
    });
    const redacted = redactConfig(config) as ResolvedConfig;
    expect(redacted.kafka.sasl).toEqual({ mechanism: 'plain', username: 'alice', password: '[redacted]' });
    expect(redacted.kafka.ssl).toEqual({
      ca: '[redacted]',
      cert: '[redacted]',
      key: '[redacted]',
      rejectUnauthorized: true,
    });
    const text = JSON.stringify(redacted);
    for (const secret of ['s3cret', 'SECRET', 'CLIENT', 'BEGIN']) expect(text).not.toContain(secret);
    expect(redacted.http).toEqual(config.http);
    expect(redacted.kafka.brokers).toEqual(['kafka:9092']);
    // The original is untouched.
    expect(config.kafka.sasl?.password).toBe('s3cret');
  });

  test('redactConfig on a config without secrets changes nothing', () => {
    const config = resolveConfig(base);
    expect(redactConfig(config)).toEqual(JSON.parse(JSON.stringify(config)));
  });

  test('the result is deep-frozen', () => {
    const config = resolveConfig({
      ...base,
      KAFKA_SSL: 'true',
      KAFKA_SASL_MECHANISM: 'plain',
      KAFKA_SASL_USERNAME: 'u',
      KAFKA_SASL_PASSWORD: 'p',
    });
    for (const part of [config, config.kafka, config.kafka.brokers, config.kafka.ssl, config.kafka.sasl]) {
      expect(Object.isFrozen(part)).toBe(true);
    }
    expect(Object.isFrozen(config.buffer)).toBe(true);
    expect(Object.isFrozen(config.http)).toBe(true);
    expect(() => {
      (config as { workers: number }).workers = 99;
    }).toThrow(TypeError);
    expect(() => {
      (config.kafka.brokers as string[]).push('x:1');
    }).toThrow(TypeError);
    expect(() => {
      (config.http as { port: number }).port = 1;
    }).toThrow(TypeError);
    expect(config.workers).toBe(Math.max(1, availableParallelism() - 1));
  });

  test('does not read process.env when given an environment', () => {
    const saved = process.env['SLUICE_HTTP_PORT'];
    process.env['SLUICE_HTTP_PORT'] = '1234';
    try {
      expect(resolveConfig(base).http.port).toBe(8080);
    } finally {
      if (saved === undefined) delete process.env['SLUICE_HTTP_PORT'];
      else process.env['SLUICE_HTTP_PORT'] = saved;
    }
  });
});
