/**
 * One record whose user code hangs for ever, or kills its worker thread, must not stop the job: the
 * watchdog (SLUICE_RECORD_TIMEOUT) or the crash replaces the worker, the partition replays, and when
 * the same record fails again it is dead-lettered with the failure's code and its origin while every
 * other record of every partition goes out exactly as it came in. Before this, a hanging record left
 * 0 of the other 7 999 results out after 180 s, and an exiting one made a crash loop.
 */
import { describe, expect, test } from '@jest/globals';
import { onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { metricValue, startService } from '../support/service.ts';
import { follow, newTopic, testProducer } from '../support/topics.ts';

const PARTITIONS = 4;
const COUNT = 8_000;

async function runPoison(mode: 'hang' | 'exit', code: string): Promise<void> {
  const input = await newTopic(`poison-${mode}-in`, PARTITIONS);
  const output = uniqueName(`poison-${mode}-out`);
  const name = uniqueName(`poison-${mode}`);
  // The poison record sits in partition 1, mid-stream; partition 1 has records after it as well.
  const values = Array.from({ length: COUNT }, (_, n) => ({ user: `u${n % 97}`, n }));
  const poisonAt = COUNT / 2;
  values[poisonAt] = { user: 'poison', n: poisonAt };
  const producer = await testProducer();
  await producer.send({
    topic: input,
    messages: values.map((v) => ({ partition: v.n % PARTITIONS, key: null, value: JSON.stringify(v) })),
  });

  const service = await startService({
    job: 'test/fixtures/jobs/poison-record.ts',
    env: {
      TEST_JOB_NAME: name,
      TEST_INPUT: input,
      TEST_OUTPUT: output,
      TEST_POISON: mode,
      SLUICE_RECORD_TIMEOUT: '1500ms',
      SLUICE_WORKERS: '2',
    },
  });
  onCleanup(() => service.stop('SIGKILL'));
  await service.waitReady();
  const seen = await follow([output, `${name}-dlq`]);
  const outputs = () => seen.records.filter((r) => r.topic === output);
  const letters = () => seen.records.filter((r) => r.topic !== output);
  await waitFor(
    'every other record out and the poison dead-lettered',
    () => (outputs().length >= COUNT - 1 && letters().length >= 1 ? true : undefined),
    90_000,
  ).catch((error: unknown) => {
    console.log(`${outputs().length} outputs, ${letters().length} dead letters\n${service.output().slice(-3000)}`);
    throw error;
  });
  // Settle: nothing more may arrive (no second copy of anything).
  await new Promise((r) => setTimeout(r, 1500));

  const outNs = outputs().map((r) => (JSON.parse(r.value!.toString()) as { n: number }).n);
  const expected = values.filter((v) => v.user !== 'poison').map((v) => v.n);
  expect(new Set(outNs).size).toBe(COUNT - 1);
  expect(outNs.sort((a, b) => a - b)).toEqual(expected); // at-least-once replays may repeat; none did here
  const dead = letters();
  expect(dead).toHaveLength(1);
  const letter = dead[0]!;
  expect(JSON.parse(letter.value!.toString())).toEqual({ user: 'poison', n: poisonAt });
  expect(letter.headers['sluice-error-code']).toBe(code);
  expect(letter.headers['sluice-source-topic']).toBe(input);
  expect(letter.headers['sluice-source-partition']).toBe(String(poisonAt % PARTITIONS));
  expect(letter.headers['sluice-source-offset']).toBe(String(Math.floor(poisonAt / PARTITIONS)));

  const metrics = await service.metrics();
  // Two failures on the record (the first is taken for bad luck), then it is not run again.
  expect(metricValue(metrics, 'sluice_worker_restarts_total')).toBe(2);
  expect(metricValue(metrics, 'sluice_records_dead_lettered_total', { code })).toBe(1);
  const health = await fetch(`${service.url}/healthz`);
  expect(health.status).toBe(200);
  await service.stop();
}

describe('a poison pill is dead-lettered and the job goes on', () => {
  test('a record whose map never returns: SLUICE_USER_CODE_TIMEOUT', async () => {
    await runPoison('hang', 'SLUICE_USER_CODE_TIMEOUT');
  });

  test('a record whose map calls process.exit: SLUICE_WORKER_CRASHED', async () => {
    await runPoison('exit', 'SLUICE_WORKER_CRASHED');
  });
});
