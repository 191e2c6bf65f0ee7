/**
 * Session windows end to end, in exactly-once delivery, on the shared broker: a re-keyed job (clicks →
 * keyBy(user) → repartition topic → session(2 s) → count and sum, final emission) over 6 000 clicks on
 * 4 partitions, out of order by up to 1.5 s (less than the 3 s lateness: no click is late, and late
 * clicks bridge sessions, which merge), each user active in bursts so that sessions end. Half the
 * input is there before the service starts, the rest arrives while it runs; the process is SIGKILLed
 * once results have been committed, the rest of the input is produced while it is down, and a new
 * process restores the open sessions from the changelog and finishes the work.
 *
 * Read committed, the output must equal a recomputation of the input — each user's clicks sorted and
 * cut wherever two are 2 s or more apart — exactly: every session once, with its count and sum,
 * nothing missing, nothing else; and nothing dead-lettered.
 */
import { describe, expect, test } from '@jest/globals';
import { mulberry32 } from '../../examples/generator/clickstream.ts';
import { createTopic, onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { metricValue, startService, type RunningService } from '../support/service.ts';
import { follow, testProducer, type ReadRecord } from '../support/topics.ts';

const PARTITIONS = 4;
const PER_PARTITION = 1_500;
const USERS = 24;
const GAP_MS = 2_000;
const LATENESS_MS = 3_000;
const STEP_MS = 100;
const BASE_TS = Date.UTC(2026, 2, 1);

interface Click {
  user: string;
  ts: number;
  v: number;
  p: number;
  n: number;
}

/**
 * Click `n` of every partition: its user one of those active then (each user is active for 3.5 s of
 * every 6 s of event time, so sessions end), its event time `n` steps in, 30 % of clicks up to 1.5 s
 * behind.
 */
function clicks(): Click[][] {
  const random = mulberry32(42);
  return Array.from({ length: PARTITIONS }, (_, p) =>
    Array.from({ length: PER_PARTITION }, (_, n) => {
      const active = Array.from({ length: USERS }, (_, u) => u).filter((u) => (n + u * 17 + p * 5) % 60 < 35);
      const user = active[Math.floor(random() * active.length)]!;
      const behind = random() < 0.3 ? Math.floor(random() * 1_500) : 0;
      return { user: `user-${user}`, ts: BASE_TS + n * STEP_MS - behind, v: 1 + ((p * 31 + n * 7) % 10), p, n };
    }),
  );
}

/** Each user's clicks sorted by event time and cut where two are `GAP_MS` or more apart. */
function recompute(all: Click[]): Map<string, { count: number; sum: number }> {
  const byUser = new Map<string, number[][]>();
  for (const c of all) byUser.set(c.user, [...(byUser.get(c.user) ?? []), [c.ts, c.v]]);
  const sessions = new Map<string, { count: number; sum: number }>();
  for (const [user, list] of byUser) {
    list.sort((a, b) => a[0]! - b[0]!);
    let start = list[0]![0]!;
    let last = start;
    let count = 0;
    let sum = 0;
    const close = (): void => void sessions.set(`${user}|${start}|${last + GAP_MS}`, { count, sum });
    for (const [ts, v] of list) {
      if (ts! - last >= GAP_MS) {
        close();
        start = ts!;
        count = 0;
        sum = 0;
      }
      last = ts!;
      count++;
      sum += v!;
    }
    close();
  }
  return sessions;
}

interface Result {
  key: string;
  windowStart: number;
  windowEnd: number;
  value: { count: number; sum: number };
}

describe('session windows, exactly-once, SIGKILL and restart', () => {
  test('the output read committed equals the recomputed sessions exactly: none missing, none twice', async () => {
    const job = uniqueName('sess');
    const input = await createTopic(`${job}-in`, PARTITIONS);
    const output = await createTopic(`${job}-out`, PARTITIONS);
    const dlq = await createTopic(`${job}-dlq`, 1);
    const env = {
      TEST_JOB_NAME: job,
      TEST_INPUT: input,
      TEST_OUTPUT: output,
      TEST_GAP_MS: String(GAP_MS),
      TEST_LATENESS_MS: String(LATENESS_MS),
      SLUICE_DELIVERY: 'exactly-once',
      SLUICE_SESSION_TIMEOUT: '6s',
    };
    const perPartition = clicks();
    const all = perPartition.flat();
    const expected = recompute(all);
    const seen = await follow([output, dlq]);
    const results = (): Result[] =>
      seen.records.filter((r) => r.topic === output).map((r) => JSON.parse(r.value!.toString()) as Result);

    const producer = await testProducer();
    const send = async (from: number, to: number): Promise<void> => {
      const messages = perPartition.flatMap((list, p) =>
        list.slice(from, to).map((c) => ({ partition: p, key: c.user, value: JSON.stringify(c) })),
      );
      if (messages.length > 0) await producer.send({ topic: input, acks: -1, messages });
    };
    await send(0, PER_PARTITION / 2);

    let first: RunningService | undefined = await startService({ job: 'test/fixtures/jobs/session-windows.ts', env });
    onCleanup(() => first?.stop('SIGKILL') ?? Promise.resolve());
    await first.waitReady();
    // The second half arrives while the service runs, 50 clicks per partition every 150 ms.
    let produced = PER_PARTITION / 2;
    const live = (async () => {
      while (produced < PER_PARTITION) {
        await send(produced, produced + 50);
        produced += 50;
        await new Promise((r) => setTimeout(r, 150));
      }
    })();
    await waitFor('results committed, input still arriving', () =>
      results().length > 0 && produced >= PER_PARTITION * 0.6 ? true : undefined,
    );
    const killed = await first.stop('SIGKILL');
    first = undefined;
    expect(killed.signal).toBe('SIGKILL');
    const atKill = results().length;
    const producedAtKill = produced;
    await live;
    // Past every click: closes every session (the flush users' own sessions stay open, never emitted).
    const flushTs = BASE_TS + PER_PARTITION * STEP_MS + 60_000;
    await producer.send({
      topic: input,
      acks: -1,
      messages: Array.from({ length: PARTITIONS }, (_, p) => ({
        partition: p,
        key: `flush-${p}`,
        value: JSON.stringify({ user: `flush-${p}`, ts: flushTs, v: 0, p, n: -1 }),
      })),
    });

    const second = await startService({ job: 'test/fixtures/jobs/session-windows.ts', env });
    onCleanup(() => second.stop('SIGKILL'));
    await second.waitReady(60_000);
    await waitFor(
      'a result for every recomputed session',
      () => {
        const ids = new Set(results().map((r) => `${r.key}|${r.windowStart}|${r.windowEnd}`));
        return [...expected.keys()].every((id) => ids.has(id)) ? true : undefined;
      },
      60_000,
    ).catch((error: unknown) => {
      const ids = new Set(results().map((r) => `${r.key}|${r.windowStart}|${r.windowEnd}`));
      console.log(`results for ${[...expected.keys()].filter((id) => ids.has(id)).length} of ${expected.size}`);
      throw error;
    });
    await new Promise((r) => setTimeout(r, 2_000)); // a repeat or a stray result shows up too

    const actual = new Map<string, { count: number; sum: number }>();
    const repeated: string[] = [];
    for (const r of results()) {
      const id = `${r.key}|${r.windowStart}|${r.windowEnd}`;
      if (actual.has(id)) repeated.push(id);
      actual.set(id, r.value);
    }
    expect(repeated).toEqual([]);
    expect([...actual.keys()].filter((id) => !expected.has(id))).toEqual([]);
    expect(actual).toEqual(expected);
    const letters: ReadRecord[] = seen.records.filter((r) => r.topic === dlq);
    expect(letters.map((r) => r.headers['sluice-error-code'])).toEqual([]);

    // The test means something: results on both sides of the kill, sessions restored, merges happened.
    const metrics = await second.metrics();
    expect(atKill).toBeGreaterThan(0);
    expect(atKill).toBeLessThan(expected.size);
    expect(producedAtKill).toBeLessThan(PER_PARTITION);
    expect(metricValue(metrics, 'sluice_state_restored_records_total')).toBeGreaterThan(0);
    expect(metricValue(metrics, 'sluice_records_late_total')).toBe(0);
    // Out-of-order clicks join sessions that the on-time clicks alone would leave apart.
    const onTime = recompute(all.filter((c) => c.ts === BASE_TS + c.n * STEP_MS));
    expect(onTime.size - expected.size).toBeGreaterThan(20);
    expect(expected.size).toBeGreaterThan(300);
    console.log(
      `sessions: ${expected.size} (${atKill} committed before the kill, ${producedAtKill} of ${PER_PARTITION} clicks per partition produced)`,
    );
    expect((await second.stop('SIGTERM')).code).toBe(0);
  });
});
