/**
 * Kafka error classification on real kafkajs errors: instances of kafkajs's exported classes, protocol
 * errors made by kafkajs's own code → error table, the wrappers its retrier really produces, and
 * errors a real broker causes (a missing topic, a closed port, an invalid topic config).
 */
import { createRequire } from 'node:module';
import { describe, expect, test } from '@jest/globals';
import {
  KafkaJSAggregateError,
  KafkaJSBrokerNotFound,
  KafkaJSConnectionError,
  KafkaJSDeleteTopicRecordsError,
  KafkaJSError,
  KafkaJSGroupCoordinatorNotFound,
  KafkaJSLockTimeout,
  KafkaJSMetadataNotLoaded,
  KafkaJSNonRetriableError,
  KafkaJSNumberOfRetriesExceeded,
  KafkaJSProtocolError,
  KafkaJSRequestTimeoutError,
  KafkaJSSASLAuthenticationError,
  KafkaJSServerDoesNotSupportApiKey,
  KafkaJSTopicMetadataNotLoaded,
} from 'kafkajs';
import {
  ConfigError,
  isRetryable,
  KafkaAuthError,
  KafkaError,
  KafkaTlsError,
  UserCodeError,
} from '../../src/errors.ts';
import { deserializeError, serializeError } from '../../src/error-serialization.ts';
import { classifyKafkaError, isRetriableKafkaError } from '../../src/kafka/errors.ts';
import { freePort } from '../../scripts/kafka/local-broker.ts';
import { admin, onCleanup, testKafka, uniqueName } from '../helpers.ts';

const require = createRequire(import.meta.url);
/** kafkajs's own mapping of a broker's error code to its error (what a response with that code throws). */
const { createErrorFromCode } = require('kafkajs/src/protocol/error.js') as {
  createErrorFromCode(code: number): KafkaJSProtocolError;
};
/** kafkajs's retrier: what its clients wrap a failure in after retrying (or not). */
const createRetry = require('kafkajs/src/retry/index.js') as (options: {
  retries: number;
  initialRetryTime?: number;
}) => <T>(fn: (bail: (e: Error) => void) => Promise<T>) => Promise<T>;

/** Exported by kafkajs but missing from its type declarations. */
const { KafkaJSConnectionClosedError } = require('kafkajs') as { KafkaJSConnectionClosedError: new () => Error };

/**
 * kafkajs's declarations give several classes no constructor parameters, while kafkajs itself
 * constructs them with a message (and metadata): build them the way kafkajs does.
 */
function make(cls: new () => Error, ...args: unknown[]): Error {
  return new (cls as unknown as new (...a: unknown[]) => Error)(...args);
}

const CODES = {
  UNKNOWN_TOPIC_OR_PARTITION: 3,
  LEADER_NOT_AVAILABLE: 5,
  NOT_LEADER_FOR_PARTITION: 6,
  REQUEST_TIMED_OUT: 7,
  MESSAGE_TOO_LARGE: 10,
  GROUP_LOAD_IN_PROGRESS: 14,
  GROUP_COORDINATOR_NOT_AVAILABLE: 15,
  NOT_COORDINATOR_FOR_GROUP: 16,
  ILLEGAL_GENERATION: 22,
  REBALANCE_IN_PROGRESS: 27,
  TOPIC_AUTHORIZATION_FAILED: 29,
  GROUP_AUTHORIZATION_FAILED: 30,
  CLUSTER_AUTHORIZATION_FAILED: 31,
  UNSUPPORTED_SASL_MECHANISM: 33,
  TOPIC_ALREADY_EXISTS: 36,
  INVALID_CONFIG: 40,
  SASL_AUTHENTICATION_FAILED: 58,
} as const;
const protocol = (type: keyof typeof CODES): KafkaJSProtocolError => createErrorFromCode(CODES[type]);

/** What kafkajs's retrier rejects with when `error` is thrown on every attempt. */
async function afterRetries(error: Error, retries = 0): Promise<Error> {
  const retry = createRetry({ retries, initialRetryTime: 1 });
  return retry(async () => {
    throw error;
  }).then(
    () => {
      throw new Error('the retrier resolved');
    },
    (e: unknown) => e as Error,
  );
}

const brokers = ['kafka-1:9092', 'kafka-2:9092'];
const refused = (): KafkaJSConnectionError =>
  new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:1', {
    broker: '127.0.0.1:1',
    code: 'ECONNREFUSED',
  });

