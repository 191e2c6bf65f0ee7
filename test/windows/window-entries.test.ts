/**
 * `WindowStore.entriesOf` (queryable state, `window-entries.ts`): a key's open windows intersecting
 * `[from, to)`, by start, with their accumulators. Checked against what the store itself emits when
 * those windows close (a recomputation through `collect()`), against the range rule on every
 * boundary, and after windows close, entries are restored, and the null key.
 */
import { describe, expect, test } from '@jest/globals';
import { mulberry32 } from '../../examples/generator/clickstream.ts';
import { type Aggregator, count } from '../../src/windows/aggregators.ts';
import type { ResolvedAssigner } from '../../src/windows/assigners.ts';
import { WindowStore } from '../../src/windows/window-store.ts';

const wall = 1_000_000;

function store(assigner: ResolvedAssigner, latenessMs = 0): WindowStore {
  return new WindowStore({
    assigner,
    latenessMs,
    emit: 'final',
    aggregator: count() as Aggregator<unknown, unknown, unknown>,
    idleTimeoutMs: 0,
  });
}

describe('WindowStore.entriesOf', () => {
  test('property: per key, exactly the windows the store emits when they close, with the same counts', () => {
    for (const assigner of [
      { kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000 },
      { kind: 'sliding', sizeMs: 10_000, slideMs: 3_000 },
    ] as const) {
      const random = mulberry32(11);
      const s = store(assigner, 5_000);
      const keys = Array.from({ length: 40 }, (_, i) => `k${i}`);
      // Event times drift forward, some out of order and some late.
      for (let i = 0; i < 5_000; i++) {
        const t = i * 20 + Math.floor((random() - 0.7) * 8_000);
        s.add(keys[Math.floor(random() * keys.length)]!, t, null, wall);
        if (i % 500 === 499) s.collect();
      }
      s.collect();
      const queried = new Map(keys.map((k) => [k, s.entriesOf(k, -Infinity, Infinity)]));
      expect([...queried.values()].reduce((n, ws) => n + ws.length, 0)).toBe(s.openWindows);
      // Close every window: what comes out, per key, is what the queries saw.
      s.add('zz-closer', 1e12, null, wall);
      const emitted = s.collect().filter((r) => r.key !== 'zz-closer');
      for (const key of keys) {
        const fromStore = emitted
          .filter((r) => r.key === key)
          .map((r) => ({ start: r.windowStart, end: r.windowEnd, acc: r.value }));
        expect({ key, windows: queried.get(key) }).toEqual({ key, windows: fromStore });
      }
    }
  });

  test('[from, to) selects the windows that intersect it, by start; other keys and closed windows are not there', () => {
    const s = store({ kind: 'sliding', sizeMs: 10_000, slideMs: 5_000 }, 1e9);
    for (const t of [1_000, 6_000, 12_000, 12_500, 27_000]) s.add('a', t, null, wall);
    s.add('b', 3_000, null, wall);
    s.collect();
    const starts = (from: number, to: number): number[] => s.entriesOf('a', from, to).map((w) => w.start);
    // 'a' is in the windows starting at -5 000, 0, 5 000, 10 000, 20 000 and 25 000.
    expect(s.entriesOf('a', -Infinity, Infinity)).toEqual([
      { start: -5_000, end: 5_000, acc: 1 },
      { start: 0, end: 10_000, acc: 2 },
      { start: 5_000, end: 15_000, acc: 3 },
      { start: 10_000, end: 20_000, acc: 2 },
      { start: 20_000, end: 30_000, acc: 1 },
      { start: 25_000, end: 35_000, acc: 1 },
    ]);
    expect(starts(15_000, 20_000)).toEqual([10_000]); // [5 000, 15 000) ends where the range starts
    expect(starts(14_999, 15_000)).toEqual([5_000, 10_000]);
    expect(starts(20_000, 25_001)).toEqual([20_000, 25_000]);
    expect(starts(20_000, 25_000)).toEqual([20_000]); // [25 000, …) starts where the range ends
    expect(starts(40_000, 50_000)).toEqual([]);
    expect(starts(10_000, 10_000)).toEqual([]);
    expect(s.entriesOf('b', -Infinity, Infinity).map((w) => w.start)).toEqual([-5_000, 0]);
    expect(s.entriesOf('c', -Infinity, Infinity)).toEqual([]);
  });

  test('closed windows are gone; restored entries and the null key are found', () => {
    const s = store({ kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000 });
    s.add('a', 1_000, null, wall);
    s.add(null, 2_000, null, wall);
    s.add('a', 15_000, null, wall); // stream time 15 000: [0, 10 000) closes at the collect
    expect(s.entriesOf('a', -Infinity, Infinity).map((w) => w.start)).toEqual([0, 10_000]);
    s.collect();
    expect(s.entriesOf('a', -Infinity, Infinity)).toEqual([{ start: 10_000, end: 20_000, acc: 1 }]);
    expect(s.entriesOf(null, -Infinity, Infinity)).toEqual([]);
    s.restoreEntry(20_000, null, 7);
    s.restoreEntry(10_000, 'a', 4);
    expect(s.entriesOf(null, -Infinity, Infinity)).toEqual([{ start: 20_000, end: 30_000, acc: 7 }]);
    expect(s.entriesOf('a', 0, 100_000)).toEqual([{ start: 10_000, end: 20_000, acc: 4 }]);
    expect(s.entriesOf('null', -Infinity, Infinity)).toEqual([]);
  });
});
