/**
 * Scaling with replicas of the same job in one consumer group: a second replica joins while the
 * input keeps coming (the partitions and their window state move through the rebalance), then the
 * first one leaves (SIGTERM) and the second finishes alone. Count per page through the repartition topic,
 * so both stages move. Checked against a recomputation of the input: every valid record counted once
 * or dead-lettered as late once, every duplicate of a result equal to the first.
 */
import { describe, expect, test } from '@jest/globals';
import { onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { flushPages, generateClickstream, produceClickstream } from '../../examples/generator/clickstream.ts';
import {
  followJob,
  malformedIds,
  pageAccountingProblems,
  pageTally,
  perPageWindow,
  produceWithFlush,
  validEvents,
  waitForPageAccounting,
} from '../support/clickstream-input.ts';
import { metricValue, startService, type RunningService } from '../support/service.ts';
import { newTopic, readAll, sourceId, testProducer } from '../support/topics.ts';

const PARTITIONS = 8;
const COUNT = 60_000;
const WINDOW_MS = 10_000;

/** Input records the replica has read so far. */
async function inputRead(service: RunningService, input: string): Promise<number> {
  return metricValue(await service.metrics(), 'sluice_records_in_total', { topic: input });
}

/** Assigned partitions of the replica, from /api/status. */
async function assigned(service: RunningService): Promise<number> {
  const status = (await (await fetch(`${service.url}/api/status`)).json()) as { partitions: unknown[] };
  return status.partitions.length;
}

describe('replicas share a job', () => {
  test('a replica joins mid-stream and the first leaves: results stay exact, both stages move', async () => {
    const input = await newTopic('so-page-in', PARTITIONS);
    const output = uniqueName('so-page-out');
    const name = uniqueName('so-page');
    const generated = [...generateClickstream({ count: COUNT, seed: 31, eventsPerSecond: 500, users: 300, pages: 40 })];
    const third = Math.floor(COUNT / 3);
    const producer = await testProducer();

    const env = { TEST_JOB_NAME: name, TEST_INPUT: input, TEST_OUTPUT: output, TEST_IDLE_MS: '600000' };
    // First third: one replica.
    await produceClickstream(producer, input, generated.slice(0, third), { batchSize: 5000 });
    const first = await startService({ job: 'test/fixtures/jobs/page-windows.ts', env });
    onCleanup(() => first.stop('SIGKILL'));
    await first.waitReady();
    // The service created the output and dead-letter topics; read them from the beginning.
    const seen = await followJob(output, `${name}-dlq`);
    await waitFor('the first third read by the first replica', async () =>
      (await inputRead(first, input)) >= third ? true : undefined,
    );

    // Second third: a second replica joins; both hold a share of the 16 partitions (8 input, 8 repartition).
    const second = await startService({ job: 'test/fixtures/jobs/page-windows.ts', env });
    onCleanup(() => second.stop('SIGKILL'));
    await second.waitReady();
    const shares = await waitFor('both replicas assigned', async () => {
      const [a, b] = [await assigned(first), await assigned(second)];
      return a > 0 && b > 0 && a + b === 2 * PARTITIONS ? [a, b] : undefined;
    });
    const firstBefore = await inputRead(first, input);
    await produceClickstream(producer, input, generated.slice(third, 2 * third), { batchSize: 5000 });
    await waitFor('both replicas reading the second third', async () =>
      (await inputRead(first, input)) > firstBefore && (await inputRead(second, input)) > 0 ? true : undefined,
    );

    // Last third: the first replica leaves; the second finishes alone.
    expect((await first.stop('SIGTERM')).code).toBe(0);
    await waitFor('the second replica alone holds every partition', async () =>
      (await assigned(second)) === 2 * PARTITIONS ? true : undefined,
    );
    await produceWithFlush(input, generated.slice(2 * third), flushPages(PARTITIONS));

    const inputRecords = await readAll(input);
    const valid = validEvents(inputRecords);
    const expected = perPageWindow(valid, WINDOW_MS);
    const expectedMalformed = new Set(malformedIds(inputRecords, valid));
    expect(expected.size).toBeGreaterThan(500);

    await waitForPageAccounting(seen, expected, WINDOW_MS).catch((error: unknown) => {
      console.log(second.output().slice(-3000));
      throw error;
    });
    await new Promise((r) => setTimeout(r, 2000));
    await seen.stop();

    const t = pageTally(seen, WINDOW_MS);
    expect(pageAccountingProblems(t, expected)).toEqual([]);
    expect(new Set(seen.deadLetters('SLUICE_DESERIALIZE_FAILED').map(sourceId))).toEqual(expectedMalformed);
    const metrics = await second.metrics();
    const results = [...t.values.values()].reduce((n, vs) => n + vs.length, 0);
    console.log(
      `scale out/in: shares ${JSON.stringify(shares)}, ${results} results for ${t.values.size} windows, ` +
        `second replica replayed ${metricValue(metrics, 'sluice_records_replayed_total')}, ` +
        `dropped ${metricValue(metrics, 'sluice_records_duplicate_total')} repartition duplicates`,
    );
    expect((await second.stop('SIGTERM')).code).toBe(0);
  });
});