describe('isRetriableKafkaError', () => {
  test.each([
    'UNKNOWN_TOPIC_OR_PARTITION',
    'LEADER_NOT_AVAILABLE',
    'NOT_LEADER_FOR_PARTITION',
    'REQUEST_TIMED_OUT',
    'GROUP_LOAD_IN_PROGRESS',
    'GROUP_COORDINATOR_NOT_AVAILABLE',
    'NOT_COORDINATOR_FOR_GROUP',
    // kafkajs marks these non-retriable because it must rejoin first; they pass by themselves.
    'REBALANCE_IN_PROGRESS',
    'ILLEGAL_GENERATION',
  ] as const)('protocol error %s is retriable', (type) => {
    const error = protocol(type);
    expect(error).toBeInstanceOf(KafkaJSProtocolError);
    expect(error.type).toBe(type);
    expect(isRetriableKafkaError(error)).toBe(true);
  });

  test.each([
    'TOPIC_AUTHORIZATION_FAILED',
    'GROUP_AUTHORIZATION_FAILED',
    'CLUSTER_AUTHORIZATION_FAILED',
    'SASL_AUTHENTICATION_FAILED',
    'UNSUPPORTED_SASL_MECHANISM',
    'INVALID_CONFIG',
    'MESSAGE_TOO_LARGE',
    'TOPIC_ALREADY_EXISTS',
  ] as const)('protocol error %s is not', (type) => {
    expect(isRetriableKafkaError(protocol(type))).toBe(false);
  });

  test('the current Kafka names of the same conditions count too', () => {
    for (const type of ['NOT_LEADER_OR_FOLLOWER', 'NOT_COORDINATOR', 'COORDINATOR_NOT_AVAILABLE']) {
      const error = new KafkaJSProtocolError('from a newer client table');
      Object.assign(error, { type, code: 6, retriable: false });
      expect(isRetriableKafkaError(error)).toBe(true);
    }
  });

  test('connection problems, timeouts and missing metadata are retriable', () => {
    const cases: Error[] = [
      refused(),
      new KafkaJSConnectionError('Connection error: read ECONNRESET', { broker: 'b:1', code: 'ECONNRESET' }),
      new KafkaJSConnectionError('Connection timeout', { broker: 'b:1' }),
      make(KafkaJSConnectionClosedError, 'Closed connection', { host: 'b', port: 1 }),
      new KafkaJSRequestTimeoutError('Request Metadata(key: 3, version: 6) timed out', {
        broker: 'b:1',
        clientId: 'c',
        correlationId: 1,
        createdAt: 0,
        sentAt: 0,
        pendingDuration: 0,
      }),
      make(KafkaJSBrokerNotFound, 'Broker 1 not found in the cached metadata'),
      make(KafkaJSMetadataNotLoaded, 'Cluster has not been connected'),
      new KafkaJSTopicMetadataNotLoaded('Topic metadata not loaded', { topic: 't' }),
      make(KafkaJSGroupCoordinatorNotFound, 'Failed to find group coordinator'),
      make(KafkaJSLockTimeout, 'Timeout while acquiring lock'),
      Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:1'), { code: 'ECONNREFUSED' }),
    ];
    for (const error of cases) expect([error.name, isRetriableKafkaError(error)]).toEqual([error.name, true]);
  });

  test('through the wrappers kafkajs really produces: the cause decides', async () => {
    const exhausted = await afterRetries(protocol('LEADER_NOT_AVAILABLE'), 1);
    expect(exhausted).toBeInstanceOf(KafkaJSNumberOfRetriesExceeded);
    expect(exhausted).toMatchObject({ retriable: false, retryCount: 1 });
    expect(isRetriableKafkaError(exhausted)).toBe(true);

    const bailed = await afterRetries(protocol('TOPIC_AUTHORIZATION_FAILED'));
    expect(bailed).toBeInstanceOf(KafkaJSNonRetriableError);
    expect(isRetriableKafkaError(bailed)).toBe(false);

    // A rebalance wrapped by kafkajs's consumer group for its retrier, then exhausted.
    const rejoin = await afterRetries(new KafkaJSError(protocol('REBALANCE_IN_PROGRESS')));
    expect(isRetriableKafkaError(rejoin)).toBe(true);

    expect(isRetriableKafkaError(await afterRetries(refused()))).toBe(true);
  });

  test('other cause chains: cause, originalError, retriableError', () => {
    expect(isRetriableKafkaError(new Error('outer', { cause: refused() }))).toBe(true);
    expect(isRetriableKafkaError(Object.assign(new Error('outer'), { originalError: refused() }))).toBe(true);
    expect(isRetriableKafkaError(Object.assign(new Error('outer'), { retriableError: refused() }))).toBe(true);
    expect(isRetriableKafkaError(new KafkaError('sluice', refused()))).toBe(true);
    expect(isRetriableKafkaError(new KafkaError('sluice, given up', refused(), false))).toBe(false);
    // A fatal error anywhere in the chain wins over a retriable wrapper.
    const sasl = make(KafkaJSSASLAuthenticationError, 'SASL SCRAM SHA256 authentication failed: Invalid credentials');
    expect(isRetriableKafkaError(new KafkaJSConnectionError(sasl.message, { broker: 'b:1' }))).toBe(true);
    expect(isRetriableKafkaError(Object.assign(refused(), { cause: sasl }))).toBe(false);
  });

  test('aggregates: retriable only when every member is', () => {
    const allTransient = new KafkaJSAggregateError('Topic creation errors', [
      protocol('LEADER_NOT_AVAILABLE'),
      protocol('REQUEST_TIMED_OUT'),
    ]);
    expect(isRetriableKafkaError(allTransient)).toBe(true);
    const oneInvalid = new KafkaJSAggregateError('Topic creation errors', [
      protocol('LEADER_NOT_AVAILABLE'),
      protocol('INVALID_CONFIG'),
    ]);
    expect(isRetriableKafkaError(oneInvalid)).toBe(false);
    expect(isRetriableKafkaError(new AggregateError([refused(), refused()]))).toBe(true);
    const deleteRecords = new KafkaJSDeleteTopicRecordsError({
      topic: 't',
      partitions: [{ partition: 0, offset: '1', error: protocol('NOT_LEADER_FOR_PARTITION') }],
    });
    expect(isRetriableKafkaError(deleteRecords)).toBe(true);
  });

  test('authentication, TLS configuration and unknown errors are not retriable', () => {
    const cases: unknown[] = [
      make(KafkaJSSASLAuthenticationError, 'SASL SCRAM SHA256 authentication failed: Invalid credentials'),
      new KafkaJSConnectionError('Connection error: unable to verify the first certificate', {
        broker: 'b:1',
        code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
      }),
      new KafkaJSConnectionError('Connection error: …sslv3 alert bad certificate…', {
        broker: 'b:1',
        code: 'ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE',
      }),
      new KafkaJSServerDoesNotSupportApiKey('not supported', { apiKey: 1, apiName: 'Fetch' }),
      new KafkaAuthError('x'),
      new KafkaTlsError('x'),
      new ConfigError(['x']),
      new UserCodeError('x'),
      new Error('something else'),
      new TypeError('a bug'),
      'a string',
      undefined,
      null,
      42,
    ];
    for (const error of cases) expect(isRetriableKafkaError(error)).toBe(false);
  });

  test('a cycle in the chain ends', () => {
    const a = new Error('a');
    const b = new Error('b', { cause: a });
    Object.assign(a, { cause: b });
    expect(isRetriableKafkaError(a)).toBe(false);
  });

  test('errors that crossed a thread boundary keep their verdict (names and string codes survive)', async () => {
    const across = (e: unknown): Error => deserializeError(structuredClone(serializeError(e)));
    expect(isRetriableKafkaError(across(await afterRetries(refused())))).toBe(true);
    const tls = new KafkaJSConnectionError('Connection error: self-signed certificate in certificate chain', {
      broker: 'b:1',
      code: 'SELF_SIGNED_CERT_IN_CHAIN',
    });
    expect(isRetriableKafkaError(across(await afterRetries(tls)))).toBe(false);
    const rebuilt = across(new KafkaTlsError('Kafka TLS failed', tls));
    expect(rebuilt).toBeInstanceOf(KafkaTlsError);
    expect(rebuilt).toMatchObject({ code: 'SLUICE_KAFKA_TLS_FAILED', retryable: false });
  });
});

