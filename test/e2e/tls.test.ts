/**
 * TLS against a broker of its own with an SSL listener that requires client certificates (started
 * here, so the test runs whatever cluster KAFKA_BROKERS names): with the CA and a client certificate
 * the real service starts and processes records end to end over TLS; a wrong CA, a missing client
 * certificate and an unreadable CA file each stop start-up with exit code 1 and one line on stderr
 * naming the variable to fix, within a bounded time.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, test } from '@jest/globals';
import { type ConnectionOptions as TlsOptions } from 'node:tls';
import { Kafka, KafkaJSConnectionError, KafkaJSNumberOfRetriesExceeded, logLevel } from 'kafkajs';
import { startLocalBroker, type LocalBroker, type LocalBrokerTls } from '../../scripts/kafka/local-broker.ts';
import { classifyKafkaError } from '../../src/kafka/errors.ts';
import { onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { startService, type RunningService } from '../support/service.ts';

let broker: LocalBroker;
let files: LocalBrokerTls;
let ssl: string;

beforeAll(async () => {
  broker = await startLocalBroker({ tls: true, heap: '384m' });
  onCleanup(() => broker.stop());
  files = broker.tls!;
  ssl = broker.sslBrokers!;
}, 120_000);

const pem = (file: string): string => readFileSync(file, 'utf8');

/** A kafkajs client of the TLS listener; `retries: 0` so a failure shows kafkajs's own wrapping at once. */
function tlsKafka(tls: TlsOptions, retries = 5): Kafka {
  return new Kafka({
    clientId: 'sluice-tls-test',
    brokers: [ssl],
    ssl: tls,
    logLevel: logLevel.NOTHING,
    retry: { retries, initialRetryTime: 100, maxRetryTime: 1000 },
  });
}

const mutual = (): TlsOptions => ({
  ca: pem(files.caFile),
  cert: pem(files.certFile),
  key: pem(files.keyFile),
});

async function connectError(tls: TlsOptions): Promise<unknown> {
  const admin = tlsKafka(tls, 0).admin();
  try {
    await admin.connect();
    await admin.describeCluster();
    return undefined;
  } catch (error) {
    return error;
  } finally {
    await admin.disconnect().catch(() => undefined);
  }
}

/** The service's stderr, collected from the start (listening before any output can arrive). */
function stderrOf(service: RunningService): () => string {
  let text = '';
  service.process.stderr?.on('data', (d: Buffer) => (text += d.toString()));
  return () => text;
}

const TLS_ENV = (): Record<string, string> => ({
  KAFKA_BROKERS: ssl,
  KAFKA_SSL: 'true',
  KAFKA_SSL_CA_FILE: files.caFile,
  KAFKA_SSL_CERT_FILE: files.certFile,
  KAFKA_SSL_KEY_FILE: files.keyFile,
});

/**
 * Starts the service with `env` and expects it to stop start-up: exit code 1 within `boundMs`, and
 * exactly one line on stderr, which is returned.
 */
async function startupFailure(env: Record<string, string>, boundMs: number): Promise<{ line: string; ms: number }> {
  const started = Date.now();
  const service = await startService({
    job: 'test/fixtures/jobs/slow-map.ts',
    env: { TEST_JOB_NAME: uniqueName('tls-bad'), TEST_INPUT: uniqueName('tls-bad-in'), ...env },
  });
  onCleanup(() => service.stop('SIGKILL'));
  const stderr = stderrOf(service);
  let timer: NodeJS.Timeout | undefined;
  const outcome = await Promise.race([
    service.exited,
    new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), boundMs))),
  ]).finally(() => clearTimeout(timer));
  const ms = Date.now() - started;
  if (outcome === 'timeout') throw new Error(`still running after ${boundMs} ms:\n${service.output().slice(-3000)}`);
  expect(outcome.code).toBe(1);
  const lines = stderr()
    .split('\n')
    .filter((l) => l.trim() !== '');
  expect(lines).toHaveLength(1);
  return { line: lines[0]!, ms };
}

