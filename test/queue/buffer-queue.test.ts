import { describe, expect, test } from '@jest/globals';
import { BufferQueue, CHUNK_OVERHEAD_BYTES, type CutRecords } from '../../src/queue/buffer-queue.ts';
import { packMessages, readRecords, RECORD_FRAME_BYTES, type PackedRecords } from '../../src/wire/record-codec.ts';

/** What each record costs the bound beyond its payload: the packed layout's framing and its start entry. */
const PER_RECORD = RECORD_FRAME_BYTES + 4;
const CHUNK = CHUNK_OVERHEAD_BYTES;

let nextOffset = 0;
/** A fetch of `n` records, each costing the byte bound `size` bytes (a value of `size - PER_RECORD` bytes). */
function records(n: number, size = PER_RECORD + 10): PackedRecords {
  if (size < PER_RECORD) throw new Error(`a record costs at least ${PER_RECORD} bytes`);
  return packMessages(
    Array.from({ length: n }, () => ({
      offset: String(nextOffset++),
      timestamp: '0',
      key: null,
      value: Buffer.alloc(size - PER_RECORD, 120),
    })),
  );
}

const offsets = (cut: CutRecords | PackedRecords | undefined): number[] => {
  if (cut === undefined) return [];
  const buffer = 'buffer' in cut ? cut.buffer : cut.bytes.slice().buffer;
  return [...readRecords(buffer)].map((r) => r.offset);
};
const counts = (batch: Map<string, CutRecords>): Record<string, number> =>
  Object.fromEntries([...batch].map(([p, cut]) => [p, cut.count]));

describe('BufferQueue', () => {
  test('rejects non-positive bounds', () => {
    expect(() => new BufferQueue({ maxRecords: 0, maxBytes: 1 })).toThrow(RangeError);
    expect(() => new BufferQueue({ maxRecords: 1, maxBytes: Number.NaN })).toThrow(RangeError);
  });

  test('push always accepts and accounts records and bytes', () => {
    const q = new BufferQueue({ maxRecords: 10, maxBytes: 1000 });
    q.setPartitions(['t:0', 't:1']);
    q.push('t:0', records(30, 70));
    q.push('t:1', records(2, 50));
    q.push('t:1', packMessages([]));
    expect(q.records).toBe(32);
    expect(q.bytes).toBe(30 * 70 + 2 * 50 + 2 * CHUNK);
    expect(q.sizeOf('t:0')).toEqual({ records: 30, bytes: 30 * 70 + CHUNK });
    expect(q.sizeOf('t:1')).toEqual({ records: 2, bytes: 2 * 50 + CHUNK });
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
      const q = new BufferQueue({ maxRecords: 1e9, maxBytes: 2 * (400 + 2 * CHUNK) });
      q.setPartitions(['a', 'b']);
      q.push('a', records(2, 100));
      q.push('a', records(1, 100));
      expect(q.shouldPause('a')).toBe(false); // 300 + 2 chunks
      q.push('a', records(1, 100));
      expect(q.shouldPause('a')).toBe(true); // 400 + 3 chunks: what holds them counts too
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
      const q = new BufferQueue({ maxRecords: 1e9, maxBytes: 2 * (500 + CHUNK) });
      q.setPartitions(['a']);
      q.push('a', records(10, 100));
      q.markPaused('a');
      q.cut(4);
      expect(q.sizeOf('a').bytes).toBe(600 + CHUNK);
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
      const expected = [...offsets(first), ...offsets(second), ...offsets(third)];
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
      expect(offsets(q.cut(20).get('a'))).toHaveLength(20);
      expect(q.records).toBe(30);
      expect(offsets(q.cut(Infinity).get('a'))).toHaveLength(30);
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
      q.push('a', records(5, 30));
      q.push('a', records(5, 70));
      q.cut(6); // the first chunk, whole, and one record of the second
      expect(q.sizeOf('a')).toEqual({ records: 4, bytes: 4 * 70 + CHUNK });
      expect(q.bytes).toBe(4 * 70 + CHUNK);
    });

    test('a cut hands over packed records: a whole chunk alone as it is, pieces joined in one copy', () => {
      const q = new BufferQueue({ maxRecords: 1e6, maxBytes: 1e12 });
      const whole = records(3);
      q.push('a', whole);
      const first = q.cut(10).get('a')!;
      expect(first.buffer).toBe(whole.bytes.buffer); // no copy: transferred to the worker as it is
      expect(first).toMatchObject({ count: 3, lastOffset: offsets(whole)[2] });
      const x = records(3);
      const y = records(3);
      const [xs, ys, xBytes] = [offsets(x), offsets(y), x.bytes.length];
      q.push('a', x);
      q.push('a', y);
      const joined = q.cut(5).get('a')!;
      expect(joined.buffer.byteLength).toBe(xBytes + (y.starts[2]! - y.starts[0]!));
      expect(offsets(joined)).toEqual([...xs, ...ys.slice(0, 2)]);
      expect(joined).toMatchObject({ count: 5, lastOffset: ys[1] });
      // A chunk copied out whole is freed at once; one still partly buffered is not.
      expect(x.bytes.buffer.byteLength).toBe(0);
      expect(y.bytes.length).toBeGreaterThan(0);
      expect(offsets(q.cut(5).get('a'))).toEqual(ys.slice(2));
    });

    test('what the bound counts is what the queue holds: packed bytes and their index', () => {
      const q = new BufferQueue({ maxRecords: 1e6, maxBytes: 1e12 });
      const chunk = records(100, 150);
      q.push('a', chunk);
      expect(q.bytes).toBe(chunk.bytes.byteLength + chunk.starts.byteLength - 4 + CHUNK);
    });

    test('a large backlog is cut quickly, in order (no per-record shifting)', () => {
      const q = new BufferQueue({ maxRecords: 1e7, maxBytes: 1e12 });
      q.setPartitions(['a', 'b']);
      const perPartition = 200_000;
      for (const p of ['a', 'b']) for (let i = 0; i < perPartition / 500; i++) q.push(p, records(500));
      const batches: Array<Map<string, CutRecords>> = [];
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
      const cleared = records(5, 32);
      q.push('a', cleared);
      q.push('b', records(3, 32));
      q.clear('a');
      expect(cleared.bytes.buffer.byteLength).toBe(0); // freed at once
      q.clear('unknown');
      expect(q.sizeOf('a')).toEqual({ records: 0, bytes: 0 });
      expect(q.records).toBe(3);
      expect(q.bytes).toBe(3 * 32 + CHUNK);
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
      const kept = records(4, 31);
      const keptOffsets = offsets(kept);
      q.push('a', kept);
      q.push('b', records(6, 31));
      q.markPaused('a');
      q.markPaused('b');
      q.setPartitions(['a', 'c', 'd']);
      expect(q.records).toBe(4);
      expect(q.bytes).toBe(4 * 31 + CHUNK);
      expect(q.sizeOf('b')).toEqual({ records: 0, bytes: 0 });
      expect(q.pausedPartitions).toEqual(['a']);
      expect(offsets(q.cut(100).get('a'))).toEqual(keptOffsets);
    });
  });
});
