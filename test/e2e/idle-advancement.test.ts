/**
 * Idle advancement on a real broker (design §2): when traffic stops, a partition that has had no
 * record for `idleTimeout` lets its stream time follow the wall clock from its last record on, so the
 * last windows close and are emitted without another record. A burst is produced, then nothing:
 * each last window must come out no sooner than the rule allows and soon after, with exact values.
 *
 * With stream time M at the last record (wall time t), a window ending at E closes when stream time
 * reaches E + lateness: at wall time t + max(idleTimeout, E − M + lateness) — the idle timeout when
 * the window's remainder plus lateness is shorter, else that.
 */
import { describe, expect, test } from '@jest/globals';
import { onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { followJob, type JobOutput } from '../support/clickstream-input.ts';
import { metricValue, startService } from '../support/service.ts';
import { newTopic, testProducer, type ReadRecord } from '../support/topics.ts';

const WINDOW_MS = 10_000;
const IDLE_MS = 3_000;
const LATENESS_MS = 1_000;
const INTERVAL_MS = 200; // the fixtures' batch interval
const START = Date.UTC(2024, 3, 1); // a window start
/**
 * After the rule's time, until the test has the window: the last record's fetch (kafkajs waits up to
 * 100 ms) and the cut of the next batch (≤ 1 interval) set the partition's idle clock; the first batch
 * at or after the closing time (≤ 1 interval) emits; its publish (acks from the broker) and the test's
 * own fetch (≤ 100 ms): about 4 intervals. Plus 1 s for a host whose 2 cores other test runs share
 * (GC pauses, a batch that takes longer).
 */
const MARGIN_MS = 4 * INTERVAL_MS + 1_000;

/** Produces the burst; returns when the last request started and when it was acknowledged. */
async function produceBurst(
  topic: string,
  messages: Array<{ partition: number; key: string; value: string }>,
): Promise<{ start: number; acked: number }> {
  const producer = await testProducer();
  let start = 0;
  for (let i = 0; i < messages.length; i += 2000) {
    start = Date.now();
    await producer.send({ topic, messages: messages.slice(i, i + 2000) });
  }
  return { start, acked: Date.now() };
}

/**
 * `perPartition` page views on each of `partitions`, event times evenly from `from` to `to` (the
 * last one at `to`, or at `to[i]` on `partitions[i]`), in event-time order within each partition and
 * interleaved across them: every partition's last record is in the last produce request. Kafka keys
 * are users of their partition (`p<p>-user-<n>`), pages from a small set.
 */
function spread(
  partitions: number[],
  from: number,
  to: number | number[],
  perPartition: number,
): Array<{ partition: number; key: string; value: string }> {
  const pages = ['/', '/home', '/cart', '/search', '/checkout', '/help'];
  const out: Array<{ partition: number; key: string; value: string }> = [];
  for (let i = 0; i < perPartition; i++) {
    partitions.forEach((partition, index) => {
      const end = typeof to === 'number' ? to : to[index]!;
      const ts = end - Math.floor(((perPartition - 1 - i) * (end - from)) / perPartition);
      const user = `p${partition}-user-${(i * 7) % 13}`;
      const page = pages[(i * 5 + partition) % pages.length]!;
      out.push({ partition, key: user, value: JSON.stringify({ page, user, ts }) });
    });
  }
  return out;
}

/** Per `user|windowStart` or `page|windowStart`, how many of `messages` fall into it. */
function countPer(by: 'user' | 'page', messages: ReadonlyArray<{ value: string }>): Map<string, number> {
  const expected = new Map<string, number>();
  for (const m of messages) {
    const e = JSON.parse(m.value) as { page: string; user: string; ts: number };
    const id = `${e[by]}|${Math.floor(e.ts / WINDOW_MS) * WINDOW_MS}`;
    expected.set(id, (expected.get(id) ?? 0) + 1);
  }
  return expected;
}

function pageEnv(name: string, input: string, output: string): Record<string, string> {
  return {
    TEST_JOB_NAME: name,
    TEST_INPUT: input,
    TEST_OUTPUT: output,
    TEST_IDLE_MS: String(IDLE_MS),
    TEST_LATENESS_MS: String(LATENESS_MS),
  };
}

/** Waits for every expected window; a wrong value fails at once. */
async function waitForWindows(
  job: JobOutput,
  expected: ReadonlyMap<string, number>,
  timeoutMs = 30_000,
): Promise<void> {
  await waitFor(
    'every window of the burst',
    () => {
      const outputs = job.outputs();
      const wrong = outputs.find((o) => expected.get(`${o.key}|${o.windowStart}`) !== o.value);
      if (wrong) throw new Error(`wrong result ${JSON.stringify(wrong)}`);
      const ids = new Set(outputs.map((o) => `${o.key}|${o.windowStart}`));
      return [...expected.keys()].every((id) => ids.has(id)) ? true : undefined;
    },
    timeoutMs,
  );
}

/** Exactly the expected results, each once. */
function expectExact(job: JobOutput, expected: ReadonlyMap<string, number>): void {
  const actual = new Map<string, number>();
  for (const o of job.outputs()) {
    const id = `${o.key}|${o.windowStart}`;
    expect(actual.has(id)).toBe(false);
    actual.set(id, o.value);
  }
  expect(actual).toEqual(expected);
}

/**
 * Checks when the results matching `which` came out against the rule: published (the output record's
 * timestamp, set by the service's producer) no sooner than `closesAfterMs` after the last produce
 * request started, and received by the test within `closesAfterMs + marginMs` of its acknowledgement.
 */
function expectEmittedOnTime(
  records: ReadRecord[],
  produced: { start: number; acked: number },
  closesAfterMs: number,
  marginMs: number,
  what: string,
): void {
  expect(records.length).toBeGreaterThan(0);
  const published = Math.min(...records.map((r) => r.timestamp)) - produced.start;
  const received = Math.max(...records.map((r) => r.receivedAt)) - produced.acked;
  console.log(`${what}: published ${published} ms after the last produce, received ${received} ms after its ack`);
  expect(published).toBeGreaterThanOrEqual(closesAfterMs);
  expect(received).toBeLessThanOrEqual(closesAfterMs + marginMs);
}

describe('idle advancement closes the last windows when traffic stops', () => {
  test('count per user (windows in the input partitions): each partition closes its last window on its own idle clock', async () => {
    const input = await newTopic('idle-user-in', 2);
    const output = uniqueName('idle-user-out');
    const name = uniqueName('idle-user');
    // Partition 0's last window ends 0.5 s after its last record: remainder + lateness (1.5 s) is
    // shorter than the idle timeout, which decides (3 s). Partition 1's ends 3.5 s after: 4.5 s.
    const remainders = [500, 3_500];
    const closesAfter = remainders.map((r) => Math.max(IDLE_MS, r + LATENESS_MS));
    const lastWindowStart = START + 2 * WINDOW_MS;
    const messages = spread(
      [0, 1],
      START,
      remainders.map((r) => lastWindowStart + WINDOW_MS - r),
      3000,
    );
    const expected = countPer('user', messages);

    const service = await startService({
      job: 'test/fixtures/jobs/user-windows.ts',
      env: {
        TEST_JOB_NAME: name,
        TEST_INPUT: input,
        TEST_OUTPUT: output,
        TEST_IDLE_MS: String(IDLE_MS),
        TEST_LATENESS_MS: String(LATENESS_MS),
      },
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();
    const seen = await followJob(output, `${name}-dlq`);
    const produced = await produceBurst(input, messages);

    await waitForWindows(seen, expected);
    await new Promise((r) => setTimeout(r, 1000)); // a duplicate would show up too
    await seen.stop();
    expectExact(seen, expected);
    for (const partition of [0, 1]) {
      const last = seen.records.filter(
        (r) =>
          r.topic === output &&
          r.key?.startsWith(`p${partition}-`) &&
          r.value!.includes(`"windowStart":${lastWindowStart},`),
      );
      expectEmittedOnTime(last, produced, closesAfter[partition]!, MARGIN_MS, `partition ${partition}'s last window`);
    }
    expect(metricValue(await service.metrics(), 'sluice_records_late_total')).toBe(0);
    expect((await service.stop('SIGTERM')).code).toBe(0);
  });

  test('count per page through the repartition topic: an upstream partition gone quiet is reported idle and no longer holds the others back; when all are quiet the last windows close', async () => {
    const input = await newTopic('idle-page-in', 4);
    const output = uniqueName('idle-page-out');
    const name = uniqueName('idle-page');
    const service = await startService({
      job: 'test/fixtures/jobs/page-windows.ts',
      env: pageEnv(name, input, output),
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();
    const seen = await followJob(output, `${name}-dlq`);
    const producer = await testProducer();

    // All four partitions: event times [START, START + 5 s). Then partition 3 falls silent while
    // 0–2 go on for 10 s of wall time, in 50 requests, up to 0.5 s before the third window's end.
    const remainder = 500;
    const lastWindowStart = START + 2 * WINDOW_MS;
    const head = spread([0, 1, 2, 3], START, START + 5_000, 500);
    const tail = spread([0, 1, 2], START + 5_000, lastWindowStart + WINDOW_MS - remainder, 5000);
    const quietFrom = Date.now(); // partition 3's last record is appended after this
    await producer.send({ topic: input, messages: head });
    const requests = 50;
    let last = { start: 0, acked: 0 };
    for (let k = 0; k < requests; k++) {
      const start = Date.now();
      await producer.send({
        topic: input,
        messages: tail.slice((k * tail.length) / requests, ((k + 1) * tail.length) / requests),
      });
      last = { start, acked: Date.now() };
      await new Promise((r) => setTimeout(r, Math.max(0, start + INTERVAL_MS - Date.now())));
    }
    const expected = countPer('page', [...head, ...tail]);

    await waitForWindows(seen, expected);
    await new Promise((r) => setTimeout(r, 1000));
    await seen.stop();
    expectExact(seen, expected);
    const outputsOf = (windowStart: number): ReadRecord[] =>
      seen.records.filter((r) => r.topic === output && r.value!.includes(`"windowStart":${windowStart},`));
    // While partition 3 counted, the stage's stream time was at most its 5 s: the first window (end +
    // lateness = 11 s) could close only once partition 3 had been quiet for the idle timeout.
    const first = Math.min(...outputsOf(START).map((r) => r.timestamp));
    console.log(`first window published ${first - quietFrom} ms after partition 3 fell quiet`);
    expect(first - quietFrom).toBeGreaterThanOrEqual(IDLE_MS);
    // Reported idle, it no longer counts: the second window closed while partitions 0–2 still had
    // traffic (it needs their stream time at 21 s, reached about 6 s into their 10 s).
    const second = Math.max(...outputsOf(START + WINDOW_MS).map((r) => r.timestamp));
    console.log(`second window published ${last.start - second} ms before the last request`);
    expect(second).toBeLessThan(last.start);
    // Then all quiet: each upstream partition is reported idle once its idle timeout has passed, and
    // the stage's stream time follows the wall clock (its own idle clock, from the last record it
    // processed). Two hops more than without re-keying: the idle report goes through the repartition
    // topic (publish, fetch ≤ 100 ms, next batch ≤ 1 interval), and the stage's idle clock started when
    // it processed the last records, up to that much after the input partitions' clocks.
    expectEmittedOnTime(
      outputsOf(lastWindowStart),
      last,
      Math.max(IDLE_MS, remainder + LATENESS_MS),
      MARGIN_MS + 4 * INTERVAL_MS,
      'the last windows',
    );
    expect(metricValue(await service.metrics(), 'sluice_records_late_total')).toBe(0);
    expect((await service.stop('SIGTERM')).code).toBe(0);
  });

  // An input partition that never had a record: kafkajs reports a high watermark only with records,
  // so without the end offsets read when the committed positions are, its stage-1 task was never
  // caught up, never reported idle, and the aggregating stage's stream time (the smallest over
  // non-idle upstream partitions) stayed unset: no window of a re-keyed job ever closed.
  test('count per page through the repartition topic: an input partition that never had a record does not hold the windows back', async () => {
    const input = await newTopic('idle-empty-in', 4);
    const output = uniqueName('idle-empty-out');
    const name = uniqueName('idle-empty');
    const service = await startService({
      job: 'test/fixtures/jobs/page-windows.ts',
      env: pageEnv(name, input, output),
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();
    const seen = await followJob(output, `${name}-dlq`);
    const messages = spread([0, 1, 2], START, START + 3 * WINDOW_MS - 500, 3000);
    await produceBurst(input, messages);
    await waitForWindows(seen, countPer('page', messages), 15_000);
    await seen.stop();
    expectExact(seen, countPer('page', messages));
  });
});
