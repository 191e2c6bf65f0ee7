/** The k-way merge that orders re-keyed records from several input partitions by timestamp. */
import { describe, expect, test } from '@jest/globals';
import { type CodecRecord } from '../../src/pool/record-codec.ts';
import { mergeByTimestamp } from '../../src/sink/kafka-sink.ts';

/** A record tagged by its source and position in the offset field: source * 1000 + position. */
function source(index: number, timestamps: number[]): CodecRecord[] {
  return timestamps.map((timestamp, i) => ({
    offset: index * 1000 + i,
    timestamp,
    key: null,
    value: null,
    headers: [],
  }));
}

function merge(sources: CodecRecord[][]): Array<[number, number, number]> {
  return [...mergeByTimestamp(sources.map((s) => s.values()))].map((r) => [
    Math.floor(r.offset / 1000),
    r.offset % 1000,
    r.timestamp,
  ]);
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('mergeByTimestamp', () => {
  test('no sources, or only empty ones, yield nothing', () => {
    expect(merge([])).toEqual([]);
    expect(merge([[], [], []])).toEqual([]);
  });

  test('a single source comes out unchanged, even when unsorted', () => {
    expect(merge([source(0, [5, 1, 9, 1])])).toEqual([
      [0, 0, 5],
      [0, 1, 1],
      [0, 2, 9],
      [0, 3, 1],
    ]);
  });

  test('sorted sources merge into one sorted sequence', () => {
    expect(merge([source(0, [1, 4, 7]), source(1, [2, 5, 8]), [], source(3, [3, 6, 9])])).toEqual([
      [0, 0, 1],
      [1, 0, 2],
      [3, 0, 3],
      [0, 1, 4],
      [1, 1, 5],
      [3, 1, 6],
      [0, 2, 7],
      [1, 2, 8],
      [3, 2, 9],
    ]);
  });

  test('equal timestamps: the earlier source first, and a source keeps its own order', () => {
    expect(merge([source(0, [5, 5]), source(1, [5]), source(2, [5, 5])])).toEqual([
      [0, 0, 5],
      [0, 1, 5],
      [1, 0, 5],
      [2, 0, 5],
      [2, 1, 5],
    ]);
    expect(merge([source(0, [7]), source(1, [3, 7]), source(2, [7])])).toEqual([
      [1, 0, 3],
      [0, 0, 7],
      [1, 1, 7],
      [2, 0, 7],
    ]);
  });

  test('an unsorted source keeps its own order: a low timestamp never overtakes its predecessors', () => {
    const out = merge([source(0, [10, 1, 2]), source(1, [5, 6])]);
    expect(out).toEqual([
      [1, 0, 5],
      [1, 1, 6],
      [0, 0, 10],
      [0, 1, 1],
      [0, 2, 2],
    ]);
  });

  test('random sorted sources: output equals the stable sort by (timestamp, source)', () => {
    const random = seeded(7);
    for (let round = 0; round < 50; round++) {
      const sources = Array.from({ length: 1 + Math.floor(random() * 9) }, (_, s) => {
        const n = Math.floor(random() * 30);
        const ts = Array.from({ length: n }, () => Math.floor(random() * 50)).sort((a, b) => a - b);
        return source(s, ts);
      });
      const expected = sources
        .flat()
        .map((r) => [Math.floor(r.offset / 1000), r.offset % 1000, r.timestamp] as [number, number, number])
        .sort((a, b) => a[2] - b[2] || a[0] - b[0] || a[1] - b[1]);
      expect(merge(sources)).toEqual(expected);
    }
  });

  test('random unsorted sources: every record exactly once and each source in its own order', () => {
    const random = seeded(99);
    for (let round = 0; round < 50; round++) {
      const sources = Array.from({ length: 1 + Math.floor(random() * 6) }, (_, s) =>
        source(
          s,
          Array.from({ length: Math.floor(random() * 20) }, () => Math.floor(random() * 40)),
        ),
      );
      const out = merge(sources);
      expect(out.length).toBe(sources.reduce((n, s) => n + s.length, 0));
      sources.forEach((_, s) => {
        const positions = out.filter(([src]) => src === s).map(([, pos]) => pos);
        expect(positions).toEqual(positions.map((_p, i) => i));
      });
    }
  });

  test('is lazy: pulls one head per source, then one record per record taken', () => {
    const pulled = [0, 0];
    const counting = (index: number, records: CodecRecord[]): Iterator<CodecRecord> => {
      const it = records.values();
      return {
        next: () => {
          pulled[index]!++;
          return it.next();
        },
      };
    };
    const gen = mergeByTimestamp([counting(0, source(0, [1, 2, 3])), counting(1, source(1, [10, 20]))]);
    expect(pulled).toEqual([0, 0]);
    expect(gen.next().value?.timestamp).toBe(1);
    expect(pulled).toEqual([1, 1]);
    expect(gen.next().value?.timestamp).toBe(2);
    expect(pulled).toEqual([2, 1]);
  });
});
