/**
 * Differential test: WindowStore (one per partition, batches collected as the engine does) against
 * the plain reference implementation, on random out-of-order input with late and very late records;
 * and the same with restarts: the stores are thrown away at random points (between batches or in the
 * middle of one) and rebuilt from the changelog they wrote, then fed again from the last batch end —
 * the results must still be the reference's, each once.
 */
import { describe, expect, test } from '@jest/globals';
import { mulberry32 } from '../../examples/generator/clickstream.ts';
import { decodeAccumulator, encodeAccumulator, readChangelogKey, windowKey } from '../../src/wire/changelog.ts';
import { type Aggregator, count, sum } from '../../src/windows/aggregators.ts';
import { WindowStore, type WindowStoreOptions } from '../../src/windows/window-store.ts';
import { type RefOptions, type RefRecord, type RefResult, referenceWindows } from './reference-windows.ts';

const PARTITIONS = 4;

function randomRecords(seed: number, n: number, sizeMs: number, latenessMs: number): RefRecord[] {
  const random = mulberry32(seed); // seeded, so a failure reproduces
  const keys: Array<string | null> = [null, 'null', ''];
  for (let i = 0; i < 17; i++) keys.push(`key-${i}`);
  const clocks = Array.from({ length: PARTITIONS }, () => 1_700_000_000_000 + Math.floor(random() * sizeMs));
  const records: RefRecord[] = [];
  for (let i = 0; i < n; i++) {
    const partition = Math.floor(random() * PARTITIONS);
    const clock = (clocks[partition] as number) + Math.floor(random() * (sizeMs / 20));
    clocks[partition] = clock;
    let eventTime = clock - Math.floor(random() * 3 * latenessMs); // out of order up to 3× lateness
    const roll = random();
    if (roll < 0.02)
      eventTime = clock - Math.floor(random() * 20 * sizeMs); // very late
    else if (roll < 0.03) eventTime = clock + Math.floor(random() * sizeMs); // ahead: jumps stream time
    records.push({
      partition,
      key: keys[Math.floor(random() * keys.length)] as string | null,
      eventTime,
      value: Math.floor(random() * 2_001) - 1_000,
    });
  }
  return records;
}

interface Run {
  final: RefResult[];
  flushed: RefResult[];
  late: number[];
  restarts: number;
}

/** One partition's changelog: the latest value per key (compaction), tombstones dropping entries. */
type Changelog = Map<string, { key: Uint8Array; value: Uint8Array }>;

/**
 * Feeds each partition's records into its own store, collecting every `batch` records of the input
 * and then draining each store's changes into its changelog (with its stream time). With `restarts`,
 * a store set is thrown away before record i with probability `restarts` and rebuilt from the
 * changelogs; the records since the last batch end are fed again.
 */
function runStores(records: RefRecord[], options: RefOptions, batch: number, restarts = 0, seed = 0): Run {
  const aggregator = (options.aggregate === 'count' ? count() : sum()) as Aggregator<unknown, unknown, unknown>;
  const storeOptions: WindowStoreOptions = {
    assigner: { kind: options.kind, sizeMs: options.sizeMs, slideMs: options.slideMs ?? options.sizeMs },
    latenessMs: options.latenessMs,
    emit: 'final',
    aggregator,
    idleTimeoutMs: 1,
  };
  const changelogs: Changelog[] = Array.from({ length: PARTITIONS }, () => new Map());
  const streamTimes = new Array<number>(PARTITIONS).fill(-Infinity);
  const fresh = (): WindowStore[] => Array.from({ length: PARTITIONS }, () => new WindowStore(storeOptions));
  const rebuilt = (): WindowStore[] =>
    changelogs.map((changelog, partition) => {
      const store = new WindowStore(storeOptions);
      for (const { key, value } of changelog.values()) {
        const k = readChangelogKey(key);
        if (k?.kind !== 'window') throw new Error('not a window entry');
        store.restoreEntry(k.start, k.key, decodeAccumulator(value));
      }
      store.restoreStreamTime(streamTimes[partition]!);
      return store;
    });
  let stores = fresh();
  const final: RefResult[] = [];
  let late: number[] = [];
  const collectAll = (into: RefResult[]): void => {
    for (const store of stores) {
      for (const r of store.collect()) {
        expect(r.final).toBe(true);
        into.push({ key: r.key, windowStart: r.windowStart, windowEnd: r.windowEnd, value: r.value as number });
      }
    }
  };
  const drainAll = (): void => {
    stores.forEach((store, partition) => {
      const { puts, deletes } = store.drainChanges();
      const changelog = changelogs[partition]!;
      for (const p of puts) {
        const key = windowKey(p.start, p.key);
        changelog.set(Buffer.from(key).toString('hex'), { key, value: encodeAccumulator(p.acc) });
      }
      for (const d of deletes) changelog.delete(Buffer.from(windowKey(d.start, d.key)).toString('hex'));
      streamTimes[partition] = store.streamTime;
    });
  };
  const random = mulberry32(seed);
  let restarted = 0;
  let batchEnd = -1; // index of the last record of the last batch collected and drained
  for (let index = 0; index < records.length; index++) {
    if (restarts > 0 && random() < restarts) {
      // A crash: what was not drained is lost; the changelog and the input are all there is.
      restarted++;
      stores = rebuilt();
      late = late.filter((i) => i <= batchEnd);
      index = batchEnd + 1;
    }
    const record = records[index] as RefRecord;
    const store = stores[record.partition] as WindowStore;
    if (store.add(record.key, record.eventTime, record.value, 0) === 'late') late.push(index);
    if ((index + 1) % batch === 0) {
      collectAll(final);
      drainAll();
      batchEnd = index;
    }
  }
  collectAll(final);
  // Flush what is still open: idle advancement far into the future closes every window (a rebuilt
  // store without records since starts its idle clock at the first call).
  const flushed: RefResult[] = [];
  for (const store of stores) store.advanceIdle(Number.MAX_SAFE_INTEGER / 4);
  for (const store of stores) store.advanceIdle(Number.MAX_SAFE_INTEGER / 2);
  collectAll(flushed);
  for (const store of stores) expect(store.openWindows).toBe(0);
  return { final, flushed, late, restarts: restarted };
}