describe('classifyKafkaError', () => {
  test('SASL failures become KafkaAuthError naming the KAFKA_SASL_* settings', async () => {
    const cause = make(KafkaJSSASLAuthenticationError, 'SASL SCRAM SHA256 authentication failed: Invalid credentials');
    for (const error of [cause, await afterRetries(cause), protocol('SASL_AUTHENTICATION_FAILED')]) {
      const classified = classifyKafkaError(error, brokers);
      expect(classified).toBeInstanceOf(KafkaAuthError);
      expect(classified.code).toBe('SLUICE_KAFKA_AUTH_FAILED');
      expect(classified.retryable).toBe(false);
      expect(classified.message).toMatch(/^Kafka authentication failed at kafka-1:9092,kafka-2:9092: /);
      expect(classified.message).toContain('KAFKA_SASL_PASSWORD');
      expect(classified.cause).toBe(error);
    }
    const mechanism = classifyKafkaError(protocol('UNSUPPORTED_SASL_MECHANISM'), { brokers });
    expect(mechanism).toBeInstanceOf(KafkaAuthError);
    expect(mechanism.message).toContain('KAFKA_SASL_MECHANISM');
  });

  test.each([
    ['UNABLE_TO_VERIFY_LEAF_SIGNATURE', 'KAFKA_SSL_CA_FILE'],
    ['SELF_SIGNED_CERT_IN_CHAIN', 'KAFKA_SSL_CA_FILE'],
    ['DEPTH_ZERO_SELF_SIGNED_CERT', 'KAFKA_SSL_CA_FILE'],
    ['CERT_HAS_EXPIRED', 'KAFKA_SSL_CA_FILE'],
    ['ERR_TLS_CERT_ALTNAME_INVALID', 'KAFKA_BROKERS'],
    ['ERR_SSL_SSLV3_ALERT_BAD_CERTIFICATE', 'KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE'],
    ['ERR_SSL_SSLV3_ALERT_CERTIFICATE_UNKNOWN', 'KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE'],
    // The same alerts as OpenSSL 3.5 (Node 24) names them.
    ['ERR_SSL_SSL/TLS_ALERT_BAD_CERTIFICATE', 'KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE'],
    ['ERR_SSL_SSL/TLS_ALERT_CERTIFICATE_UNKNOWN', 'KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE'],
    ['ERR_SSL_TLSV13_ALERT_CERTIFICATE_REQUIRED', 'KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE'],
    ['ERR_SSL_WRONG_VERSION_NUMBER', 'KAFKA_SSL'],
  ])('TLS %s becomes KafkaTlsError naming %s, on one line', async (code, variable) => {
    const connection = new KafkaJSConnectionError(
      'Connection error: 800C2290D07F0000:error:0A000412:SSL routines:ssl3_read_bytes:reason:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:1601:SSL alert number 42\n',
      { broker: 'b:1', code },
    );
    const classified = classifyKafkaError(await afterRetries(connection, 1), brokers);
    expect(classified).toBeInstanceOf(KafkaTlsError);
    expect(classified.code).toBe('SLUICE_KAFKA_TLS_FAILED');
    expect(classified.retryable).toBe(false);
    expect(classified.message).toContain(variable);
    expect(classified.message).toContain(code);
    expect(classified.message).not.toContain('\n');
  });

  test('a connection error without a code: the OpenSSL alert in its message names the TLS problem', async () => {
    // What a broker requiring client certificates answers a client without one, as kafkajs reports
    // it through a client that does not retry (Node 24): Node's code is gone, OpenSSL's text is not.
    const connection = new KafkaJSConnectionError(
      'Connection error: 40BDA39EBE7F0000:error:0A000412:SSL routines:ssl3_read_bytes:ssl/tls alert bad certificate:../deps/openssl/openssl/ssl/record/rec_layer_s3.c:918:SSL alert number 42\n',
      { broker: 'b:1' },
    );
    const classified = classifyKafkaError(await afterRetries(connection, 1), brokers);
    expect(classified).toBeInstanceOf(KafkaTlsError);
    expect(classified.message).toContain('KAFKA_SSL_CERT_FILE and KAFKA_SSL_KEY_FILE');
    expect(isRetriableKafkaError(connection)).toBe(false);
    // Another alert number, and no alert at all: the latter stays a retriable connection error.
    const unknownCa = new KafkaJSConnectionError('Connection error: … SSL alert number 48', { broker: 'b:1' });
    expect(classifyKafkaError(unknownCa, brokers)).toBeInstanceOf(KafkaTlsError);
    const refused = new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:1', { broker: 'b:1' });
    expect(classifyKafkaError(refused, brokers)).toMatchObject({ code: 'SLUICE_KAFKA_FAILED', retryable: true });
  });

  test('authorization failures: a non-retryable KafkaError that says what to grant', () => {
    const classified = classifyKafkaError(protocol('TOPIC_AUTHORIZATION_FAILED'), brokers);
    expect(classified).toBeInstanceOf(KafkaError);
    expect(classified.retryable).toBe(false);
    expect(classified.message).toContain('TOPIC_AUTHORIZATION_FAILED');
    expect(classified.message).toContain('ACLs');
  });

  test('otherwise a KafkaError, retryable as isRetriableKafkaError says, Sluice errors unchanged', async () => {
    const down = classifyKafkaError(await afterRetries(refused(), 2), brokers);
    expect(down).toBeInstanceOf(KafkaError);
    expect(down.retryable).toBe(true);
    expect(isRetryable(down)).toBe(true);
    expect(down.message).toBe(
      'Kafka unreachable at kafka-1:9092,kafka-2:9092: KafkaJSConnectionError: Connection error: connect ECONNREFUSED 127.0.0.1:1 after 3 attempts',
    );
    const tooLarge = classifyKafkaError(protocol('MESSAGE_TOO_LARGE'), brokers);
    expect(tooLarge).toBeInstanceOf(KafkaError);
    expect(tooLarge.retryable).toBe(false);
    expect(tooLarge.message).toMatch(
      /^Kafka request failed at .*KafkaJSProtocolError: The request included a message larger/,
    );
    const mine = new KafkaError('already classified', undefined, false);
    expect(classifyKafkaError(mine, brokers)).toBe(mine);
    expect(classifyKafkaError('thrown string', brokers).message).toBe(
      'Kafka request failed at kafka-1:9092,kafka-2:9092: thrown string',
    );
  });
});

