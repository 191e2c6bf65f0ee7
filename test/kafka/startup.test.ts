/**
 * Start-up retries (src/kafka/startup.ts): what is retriable is retried until the deadline, a
 * configuration mistake is not retried at all, and closing the service stops the retries.
 */
import { createRequire } from 'node:module';
import { describe, expect, test } from '@jest/globals';
import kafkajs from 'kafkajs';
import pino from 'pino';
import { KafkaError, KafkaTlsError } from '../../src/errors.ts';
import { retryStartup, type StartupRetry } from '../../src/kafka/startup.ts';

const { KafkaJSConnectionError } = kafkajs;
/** kafkajs's own mapping of a broker's error code to its error (what a response with that code throws). */
const { createErrorFromCode } = createRequire(import.meta.url)('kafkajs/src/protocol/error.js') as {
  createErrorFromCode(code: number): Error;
};
const logger = pino({ level: 'silent' });

function retry(overrides: Partial<StartupRetry> = {}): StartupRetry {
  return { brokers: ['b:1'], deadline: Date.now() + 30_000, logger, cancelled: () => false, ...overrides };
}

/** What a freshly created topic answers until its metadata reached every broker. */
const notHostedYet = (): Error => createErrorFromCode(3); // UNKNOWN_TOPIC_OR_PARTITION

describe('retryStartup', () => {
  test('a retriable failure (topic metadata not propagated yet) is retried until the step succeeds', async () => {
    let calls = 0;
    const result = await retryStartup(
      'check the topics',
      async () => {
        calls++;
        if (calls < 3) throw notHostedYet();
        return 'layout';
      },
      retry(),
    );
    expect(result).toBe('layout');
    expect(calls).toBe(3);
  });

  test('a TLS mistake is not retried: one attempt, a KafkaTlsError naming the variable', async () => {
    let calls = 0;
    const tls = new KafkaJSConnectionError('Connection error: unable to verify the first certificate', {
      broker: 'b:1',
      code: 'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
    });
    const failed = retryStartup(
      'reach the brokers',
      async () => {
        calls++;
        throw tls;
      },
      retry(),
    );
    await expect(failed).rejects.toBeInstanceOf(KafkaTlsError);
    await expect(failed).rejects.toThrow(/KAFKA_SSL_CA_FILE/);
    expect(calls).toBe(1);
  });

  test('a Sluice error that is not retryable (an input topic missing) stops at once, unchanged', async () => {
    const missing = new KafkaError('input topic(s) views do not exist', undefined, false);
    let calls = 0;
    await expect(
      retryStartup(
        'check the topics',
        async () => {
          calls++;
          throw missing;
        },
        retry(),
      ),
    ).rejects.toBe(missing);
    expect(calls).toBe(1);
  });

  test('past the deadline a retriable failure is given up, as a retryable KafkaError saying what failed', async () => {
    let calls = 0;
    const started = Date.now();
    const failed = retryStartup(
      'reach the brokers',
      async () => {
        calls++;
        throw new KafkaJSConnectionError('Connection error: connect ECONNREFUSED 127.0.0.1:1', {
          broker: 'b:1',
          code: 'ECONNREFUSED',
        });
      },
      retry({ deadline: Date.now() + 1_000 }),
    );
    await expect(failed).rejects.toMatchObject({ code: 'SLUICE_KAFKA_FAILED', retryable: true });
    await expect(failed).rejects.toThrow(/Kafka unreachable at b:1/);
    expect(calls).toBeGreaterThanOrEqual(2);
    expect(Date.now() - started).toBeLessThan(3_000);
  });

  test('closing the service stops the retries', async () => {
    let calls = 0;
    let closing = false;
    await expect(
      retryStartup(
        'join the consumer group',
        async () => {
          calls++;
          closing = true;
          throw notHostedYet();
        },
        retry({ cancelled: () => closing }),
      ),
    ).rejects.toMatchObject({ code: 'SLUICE_KAFKA_FAILED' });
    expect(calls).toBe(1);
  });
});
