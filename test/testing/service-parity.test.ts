/**
 * Parity with the service: one windowed job (test/fixtures/jobs/user-windows.ts: count per user in
 * tumbling 10 s windows, lateness 5 s, windows closed by event time only) on the same generated input,
 * once through the real service (its own process, worker threads, the shared broker) and once through
 * `sluice/testing`. The output topic and the dead-letter topic hold exactly what the driver returns.
 */
import { describe, expect, test } from '@jest/globals';
import { testJob, type TestDeadLetter, type TestOutput } from 'sluice/testing';
import { createTopic, onCleanup, uniqueName } from '../helpers.ts';
import { produceClickstreamInput, readInput } from '../support/clickstream-input.ts';
import { startService } from '../support/service.ts';
import { readTopic, type ReadRecord } from '../support/topics.ts';

const PARTITIONS = 4;

const resultOf = (key: string | null, value: unknown): string => JSON.stringify({ key, value });

/** A dead letter by what it says: code, origin, message, key and value. */
const letterOf = (code: unknown, headers: Record<string, string>, key: string | null, value: string | null) =>
  JSON.stringify({
    code,
    source: `${headers['sluice-source-topic']}:${headers['sluice-source-partition']}:${headers['sluice-source-offset']}`,
    timestamp: headers['sluice-source-timestamp'],
    message: headers['sluice-error-message'],
    eventTime: headers['sluice-event-time'],
    key,
    value,
  });

const fromDriver = (d: TestDeadLetter): string =>
  letterOf(d.code, d.headers, d.key, d.bytes === null ? null : Buffer.from(d.bytes).toString());
const fromTopic = (r: ReadRecord): string =>
  letterOf(r.headers['sluice-error-code'], r.headers, r.key, r.value?.toString() ?? null);

describe('sluice/testing and the service', () => {
  test('a windowed job publishes exactly the results and dead letters the driver returns', async () => {
    const input = await createTopic(uniqueName('parity-in'), PARTITIONS);
    const output = uniqueName('parity-out');
    const name = uniqueName('parity');
    await produceClickstreamInput(input, PARTITIONS, 20_000, 17);
    const { records } = await readInput(input);

    // The driver, on the records the service reads: same partitions, offsets, keys, values and timestamps.
    const env = { TEST_JOB_NAME: name, TEST_INPUT: input, TEST_OUTPUT: output };
    Object.assign(process.env, env);
    const driver = await testJob('test/fixtures/jobs/user-windows.ts', { partitions: PARTITIONS });
    const sent = driver.send(
      records.map((r) => ({ partition: r.partition, key: r.key, value: r.value, timestamp: r.timestamp })),
    );
    expect(sent.map((s) => `${s.partition}:${s.offset}`)).toEqual(records.map((r) => `${r.partition}:${r.offset}`));
    // Its idle timeout is 0: the flush records close the windows, not the clock.
    const run = driver.run(undefined, { flush: false });
    expect(run.late.length).toBeGreaterThan(10);
    expect(run.outputs.length).toBeGreaterThan(1_000);

    const service = await startService({ job: 'test/fixtures/jobs/user-windows.ts', env });
    onCleanup(() => service.stop('SIGKILL'));
    try {
      await service.waitReady();
      const published = await readTopic(output, (r) => r.length >= run.outputs.length);
      const dlq = await readTopic(`${name}-dlq`, (r) => r.length >= run.deadLetters.length);

      const driverResults = run.outputs.map((o: TestOutput) => resultOf(o.key, o.value)).sort();
      const serviceResults = published.map((r) => resultOf(r.key, JSON.parse(r.value!.toString()))).sort();
      expect(serviceResults).toEqual(driverResults);
      // Same output partition for each result (Kafka's default partitioner over as many partitions).
      const partitionOf = new Map(run.outputs.map((o) => [resultOf(o.key, o.value), o.partition]));
      for (const r of published) {
        expect(r.partition).toBe(partitionOf.get(resultOf(r.key, JSON.parse(r.value!.toString()))));
      }
      expect(dlq.map(fromTopic).sort()).toEqual(run.deadLetters.map(fromDriver).sort());
      expect((await service.stop('SIGTERM')).code).toBe(0);
    } catch (error) {
      console.log(`the service's last output:\n${service.output().slice(-4000)}`);
      throw error;
    }
  });
});
