import { describe, expect, test } from '@jest/globals';
import { BufferQueue, type RawRecord } from '../../src/queue/buffer-queue.ts';

let nextOffset = 0;
/** `n` records of `size` bytes each, with increasing offsets. */
function records(n: number, size = 10): RawRecord[] {
  return Array.from({ length: n }, () => ({
    offset: String(nextOffset++),
    timestamp: 0,
    key: null,
    value: null,
    headers: [],
    size,
  }));
}

const offsets = (list: RawRecord[] | undefined): number[] => (list ?? []).map((r) => Number(r.offset));
const counts = (batch: Map<string, RawRecord[]>): Record<string, number> =>
  Object.fromEntries([...batch].map(([p, list]) => [p, list.length]));

describe('BufferQueue', () => {
  test('rejects non-positive bounds', () => {
    expect(() => new BufferQueue({ maxRecords: 0, maxBytes: 1 })).toThrow(RangeError);
    expect(() => new BufferQueue({ maxRecords: 1, maxBytes: Number.NaN })).toThrow(RangeError);
  });

  test('push always accepts and accounts records and bytes', () => {
    const q = new BufferQueue({ maxRecords: 10, maxBytes: 1000 });
    q.setPartitions(['t:0', 't:1']);
    q.push('t:0', records(30, 7));
    q.push('t:1', records(2, 5));
    q.push('t:1', []);
    expect(q.records).toBe(32);
    expect(q.bytes).toBe(220);
    expect(q.sizeOf('t:0')).toEqual({ records: 30, bytes: 210 });
    expect(q.sizeOf('t:1')).toEqual({ records: 2, bytes: 10 });
    expect(q.sizeOf('t:9')).toEqual({ records: 0, bytes: 0 });
  });

  describe('shouldPause', () => {
    test('when the partition holds its share of records (maxRecords / n)', () => {
      const q = new BufferQueue({ maxRecords: 100, maxBytes: 1e9 });
      q.setPartitions(['a', 'b', 'c', 'd']);
      q.push('a', records(24));
      expect(q.shouldPause('a')).toBe(false);
      q.push('a', records(1));
      expect(q.shouldPause('a')).toBe(true);
      expect(q.shouldPause('b')).toBe(false);
      expect(q.shouldPause('unknown')).toBe(false);
    });

    test('when the partition holds its share of bytes (maxBytes / n)', () => {
      const q = new BufferQueue({ maxRecords: 1e9, maxBytes: 1000 });
      q.setPartitions(['a', 'b']);
      q.push('a', records(4, 100));
      expect(q.shouldPause('a')).toBe(false);
      q.push('a', records(1, 100));
      expect(q.shouldPause('a')).toBe(true);
    });

    test('shares follow the assignment', () => {
      const q = new BufferQueue({ maxRecords: 100, maxBytes: 1e9 });
      q.setPartitions(['a', 'b']);
      q.push('a', records(30));
      expect(q.shouldPause('a')).toBe(false);
      q.setPartitions(['a', 'b', 'c', 'd']);
      expect(q.shouldPause('a')).toBe(true);
      q.setPartitions(['a']);
      expect(q.shouldPause('a')).toBe(false);
    });

    test('a partition pushed before any assignment joins the set', () => {
      const q = new BufferQueue({ maxRecords: 10, maxBytes: 1e9 });
      q.push('a', records(5));
      expect(q.shouldPause('a')).toBe(false);
      q.push('b', records(5));
      expect(q.shouldPause('a')).toBe(true);
      expect(q.cut(Infinity).size).toBe(2);
    });
  });

  describe('resumable', () => {
    test('a paused partition is resumable at or below half its share, once', () => {
      const q = new BufferQueue({ maxRecords: 20, maxBytes: 1e9 });
      q.setPartitions(['a', 'b']);
      q.push('a', records(12));
      expect(q.shouldPause('a')).toBe(true);
      q.markPaused('a');
      expect(q.pausedPartitions).toEqual(['a']);
      expect(q.resumable()).toEqual([]);
      q.cut(6); // a: 12 → 6, still above half its share (5)
      expect(q.sizeOf('a').records).toBe(6);
      expect(q.resumable()).toEqual([]);
      expect(q.pausedPartitions).toEqual(['a']);
      q.cut(1); // a: 5 = half its share
      expect(q.resumable()).toEqual(['a']);
      expect(q.pausedPartitions).toEqual([]);
      expect(q.resumable()).toEqual([]);
    });

    test('hysteresis on bytes too', () => {
      const q = new BufferQueue({ maxRecords: 1e9, maxBytes: 1000 });
      q.setPartitions(['a']);
      q.push('a', records(10, 100));
      q.markPaused('a');
      q.cut(4);
      expect(q.sizeOf('a').bytes).toBe(600);
      expect(q.resumable()).toEqual([]);
      q.cut(1);
      expect(q.resumable()).toEqual(['a']);
    });

    test('only marked partitions are reported', () => {
      const q = new BufferQueue({ maxRecords: 10, maxBytes: 1e9 });
      q.setPartitions(['a', 'b']);
      q.markPaused('b');
      expect(q.resumable()).toEqual(['b']);
    });

    test('a cleared partition keeps its mark and becomes resumable', () => {
      const q = new BufferQueue({ maxRecords: 10, maxBytes: 1e9 });
      q.setPartitions(['a']);
      q.push('a', records(10));
      q.markPaused('a');
      q.clear('a');
      expect(q.pausedPartitions).toEqual(['a']);
      expect(q.resumable()).toEqual(['a']);
    });
  });

  describe('cut', () => {
    test('FIFO per partition, across pushes, order kept', () => {
      const q = new BufferQueue({ maxRecords: 1000, maxBytes: 1e9 });
      q.setPartitions(['a']);
      const first = records(3);
      const second = records(4);
      const third = records(2);
      q.push('a', first);
      q.push('a', second);
      q.push('a', third);
      const expected = offsets([...first, ...second, ...third]);
      const got: number[] = [];
      for (const n of [2, 3, 1, 10]) got.push(...offsets(q.cut(n).get('a')));
      expect(got).toEqual(expected);
      expect(q.records).toBe(0);
      expect(q.bytes).toBe(0);
      expect(q.cut(10).size).toBe(0);
    });

    test('takes at most maxRecords, everything with Infinity', () => {
      const q = new BufferQueue({ maxRecords: 1000, maxBytes: 1e9 });
      q.push('a', records(50));
      expect(q.cut(20).get('a')).toHaveLength(20);
      expect(q.records).toBe(30);
      expect(q.cut(Infinity).get('a')).toHaveLength(30);
      expect(q.cut(0).size).toBe(0);
      expect(() => q.cut(-1)).toThrow(RangeError);
      expect(() => q.cut(Number.NaN)).toThrow(RangeError);
    });

    test('fair: equal shares for busy partitions', () => {
      const q = new BufferQueue({ maxRecords: 1e6, maxBytes: 1e12 });
      q.setPartitions(['a', 'b', 'c']);
      q.push('a', records(1000));
      q.push('b', records(1000));
      q.push('c', records(1000));
      expect(counts(q.cut(300))).toEqual({ a: 100, b: 100, c: 100 });
    });

    test('fair: the unused share of a small partition goes to the others', () => {
      const q = new BufferQueue({ maxRecords: 1e6, maxBytes: 1e12 });
      q.setPartitions(['a', 'b', 'c', 'd']);
      q.push('a', records(1000));
      q.push('b', records(10));
      q.push('c', records(1000));
      expect(counts(q.cut(300))).toEqual({ a: 145, b: 10, c: 145 });
      expect(q.sizeOf('b').records).toBe(0);
    });

    test('all of maxRecords is used when shares do not divide evenly, and the remainder rotates', () => {
      const q = new BufferQueue({ maxRecords: 1e6, maxBytes: 1e12 });
      q.setPartitions(['a', 'b', 'c']);
      for (const p of ['a', 'b', 'c']) q.push(p, records(100));
      const taken = { a: 0, b: 0, c: 0 };
      for (let i = 0; i < 3; i++) {
        const batch = counts(q.cut(10));
        expect(Object.values(batch).reduce((x, y) => x + y, 0)).toBe(10);
        for (const [p, n] of Object.entries(batch)) taken[p as 'a' | 'b' | 'c'] += n;
      }
      expect(taken).toEqual({ a: 10, b: 10, c: 10 });
    });

    test('fewer records allowed than partitions: no partition starves over successive cuts', () => {
      const q = new BufferQueue({ maxRecords: 1e6, maxBytes: 1e12 });
      q.setPartitions(['a', 'b', 'c', 'd']);
      for (const p of ['a', 'b', 'c', 'd']) q.push(p, records(10));
      const served = new Set<string>();
      for (let i = 0; i < 4; i++) for (const p of q.cut(1).keys()) served.add(p);
      expect([...served].sort()).toEqual(['a', 'b', 'c', 'd']);
    });

    test('only partitions with records appear, in assignment order', () => {
      const q = new BufferQueue({ maxRecords: 1e6, maxBytes: 1e12 });
      q.setPartitions(['c', 'a', 'b']);
      q.push('b', records(1));
      q.push('c', records(1));
      expect([...q.cut(10).keys()]).toEqual(['c', 'b']);
    });

    test('bytes are released with the records', () => {
      const q = new BufferQueue({ maxRecords: 1e6, maxBytes: 1e12 });
      q.push('a', records(5, 3));
      q.push('a', records(5, 7));
      q.cut(6);
      expect(q.sizeOf('a')).toEqual({ records: 4, bytes: 28 });
      expect(q.bytes).toBe(28);
    });

    test('a large backlog is cut quickly, in order (no per-record shifting)', () => {
      const q = new BufferQueue({ maxRecords: 1e7, maxBytes: 1e12 });
      q.setPartitions(['a', 'b']);
      const perPartition = 200_000;
      for (const p of ['a', 'b']) for (let i = 0; i < perPartition / 500; i++) q.push(p, records(500, 1));
      const batches: Array<Map<string, RawRecord[]>> = [];
      const started = performance.now();
      for (let batch = q.cut(10_000); batch.size > 0; batch = q.cut(10_000)) batches.push(batch);
      // A generous bound (it takes tens of ms): it only catches a gross regression.
      expect(performance.now() - started).toBeLessThan(1500);
      expect(batches).toHaveLength(40);
      const a = batches.flatMap((batch) => offsets(batch.get('a')));
      expect(a).toHaveLength(perPartition);
      expect(a.every((offset, i) => i === 0 || offset > (a[i - 1] as number))).toBe(true);
      expect(q.records).toBe(0);
      expect(q.bytes).toBe(0);
    });
  });

  describe('clear and assignment changes', () => {
    test('clear drops one partition, clearAll every one; partitions stay assigned', () => {
      const q = new BufferQueue({ maxRecords: 100, maxBytes: 1e9 });
      q.setPartitions(['a', 'b']);
      q.push('a', records(5, 2));
      q.push('b', records(3, 2));
      q.clear('a');
      q.clear('unknown');
      expect(q.sizeOf('a')).toEqual({ records: 0, bytes: 0 });
      expect(q.records).toBe(3);
      expect(q.bytes).toBe(6);
      expect(offsets(q.cut(10).get('b'))).toHaveLength(3);
      q.push('a', records(4));
      q.push('b', records(4));
      q.clearAll();
      expect(q.records).toBe(0);
      expect(q.bytes).toBe(0);
      expect(q.cut(10).size).toBe(0);
      // Still assigned: the share is 100 / 2.
      q.push('a', records(50));
      expect(q.shouldPause('a')).toBe(true);
    });

    test('setPartitions drops the buffers and pause marks of revoked partitions, keeps the others', () => {
      const q = new BufferQueue({ maxRecords: 100, maxBytes: 1e9 });
      q.setPartitions(['a', 'b', 'c']);
      const kept = records(4, 1);
      q.push('a', kept);
      q.push('b', records(6, 1));
      q.markPaused('a');
      q.markPaused('b');
      q.setPartitions(['a', 'c', 'd']);
      expect(q.records).toBe(4);
      expect(q.bytes).toBe(4);
      expect(q.sizeOf('b')).toEqual({ records: 0, bytes: 0 });
      expect(q.pausedPartitions).toEqual(['a']);
      expect(offsets(q.cut(100).get('a'))).toEqual(offsets(kept));
    });
  });
});
