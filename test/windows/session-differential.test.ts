/**
 * Differential test: SessionStore against a plain reference written here, on 120 000 records over
 * 1 000 keys (skewed, the null key among them) with out-of-order event times — mostly a little, some
 * far behind, so that some records are late, some bridge sessions, some touch sessions already closed
 * — fed in batches of random size with collect() and drainChanges() after each, as a task does.
 *
 * The reference shares no code with src/windows. It keeps every accepted record of every key and, for
 * each new record, cuts the key's accepted records (sorted) into sessions wherever two neighbours are
 * `gap` or more apart; a session is closed when stream time (before the record) has reached its end +
 * lateness. The record is late when one of the sessions its window [t, t + gap) touches is closed, or
 * when that window is itself closed and t falls inside no open session. At the end, every key's
 * sessions are its accepted records cut the same way.
 *
 * Checked: every session (key, start, end, count, sum) and the late records, exactly; in update mode
 * through a reader that upserts results by (key, windowStart) and deletes what a retraction names; with
 * stream time from the records or from the caller between batches (a re-keyed stage); and with the
 * store rebuilt now and then from its own changelog (session keys, ends and accumulators, compacted).
 */
import { describe, expect, test } from '@jest/globals';
import { mulberry32 } from '../../examples/generator/clickstream.ts';
import { decodeSession, encodeSession, readChangelogKey, sessionKey } from '../../src/wire/changelog.ts';
import { type Aggregator, custom } from '../../src/windows/aggregators.ts';
import { SessionStore } from '../../src/windows/session-store.ts';
import { type WindowResult } from '../../src/windows/state-store.ts';

const RECORDS = 120_000;
const KEYS = 1_000;
const GAP = 5_000;
const LATENESS = 6_000;
const STEP = 5;
const WALL = 1_000_000;

interface Rec {
  key: string | null;
  t: number;
  v: number;
}

function generate(seed: number): { records: Rec[]; batches: number[] } {
  const random = mulberry32(seed);
  const records: Rec[] = [];
  for (let i = 0; i < RECORDS; i++) {
    const k = Math.floor(random() ** 1.5 * KEYS);
    const roll = random();
    const behind = roll < 0.6 ? random() * 500 : roll < 0.96 ? random() * 10_000 : random() * 30_000;
    records.push({
      key: k === 0 ? null : `user-${k}`,
      t: 1_700_000_000_000 + i * STEP - Math.floor(behind),
      v: 1 + (i % 9),
    });
  }
  const batches: number[] = [];
  for (let n = 0; n < RECORDS;) {
    const size = Math.min(RECORDS - n, 1 + Math.floor(random() ** 2 * 3_000));
    batches.push(size);
    n += size;
  }
  return { records, batches };
}

interface RefSession {
  start: number;
  end: number;
  count: number;
  sum: number;
}

/** `times` sorted; sessions cut where neighbours are `GAP` or more apart. */
function cut(times: Array<{ t: number; v: number }>): RefSession[] {
  const sessions: RefSession[] = [];
  let current: RefSession | undefined;
  let previous = -Infinity;
  for (const { t, v } of times) {
    if (current === undefined || t - previous >= GAP) {
      current = { start: t, end: t + GAP, count: 0, sum: 0 };
      sessions.push(current);
    }
    current.end = t + GAP;
    current.count += 1;
    current.sum += v;
    previous = t;
  }
  return sessions;
}