describe('what kafkajs and Node report for each TLS failure', () => {
  test('mutual TLS works; a wrong CA, no client certificate, an untrusted client certificate each fail with their code', async () => {
    expect(await connectError(mutual())).toBeUndefined();

    // The broker sends only its own certificate: a client trusting another CA cannot build a chain.
    const wrongCa = await connectError({
      ca: pem(files.otherCaFile),
      cert: pem(files.certFile),
      key: pem(files.keyFile),
    });
    expect(wrongCa).toBeInstanceOf(KafkaJSNumberOfRetriesExceeded);
    const wrongCaCause = (wrongCa as { cause?: unknown }).cause;
    expect(wrongCaCause).toBeInstanceOf(KafkaJSConnectionError);
    // The code is the contract; the wording is Node's and OpenSSL's.
    expect(wrongCaCause).toMatchObject({ code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE' });
    expect(classifyKafkaError(wrongCa, [ssl])).toMatchObject({ code: 'SLUICE_KAFKA_TLS_FAILED', retryable: false });

    // Kafka 4.4 refuses a handshake without a client certificate with the alert bad_certificate
    // (42), over TLS 1.3 too; Node reports it after the handshake, on the first request.
    const noCert = await connectError({ ca: pem(files.caFile) });
    expect((noCert as { cause?: unknown }).cause).toMatchObject({
      name: 'KafkaJSConnectionError',
      // OpenSSL 3.0 (Node 20) and 3.5 (Node 24) name the same alert differently.
      code: expect.stringMatching(/^ERR_SSL_(SSLV3|SSL\/TLS)_ALERT_BAD_CERTIFICATE$/),
    });
    expect(classifyKafkaError(noCert, [ssl]).message).toContain('KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE');

    // A client certificate from a CA the broker does not trust: certificate_unknown (46).
    const untrusted = await connectError({
      ca: pem(files.caFile),
      cert: pem(files.otherCaFile),
      key: pem(files.otherCaFile.replace(/\.pem$/, '.key')),
    });
    expect((untrusted as { cause?: unknown }).cause).toMatchObject({
      code: expect.stringMatching(/^ERR_SSL_(SSLV3|SSL\/TLS)_ALERT_CERTIFICATE_UNKNOWN$/),
    });

    // TLS against the plaintext listener: the broker hangs up during the handshake, which Node
    // reports as a reset — the same as a broker going away, so it stays a retriable connection error.
    const plainAdmin = new Kafka({
      clientId: 'sluice-tls-test',
      brokers: [broker.brokers],
      ssl: mutual(),
      logLevel: logLevel.NOTHING,
      retry: { retries: 0 },
    }).admin();
    const plain = await plainAdmin.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    await plainAdmin.disconnect().catch(() => undefined);
    expect((plain as { cause?: unknown }).cause).toMatchObject({ name: 'KafkaJSConnectionError', code: 'ECONNRESET' });
    expect(classifyKafkaError(plain, [broker.brokers])).toMatchObject({ code: 'SLUICE_KAFKA_FAILED', retryable: true });
  });
});

describe('the service over mutual TLS', () => {
  test('with the CA and a client certificate: ready, and every record processed exactly', async () => {
    const kafka = tlsKafka(mutual());
    const admin = kafka.admin();
    await admin.connect();
    onCleanup(() => admin.disconnect());
    const input = uniqueName('tls-in');
    const output = uniqueName('tls-out');
    await admin.createTopics({ topics: [{ topic: input, numPartitions: 2 }], waitForLeaders: true });

    const N = 2000;
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    onCleanup(() => producer.disconnect());
    await producer.send({
      topic: input,
      messages: Array.from({ length: N }, (_, i) => ({
        key: String(i),
        value: JSON.stringify({ i, pad: 'x'.repeat(i % 7) }),
      })),
    });

    const service = await startService({
      job: 'test/fixtures/jobs/slow-map.ts',
      env: {
        ...TLS_ENV(),
        TEST_JOB_NAME: uniqueName('tls-job'),
        TEST_INPUT: input,
        TEST_OUTPUT: output,
        TEST_SPIN_US: '0',
      },
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();

    const seen: Array<{ i: number; sq: number; len: number }> = [];
    const consumer = kafka.consumer({ groupId: uniqueName('tls-reader'), maxWaitTimeInMs: 100 });
    await consumer.connect();
    onCleanup(() => consumer.disconnect());
    await consumer.subscribe({ topics: [output], fromBeginning: true });
    await consumer.run({
      eachMessage: async ({ message }) => {
        seen.push(JSON.parse(message.value!.toString()) as { i: number; sq: number; len: number });
      },
    });
    await waitFor('every record processed over TLS', () => (seen.length >= N ? true : undefined), 90_000);
    await new Promise((r) => setTimeout(r, 1000)); // anything extra (a duplicate) would show up by now
    const expected = Array.from({ length: N }, (_, i) => ({ i, sq: (i * i) % 1_000_003, len: i % 7 }));
    expect([...seen].sort((a, b) => a.i - b.i)).toEqual(expected);
    // The effective configuration is logged with the key material redacted.
    expect(service.output()).not.toContain('PRIVATE KEY');
    expect((await service.stop('SIGTERM')).code).toBe(0);
  });

  // The service gives up after kafkajs's connection retries (8; backoff from 200 ms, doubling up to
  // 10 s, ±20 % jitter): at most about 45 s, 25–40 s measured — bounded, not forever. Jest sets
  // NODE_ENV=test, which the service inherits and which makes kafkajs back off by 1.5× instead of 2×
  // (about 11 s); the first case runs with NODE_ENV=production to hold the bound a deployment sees.
  const BOUND_MS = 75_000;

  test('a CA that did not sign the broker certificate: exit 1, one line naming KAFKA_SSL_CA_FILE', async () => {
    const { line, ms } = await startupFailure(
      { ...TLS_ENV(), KAFKA_SSL_CA_FILE: files.otherCaFile, NODE_ENV: 'production' },
      BOUND_MS,
    );
    expect(line).toMatch(
      /^sluice: \[SLUICE_KAFKA_TLS_FAILED\] Kafka TLS with 127\.0\.0\.1:\d+ failed: certificate verification failed/,
    );
    expect(line).toContain('KAFKA_SSL_CA_FILE');
    expect(line).toContain('UNABLE_TO_VERIFY_LEAF_SIGNATURE');
    console.log(`wrong CA: start-up failed after ${ms} ms: ${line}`);
  });

  test('no client certificate for a listener that requires one: exit 1, one line naming KAFKA_SSL_CERT_FILE/KEY_FILE', async () => {
    const env = TLS_ENV();
    delete env['KAFKA_SSL_CERT_FILE'];
    delete env['KAFKA_SSL_KEY_FILE'];
    const { line, ms } = await startupFailure(env, BOUND_MS);
    expect(line).toMatch(
      /^sluice: \[SLUICE_KAFKA_TLS_FAILED\] Kafka TLS with 127\.0\.0\.1:\d+ failed: the broker rejected the client certificate/,
    );
    expect(line).toContain('KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE');
    console.log(`no client certificate: start-up failed after ${ms} ms: ${line}`);
  });

  test('a CA file that does not exist: exit 1 at once, one line naming KAFKA_SSL_CA_FILE', async () => {
    const missing = join(broker.dataDir, 'tls', 'no-such-ca.pem');
    const { line, ms } = await startupFailure({ ...TLS_ENV(), KAFKA_SSL_CA_FILE: missing }, 20_000);
    expect(line).toBe(`sluice: invalid configuration: KAFKA_SSL_CA_FILE cannot read "${missing}": ENOENT`);
    expect(ms).toBeLessThan(20_000);
  });
});