describe('errors a real broker causes', () => {
  const fast = { retry: { retries: 1, initialRetryTime: 50, maxRetryTime: 100 } } as const;

  test('producing to a topic that does not exist: UNKNOWN_TOPIC_OR_PARTITION after retries, retriable', async () => {
    const producer = testKafka(fast).producer();
    await producer.connect();
    onCleanup(() => producer.disconnect());
    const error = await producer.send({ topic: uniqueName('never-created'), messages: [{ value: 'x' }] }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(KafkaJSNumberOfRetriesExceeded);
    expect((error as { cause?: unknown }).cause).toMatchObject({ type: 'UNKNOWN_TOPIC_OR_PARTITION', code: 3 });
    expect(isRetriableKafkaError(error)).toBe(true);
    const classified = classifyKafkaError(error, ['b:1']);
    expect(classified).toMatchObject({ code: 'SLUICE_KAFKA_FAILED', retryable: true });
  });

  test('a closed port: ECONNREFUSED in a KafkaJSConnectionError, retriable, "unreachable"', async () => {
    const port = await freePort();
    const client = testKafka({ brokers: [`127.0.0.1:${port}`], ...fast }).admin();
    const error = await client.connect().then(
      () => undefined,
      (e: unknown) => e,
    );
    await client.disconnect().catch(() => undefined);
    expect(error).toBeInstanceOf(KafkaJSNumberOfRetriesExceeded);
    expect((error as { cause?: unknown }).cause).toBeInstanceOf(KafkaJSConnectionError);
    expect((error as { cause?: { code?: string } }).cause?.code).toBe('ECONNREFUSED');
    expect(isRetriableKafkaError(error)).toBe(true);
    expect(classifyKafkaError(error, [`127.0.0.1:${port}`]).message).toMatch(
      new RegExp(`^Kafka unreachable at 127\\.0\\.0\\.1:${port}: .*ECONNREFUSED`),
    );
  });

  test('creating a topic with an invalid config: an aggregate of INVALID_CONFIG, not retriable', async () => {
    const error = await (
      await admin()
    )
      .createTopics({
        topics: [
          {
            topic: uniqueName('bad-config'),
            numPartitions: 1,
            configEntries: [{ name: 'cleanup.policy', value: 'x' }],
          },
        ],
      })
      .then(
        () => undefined,
        (e: unknown) => e,
      );
    expect(error).toBeInstanceOf(KafkaJSAggregateError);
    expect((error as KafkaJSAggregateError).errors[0]).toMatchObject({ type: 'INVALID_CONFIG' });
    expect(isRetriableKafkaError(error)).toBe(false);
    expect(classifyKafkaError(error, ['b:1'])).toMatchObject({ code: 'SLUICE_KAFKA_FAILED', retryable: false });
  });
});