/** The first index of sorted `list` whose time is after `t` (`orAt`: `t` or later). */
function firstAfter(list: ReadonlyArray<{ t: number }>, t: number, orAt = false): number {
  let lo = 0;
  let hi = list.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    const x = (list[mid] as { t: number }).t;
    if (x < t || (x === t && !orAt)) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * The sessions of `list` (sorted) that [t, t + GAP) touches: those with a record less than GAP from t.
 * The records less than GAP from t are a run of the list; widened to whole sessions, then cut.
 */
function touchedSessions(list: Array<{ t: number; v: number }>, t: number): RefSession[] {
  let first = firstAfter(list, t - GAP);
  let last = firstAfter(list, t + GAP, true) - 1;
  if (first > last) return [];
  while (first > 0 && list[first]!.t - list[first - 1]!.t < GAP) first--;
  while (last < list.length - 1 && list[last + 1]!.t - list[last]!.t < GAP) last++;
  return cut(list.slice(first, last + 1));
}

interface Reference {
  late: number[];
  sessions: Map<string, { count: number; sum: number }>;
  bridged: number;
  touchedClosed: number;
  insideWithClosedWindow: number;
}

function reference(records: Rec[], batches: number[], clock: 'records' | 'batches'): Reference {
  const accepted = new Map<string | null, Array<{ t: number; v: number }>>();
  const late: number[] = [];
  let bridged = 0;
  let touchedClosed = 0;
  let insideWithClosedWindow = 0;
  let seenMax = -Infinity;
  let batchStartMax = -Infinity;
  let index = 0;
  for (const size of batches) {
    batchStartMax = seenMax;
    for (let n = 0; n < size; n++, index++) {
      const { key, t, v } = records[index] as Rec;
      const streamTime = clock === 'records' ? seenMax : batchStartMax;
      const list = accepted.get(key) ?? [];
      const touched = touchedSessions(list, t);
      const closed = (s: { end: number }): boolean => s.end + LATENESS <= streamTime;
      const ownClosed = closed({ end: t + GAP });
      const inside = touched.some((s) => !closed(s) && s.start <= t && t < s.end);
      let isLate: boolean;
      if (touched.some(closed)) {
        isLate = true;
        touchedClosed++;
      } else if (ownClosed) {
        isLate = !inside;
        if (inside) insideWithClosedWindow++;
      } else isLate = false;
      if (isLate) late.push(index);
      else {
        if (touched.length > 1) bridged++;
        list.splice(firstAfter(list, t), 0, { t, v }); // after equal times: arrival order
        accepted.set(key, list);
      }
      seenMax = Math.max(seenMax, t);
    }
  }
  const sessions = new Map<string, { count: number; sum: number }>();
  for (const [key, list] of accepted) {
    for (const s of cut(list)) sessions.set(`${key}|${s.start}|${s.end}`, { count: s.count, sum: s.sum });
  }
  return { late, sessions, bridged, touchedClosed, insideWithClosedWindow };
}

const countAndSum = custom<number, { count: number; sum: number }, { count: number; sum: number }>({
  init: () => ({ count: 0, sum: 0 }),
  add: (acc, v) => ({ count: acc.count + 1, sum: acc.sum + v }),
  merge: (a, b) => ({ count: a.count + b.count, sum: a.sum + b.sum }),
  result: (acc) => acc,
}) as Aggregator<unknown, unknown, unknown>;

/** A compacted changelog of session entries, read back through the changelog format. */
class Changelog {
  readonly #records = new Map<string, { key: Uint8Array; value: Uint8Array }>();
  write(store: SessionStore): void {
    const { puts, deletes } = store.drainChanges();
    for (const { start, key, acc, end } of puts) {
      const bytes = sessionKey(start, key);
      this.#records.set(Buffer.from(bytes).toString('hex'), { key: bytes, value: encodeSession(end!, acc) });
    }
    for (const { start, key } of deletes) this.#records.delete(Buffer.from(sessionKey(start, key)).toString('hex'));
  }
  restore(store: SessionStore, streamTime: number): SessionStore {
    for (const record of this.#records.values()) {
      const key = readChangelogKey(record.key);
      if (key?.kind !== 'session') throw new Error('not a session entry');
      const { end, acc } = decodeSession(record.value);
      store.restoreEntry(key.start, key.key, acc, end);
    }
    if (Number.isFinite(streamTime)) store.restoreStreamTime(streamTime);
    return store;
  }
}

interface Run {
  late: number[];
  /** Final mode: every result; update mode: what an upserting reader holds at the end. */
  sessions: Map<string, { count: number; sum: number }>;
  retractions: number;
  restores: number;
}

function run(
  records: Rec[],
  batches: number[],
  options: { emit: 'final' | 'update'; clock: 'records' | 'batches'; restoreEvery?: number },
): Run {
  const make = (): SessionStore =>
    new SessionStore({
      assigner: { kind: 'session', gapMs: GAP },
      latenessMs: LATENESS,
      emit: options.emit,
      aggregator: countAndSum,
      idleTimeoutMs: 0,
      externalClock: options.clock === 'batches',
    });
  let store = make();
  const changelog = new Changelog();
  const late: number[] = [];
  const reader = new Map<string, { end: number; count: number; sum: number }>();
  const finals = new Map<string, { count: number; sum: number }>();
  let retractions = 0;
  let restores = 0;
  let seenMax = -Infinity;
  const fail = (what: string, r: WindowResult): never => {
    throw new Error(`${what}: ${JSON.stringify(r)}`);
  };
  const take = (results: WindowResult[]): void => {
    const targets: WindowResult[] = [];
    for (const r of results) {
      const row = `${r.key}|${r.windowStart}`;
      if (r.mergedInto) {
        // A retraction names a row the reader holds, and a session it holds once the batch is read.
        if (options.emit === 'final') fail('a retraction in final mode', r);
        if (reader.get(row)?.end !== r.windowEnd) fail('a retraction of a row the reader does not hold', r);
        reader.delete(row);
        targets.push(r);
        retractions++;
        continue;
      }
      const value = r.value as { count: number; sum: number };
      if (options.emit === 'final') {
        const id = `${row}|${r.windowEnd}`;
        if (finals.has(id) || !r.final) fail('a second or non-final result in final mode', r);
        finals.set(id, value);
      } else reader.set(row, { end: r.windowEnd, ...value });
    }
    for (const r of targets) {
      const into = r.mergedInto!;
      if (reader.get(`${r.key}|${into.windowStart}`)?.end !== into.windowEnd) fail('merged into a row not held', r);
    }
  };
  let index = 0;
  batches.forEach((size, b) => {
    if (options.clock === 'batches') store.advanceTo(seenMax);
    for (let n = 0; n < size; n++, index++) {
      const { key, t, v } = records[index] as Rec;
      if (store.add(key, t, v, WALL) === 'late') late.push(index);
      seenMax = Math.max(seenMax, t);
    }
    take(store.collect());
    changelog.write(store);
    if (options.restoreEvery && b % options.restoreEvery === options.restoreEvery - 1) {
      store = changelog.restore(make(), store.streamTime);
      restores++;
    }
  });
  store.advanceTo(Number.MAX_SAFE_INTEGER);
  take(store.collect());
  const sessions =
    options.emit === 'final'
      ? finals
      : new Map([...reader].map(([row, { end, count, sum }]) => [`${row}|${end}`, { count, sum }]));
  return { late, sessions, retractions, restores };
}

describe('SessionStore against the reference implementation', () => {
  const { records, batches } = generate(20_240_601);
  const byRecords = reference(records, batches, 'records');
  const byBatches = reference(records, batches, 'batches');

  test('the input is not trivial: late records of every kind, bridges, thousands of sessions', () => {
    for (const ref of [byRecords, byBatches]) {
      expect(ref.late.length).toBeGreaterThan(1_000);
      expect(ref.late.length).toBeLessThan(RECORDS / 5);
      expect(ref.touchedClosed).toBeGreaterThan(500);
      expect(ref.insideWithClosedWindow).toBeGreaterThan(100);
      expect(ref.bridged).toBeGreaterThan(1_000);
      expect(ref.sessions.size).toBeGreaterThan(20_000);
    }
    expect(batches.length).toBeGreaterThan(100);
  });

  /** What differs between two session maps: missing, unexpected and wrong ones (a few of each). */
  function differences(
    actual: ReadonlyMap<string, { count: number; sum: number }>,
    expected: ReadonlyMap<string, { count: number; sum: number }>,
  ): string[] {
    const out: string[] = [];
    for (const [id, want] of expected) {
      const got = actual.get(id);
      if (got === undefined) out.push(`missing ${id}`);
      else if (got.count !== want.count || got.sum !== want.sum)
        out.push(`${id}: ${JSON.stringify(got)}, expected ${JSON.stringify(want)}`);
    }
    for (const id of actual.keys()) if (!expected.has(id)) out.push(`unexpected ${id}`);
    return out.slice(0, 10);
  }

  test.each([
    ['final', 'records', 0],
    ['update', 'records', 0],
    ['final', 'batches', 0],
    ['update', 'batches', 0],
    ['final', 'records', 20],
    ['update', 'batches', 25],
  ] as const)(
    'emit %s, stream time from the %s (restored from the changelog every %i batches; 0: never)',
    (emit, clock, restoreEvery) => {
      const expected = clock === 'records' ? byRecords : byBatches;
      const actual = run(records, batches, { emit, clock, ...(restoreEvery ? { restoreEvery } : {}) });
      expect(actual.late.length).toBe(expected.late.length);
      expect(actual.late).toEqual(expected.late);
      expect(differences(actual.sessions, expected.sessions)).toEqual([]);
      expect(actual.sessions.size).toBe(expected.sessions.size);
      if (emit === 'update') expect(actual.retractions).toBeGreaterThan(500);
      if (restoreEvery) expect(actual.restores).toBeGreaterThan(3);
    },
  );
});
