/**
 * Scaling with replicas of the same job in one consumer group: a second replica joins while the
 * input keeps coming (the partitions and their window state move through the rebalance), then the
 * first one leaves (SIGTERM) and the second finishes alone — a producer sends throughout both
 * rebalances, and the test checks from the logs that it did. After each change every replica's
 * workers hold tasks for exactly its own partitions (a revoked one is dropped). Count per page
 * through the repartition topic, so both stages move. Checked against a recomputation of the input:
 * every valid record counted once or dead-lettered as late once, every duplicate of a result equal
 * to the first.
 */
import { describe, expect, test } from '@jest/globals';
import { onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { type Producer } from 'kafkajs';
import {
  flushPages,
  flushRecords,
  generateClickstream,
  maxEventTime,
  produceClickstream,
  type GeneratedRecord,
} from '../../examples/generator/clickstream.ts';
import { stickyRouter } from '../../src/pool/router.ts';
import {
  followJob,
  malformedIds,
  pageAccountingProblems,
  pageTally,
  perPageWindow,
  validEvents,
  waitForPageAccounting,
} from '../support/clickstream-input.ts';
import { metricValue, startService, type RunningService } from '../support/service.ts';
import { newTopic, readAll, sourceId, testProducer } from '../support/topics.ts';

const PARTITIONS = 8;
const WINDOW_MS = 10_000;
const GENERATED = 200_000;
/** The producer while the group changes: 200 records every 50 ms (4000/s), until told to stop. */
const PACED_BATCH = 200;
const PACED_EVERY_MS = 50;

/** Input records the replica has read so far. */
async function inputRead(service: RunningService, input: string): Promise<number> {
  return metricValue(await service.metrics(), 'sluice_records_in_total', { topic: input });
}

interface Status {
  workers: number;
  partitions: Array<{ topic: string; partition: number; kind: string }>;
  tasks: Array<{ worker: number; partitions: Array<{ topic: string; partition: number; kind: string }> }>;
}

/** Assigned partitions of the replica, from /api/status. */
async function assigned(service: RunningService): Promise<number> {
  return (await service.json<Status>('/api/status')).partitions.length;
}

/**
 * Undefined until the replica's workers hold tasks for exactly the partitions assigned to it: each
 * on the worker the router sends it to, of its kind, once — a revoked partition still held by a
 * worker, or an assigned one held twice or on another worker, never passes. The tasks list is what
 * the workers last reported (after each batch or drop), so this is waited for, not sampled once.
 */
async function tasksMatchAssignment(service: RunningService): Promise<Status | undefined> {
  const status = await service.json<Status>('/api/status');
  const ids = (list: Status['partitions']): string[] => list.map((p) => `${p.topic}:${p.partition}:${p.kind}`).sort();
  const held = status.tasks.flatMap((t) => t.partitions);
  const misrouted = status.tasks.some((t) =>
    t.partitions.some((p) => stickyRouter(p.topic, p.partition, status.workers) !== t.worker),
  );
  const same = JSON.stringify(ids(held)) === JSON.stringify(ids(status.partitions));
  return status.partitions.length > 0 && same && !misrouted ? status : undefined;
}

/** Waits for {@link tasksMatchAssignment}; on a timeout, says which tasks are extra or missing. */
async function waitForOwnTasks(service: RunningService, what: string): Promise<void> {
  await waitFor(what, () => tasksMatchAssignment(service), 30_000).catch(async (error: unknown) => {
    const status = await service.json<Status>('/api/status');
    const assignedIds = new Set(status.partitions.map((p) => `${p.topic}:${p.partition}`));
    const held = status.tasks.flatMap((t) => t.partitions.map((p) => `${p.topic}:${p.partition}@${t.worker}`));
    console.log(
      `held but not assigned: ${JSON.stringify(held.filter((h) => !assignedIds.has(h.split('@')[0]!)))}; ` +
        `assigned: ${JSON.stringify([...assignedIds])}; held: ${JSON.stringify(held)}`,
    );
    throw error;
  });
}

/** Produces `records` in order, PACED_BATCH every PACED_EVERY_MS, until stopped; keeps every send's times. */
function pacedProducer(producer: Producer, topic: string, records: GeneratedRecord[]) {
  const sends: Array<{ start: number; end: number }> = [];
  let next = 0;
  let running = true;
  const done = (async () => {
    while (running && next < records.length) {
      const start = Date.now();
      const batch = records.slice(next, next + PACED_BATCH);
      await produceClickstream(producer, topic, batch, { batchSize: PACED_BATCH });
      next += batch.length;
      sends.push({ start, end: Date.now() });
      await new Promise((r) => setTimeout(r, Math.max(0, start + PACED_EVERY_MS - Date.now())));
    }
  })();
  return {
    sends,
    /** Stops after the send in flight; resolves with how many records were sent. */
    async stop(): Promise<number> {
      running = false;
      await done;
      return next;
    },
  };
}

/** When the service logged `msg` (pino's `time`), for log lines matching `where`, in order. */
function logTimes(
  service: RunningService,
  msg: string,
  where: (entry: Record<string, unknown>) => boolean = () => true,
): number[] {
  return service
    .output()
    .split('\n')
    .filter((line) => line.startsWith('{'))
    .map((line) => JSON.parse(line) as Record<string, unknown>)
    .filter((entry) => entry['msg'] === msg && where(entry))
    .map((entry) => entry['time'] as number);
}

/**
 * The producer ran through `window`: requests started before it and after it, with no pause of a
 * second in between (`inside`: at least one started within it). Requests start every 50 ms; one can
 * take a few hundred while the broker also serves two services starting on two busy cores, but
 * producing between rebalances instead of through them leaves a gap of seconds.
 */
function expectProducedThrough(
  sends: ReadonlyArray<{ start: number; end: number }>,
  window: { from: number; to: number },
  what: string,
  inside: boolean,
): void {
  const before = sends.filter((s) => s.start < window.from);
  const after = sends.filter((s) => s.start > window.to);
  const within = sends.filter((s) => s.start >= window.from && s.start <= window.to);
  // Request starts from the last one before the window to the first one after it.
  const starts = [before.at(-1)?.start ?? -Infinity, ...within.map((s) => s.start), after[0]?.start ?? Infinity];
  const longestPause = Math.max(...starts.slice(1).map((t, i) => t - starts[i]!));
  console.log(
    `${what}: ${window.to - window.from} ms, ${within.length} produce requests started within it, ` +
      `${before.length} before, ${after.length} after; longest pause between requests ${longestPause} ms`,
  );
  expect(window.to).toBeGreaterThanOrEqual(window.from);
  expect(before.length).toBeGreaterThan(0);
  expect(after.length).toBeGreaterThan(0);
  expect(longestPause).toBeLessThan(1000);
  if (inside) expect(within.length).toBeGreaterThan(0);
}

describe('replicas share a job', () => {
  test('a replica joins and the first leaves while input is produced: each holds only its own partitions, results stay exact, both stages move', async () => {
    const input = await newTopic('so-page-in', PARTITIONS);
    const output = uniqueName('so-page-out');
    const name = uniqueName('so-page');
    const generated = [
      ...generateClickstream({ count: GENERATED, seed: 31, eventsPerSecond: 500, users: 300, pages: 40 }),
    ];
    const firstPart = 20_000;
    const producer = await testProducer();

    const env = { TEST_JOB_NAME: name, TEST_INPUT: input, TEST_OUTPUT: output, TEST_IDLE_MS: '600000' };
    // A first part with one replica.
    await produceClickstream(producer, input, generated.slice(0, firstPart), { batchSize: 5000 });
    const first = await startService({ job: 'test/fixtures/jobs/page-windows.ts', env });
    onCleanup(() => first.stop('SIGKILL'));
    await first.waitReady();
    // The service created the output and dead-letter topics; read them from the beginning.
    const seen = await followJob(output, `${name}-dlq`);
    await waitFor('the first part read by the first replica', async () =>
      (await inputRead(first, input)) >= firstPart ? true : undefined,
    );
    await waitForOwnTasks(first, 'the first replica holds tasks for its 16 partitions');

    // From here on the input keeps coming, through the second replica's join and the first's leave.
    const paced = pacedProducer(producer, input, generated.slice(firstPart));
    onCleanup(() => paced.stop());
    await new Promise((r) => setTimeout(r, 500));
    const secondStarted = Date.now();
    const second = await startService({ job: 'test/fixtures/jobs/page-windows.ts', env });
    onCleanup(() => second.stop('SIGKILL'));
    await second.waitReady();
    const shares = await waitFor('both replicas assigned', async () => {
      const [a, b] = [await assigned(first), await assigned(second)];
      return a > 0 && b > 0 && a + b === 2 * PARTITIONS ? [a, b] : undefined;
    });
    // Revoked partitions are dropped from the first replica's workers; each holds only its own.
    await waitForOwnTasks(first, "the first replica's workers hold only its partitions");
    await waitForOwnTasks(second, "the second replica's workers hold only its partitions");
    const firstBefore = await inputRead(first, input);
    await waitFor('both replicas reading new input', async () =>
      (await inputRead(first, input)) > firstBefore && (await inputRead(second, input)) > 0 ? true : undefined,
    );
    // The join: from the second replica's start to the last of the two new assignments; within it,
    // the group's rebalance as the first replica saw it (from being told to rejoin to its new share).
    const joinFrom = logTimes(first, 'consumer group rebalancing').find((t) => t >= secondStarted);
    const joinTo = Math.max(
      ...logTimes(first, 'partitions assigned', (e) => (e['epoch'] as number) >= 2),
      ...logTimes(second, 'partitions assigned'),
    );
    const firstReassigned = logTimes(first, 'partitions assigned', (e) => (e['epoch'] as number) >= 2)[0];

    // The first replica leaves; the second finishes alone.
    const leaveFrom = Date.now();
    expect((await first.stop('SIGTERM')).code).toBe(0);
    await waitFor('the second replica alone holds every partition', async () =>
      (await assigned(second)) === 2 * PARTITIONS ? true : undefined,
    );
    await waitForOwnTasks(second, "the second replica's workers hold all 16 partitions");
    const leaveTo = Math.max(
      ...logTimes(second, 'partitions assigned', (e) => (e['partitions'] as unknown[]).length === 2 * PARTITIONS),
    );
    // A little more after the leave, and at least 40 000 records through the changes in all.
    const leaveDone = Date.now();
    await waitFor('the paced producer past the leave', () =>
      Date.now() - leaveDone >= 500 && paced.sends.length * PACED_BATCH >= 40_000 ? true : undefined,
    );
    const sent = await paced.stop();
    expect(sent).toBeLessThan(GENERATED - firstPart); // stopped by the test, not by running out
    const producedUpTo = generated.slice(0, firstPart + sent);
    await producer.send({ topic: input, messages: flushRecords(maxEventTime(producedUpTo), flushPages(PARTITIONS)) });

    expect(joinFrom).toBeDefined();
    expect(firstReassigned).toBeDefined();
    expectProducedThrough(paced.sends, { from: secondStarted, to: joinTo }, 'second replica joining', true);
    expectProducedThrough(paced.sends, { from: joinFrom!, to: firstReassigned! }, 'first replica rebalancing', false);
    expectProducedThrough(paced.sends, { from: leaveFrom, to: leaveTo }, 'first replica leaving', true);

    const inputRecords = await readAll(input);
    expect(inputRecords).toHaveLength(firstPart + sent + PARTITIONS);
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
      `scale out/in: ${inputRecords.length} records, shares ${JSON.stringify(shares)}, ${results} results for ` +
        `${t.values.size} windows, second replica replayed ${metricValue(metrics, 'sluice_records_replayed_total')}, ` +
        `dropped ${metricValue(metrics, 'sluice_records_duplicate_total')} repartition duplicates`,
    );
    expect((await second.stop('SIGTERM')).code).toBe(0);
  });
});