function sorted(results: RefResult[]): RefResult[] {
  const keyOrder = (k: string | null): string => (k === null ? '0' : `1${k}`);
  return [...results].sort(
    (a, b) =>
      a.windowStart - b.windowStart ||
      (keyOrder(a.key) < keyOrder(b.key) ? -1 : keyOrder(a.key) > keyOrder(b.key) ? 1 : 0) ||
      (a.value as number) - (b.value as number),
  );
}

const cases: Array<{ name: string; options: RefOptions; seed: number }> = [
  {
    name: 'tumbling, count',
    seed: 1,
    options: { kind: 'tumbling', sizeMs: 10_000, latenessMs: 2_000, aggregate: 'count' },
  },
  {
    name: 'tumbling, sum',
    seed: 2,
    options: { kind: 'tumbling', sizeMs: 10_000, latenessMs: 3_000, aggregate: 'sum' },
  },
  {
    name: 'sliding 10s/5s, count',
    seed: 3,
    options: { kind: 'sliding', sizeMs: 10_000, slideMs: 5_000, latenessMs: 2_000, aggregate: 'count' },
  },
  {
    name: 'sliding 10s/3s, sum',
    seed: 4,
    options: { kind: 'sliding', sizeMs: 10_000, slideMs: 3_000, latenessMs: 1_500, aggregate: 'sum' },
  },
  {
    name: 'tumbling, lateness 0, sum',
    seed: 5,
    options: { kind: 'tumbling', sizeMs: 5_000, latenessMs: 0, aggregate: 'sum' },
  },
];

describe('WindowStore against the reference implementation', () => {
  test.each(cases)('$name: 20 000 records over 4 partitions', ({ options, seed }) => {
    const records = randomRecords(seed, 20_000, options.sizeMs, Math.max(options.latenessMs, 1_000));
    const reference = referenceWindows(records, options);
    const run = runStores(records, options, 500);

    // The input exercises what it should: late records, many closed windows, some still open.
    expect(reference.late.length).toBeGreaterThan(200);
    expect(reference.closed.length).toBeGreaterThan(500);
    expect(reference.open.length).toBeGreaterThan(0);

    expect(run.late).toEqual(reference.late);
    expect(run.final).toHaveLength(reference.closed.length);
    expect(sorted(run.final)).toEqual(sorted(reference.closed));
    expect(sorted(run.flushed)).toEqual(sorted(reference.open));
  });

  test.each(cases)('$name, restarted from the changelog about every 700 records', ({ options, seed }) => {
    const records = randomRecords(seed, 20_000, options.sizeMs, Math.max(options.latenessMs, 1_000));
    const reference = referenceWindows(records, options);
    const run = runStores(records, options, 500, 1 / 700, seed + 1_000);
    expect(run.restarts).toBeGreaterThan(10);
    expect(run.late).toEqual(reference.late);
    expect(run.final).toHaveLength(reference.closed.length);
    expect(sorted(run.final)).toEqual(sorted(reference.closed));
    expect(sorted(run.flushed)).toEqual(sorted(reference.open));
  });

  test('the reference on a hand-checked example', () => {
    const records: RefRecord[] = [
      { partition: 0, key: 'a', eventTime: 1_000, value: 5 },
      { partition: 1, key: 'a', eventTime: 2_000, value: 7 },
      { partition: 0, key: 'a', eventTime: 12_000, value: 1 },
      { partition: 0, key: 'a', eventTime: 9_000, value: 2 }, // streamTime 12 000 < 10 000 + 3 000: on time
      { partition: 0, key: null, eventTime: 13_000, value: 4 },
      { partition: 0, key: 'a', eventTime: 9_999, value: 100 }, // streamTime 13 000 >= 13 000: late
      { partition: 1, key: 'a', eventTime: 9_999, value: 3 }, // partition 1's stream time is 2 000
    ];
    const result = referenceWindows(records, { kind: 'tumbling', sizeMs: 10_000, latenessMs: 3_000, aggregate: 'sum' });
    expect(result.late).toEqual([5]);
    expect(result.closed).toEqual([{ key: 'a', windowStart: 0, windowEnd: 10_000, value: 7 }]);
    expect(sorted(result.open)).toEqual([
      { key: 'a', windowStart: 0, windowEnd: 10_000, value: 10 },
      { key: null, windowStart: 10_000, windowEnd: 20_000, value: 4 },
      { key: 'a', windowStart: 10_000, windowEnd: 20_000, value: 1 },
    ]);
    const sliding = referenceWindows([{ partition: 0, key: null, eventTime: 999, value: 1 }], {
      kind: 'sliding',
      sizeMs: 10_000,
      slideMs: 3_000,
      latenessMs: 0,
      aggregate: 'count',
    });
    expect(sorted(sliding.open).map((r) => r.windowStart)).toEqual([-9_000, -6_000, -3_000, 0]);
  });
});
