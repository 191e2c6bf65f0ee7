/**
 * SASL/SCRAM against the broker's SCRAM listener: a client with the right credentials works, the
 * service starts with them, and wrong credentials stop start-up with one clear line, not a crash
 * loop with a stack trace.
 */
import { describe, expect, test } from '@jest/globals';
import { type SASLOptions } from 'kafkajs';
import { SCRAM_USER } from '../../scripts/kafka/local-broker.ts';
import { createTopic, onCleanup, testKafka, uniqueName } from '../helpers.ts';
import { startService } from '../support/service.ts';

const sasl = process.env['SLUICE_TEST_SASL_BROKERS'];
// An external cluster (KAFKA_BROKERS) has no SCRAM listener we know of: say so instead of passing.
const scramTest = sasl ? test : test.skip;
if (!sasl) console.warn('SLUICE_TEST_SASL_BROKERS not set: SCRAM tests skipped');

describe('SASL/SCRAM', () => {
  scramTest.each(['scram-sha-256', 'scram-sha-512'] as const)(
    'a %s client produces and reads back',
    async (mechanism) => {
      const topic = await createTopic(uniqueName('scram'), 1);
      const kafka = testKafka({ brokers: [sasl!], sasl: { mechanism, ...SCRAM_USER } as SASLOptions });
      const producer = kafka.producer();
      await producer.connect();
      onCleanup(() => producer.disconnect());
      await producer.send({ topic, messages: [{ value: 'over scram' }] });
      const admin = kafka.admin();
      await admin.connect();
      onCleanup(() => admin.disconnect());
      const offsets = await admin.fetchTopicOffsets(topic);
      expect(offsets[0]?.high).toBe('1');
    },
  );

  scramTest('the service starts with SCRAM credentials and becomes ready', async () => {
    const input = await createTopic(uniqueName('scram-in'), 2);
    const service = await startService({
      job: 'test/fixtures/jobs/user-windows.ts',
      env: {
        KAFKA_BROKERS: sasl!,
        KAFKA_SASL_MECHANISM: 'scram-sha-256',
        KAFKA_SASL_USERNAME: SCRAM_USER.username,
        KAFKA_SASL_PASSWORD: SCRAM_USER.password,
        TEST_JOB_NAME: uniqueName('scram-job'),
        TEST_INPUT: input,
        TEST_OUTPUT: uniqueName('scram-out'),
      },
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();
    expect(service.output()).not.toContain(SCRAM_USER.password); // the effective config is logged redacted
    expect(service.output()).toContain('[redacted]');
    expect((await service.stop('SIGTERM')).code).toBe(0);
  });

  scramTest('wrong credentials: one clear start-up error naming the SASL settings, exit code 1', async () => {
    const input = await createTopic(uniqueName('scram-bad-in'), 1);
    const service = await startService({
      job: 'test/fixtures/jobs/user-windows.ts',
      env: {
        KAFKA_BROKERS: sasl!,
        KAFKA_SASL_MECHANISM: 'scram-sha-256',
        KAFKA_SASL_USERNAME: SCRAM_USER.username,
        KAFKA_SASL_PASSWORD: 'not-the-password',
        SLUICE_LOG_LEVEL: 'silent',
        TEST_JOB_NAME: uniqueName('scram-bad'),
        TEST_INPUT: input,
        TEST_OUTPUT: uniqueName('scram-bad-out'),
      },
    });
    onCleanup(() => service.stop('SIGKILL'));
    const { code } = await service.exited;
    expect(code).toBe(1);
    const lines = service
      .output()
      .split('\n')
      .filter((l) => l.trim() !== '');
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatch(/^sluice: \[SLUICE_KAFKA_AUTH_FAILED\] Kafka authentication failed/);
    expect(lines[0]).toContain('KAFKA_SASL_PASSWORD');
    expect(lines[0]).not.toContain('not-the-password');
    expect(lines[0]).not.toMatch(/\n\s+at /);
  });
});
