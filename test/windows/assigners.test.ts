/** Window assigners: epoch-aligned tumbling and sliding windows, boundaries and negative times. */
import { describe, expect, test } from '@jest/globals';
import { assignWindows, resolveAssigner, sliding, tumbling } from '../../src/windows/assigners.ts';

describe('resolveAssigner', () => {
  test('resolves durations to milliseconds', () => {
    expect(resolveAssigner(tumbling('10s'))).toEqual({ kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000 });
    expect(resolveAssigner(sliding('1m', 250))).toEqual({ kind: 'sliding', sizeMs: 60_000, slideMs: 250 });
  });

  test('refuses zero, negative and malformed durations', () => {
    expect(resolveAssigner(tumbling(0))).toBeUndefined();
    expect(resolveAssigner(tumbling(-5))).toBeUndefined();
    expect(resolveAssigner(sliding('10s', '0s'))).toBeUndefined();
    expect(resolveAssigner(tumbling('ten' as never))).toBeUndefined();
  });
});

describe('assignWindows', () => {
  const t10 = { kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000 } as const;

  test('tumbling: the window containing the time; its end belongs to the next window', () => {
    expect(assignWindows(t10, 0)).toEqual([{ start: 0, end: 10_000 }]);
    expect(assignWindows(t10, 9_999)).toEqual([{ start: 0, end: 10_000 }]);
    expect(assignWindows(t10, 10_000)).toEqual([{ start: 10_000, end: 20_000 }]);
    expect(assignWindows(t10, 1_700_000_004_321)).toEqual([{ start: 1_700_000_000_000, end: 1_700_000_010_000 }]);
  });

  test('tumbling: negative times', () => {
    expect(assignWindows(t10, -1)).toEqual([{ start: -10_000, end: 0 }]);
    expect(assignWindows(t10, -10_000)).toEqual([{ start: -10_000, end: 0 }]);
    expect(assignWindows(t10, -10_001)).toEqual([{ start: -20_000, end: -10_000 }]);
  });

  test('sliding 10s / 5s: two windows, oldest first', () => {
    const s = { kind: 'sliding', sizeMs: 10_000, slideMs: 5_000 } as const;
    expect(assignWindows(s, 12_000)).toEqual([
      { start: 5_000, end: 15_000 },
      { start: 10_000, end: 20_000 },
    ]);
    expect(assignWindows(s, 10_000)).toEqual([
      { start: 5_000, end: 15_000 },
      { start: 10_000, end: 20_000 },
    ]);
    expect(assignWindows(s, -1)).toEqual([
      { start: -10_000, end: 0 },
      { start: -5_000, end: 5_000 },
    ]);
  });

  test('sliding 10s / 3s: 3 or 4 windows', () => {
    const s = { kind: 'sliding', sizeMs: 10_000, slideMs: 3_000 } as const;
    expect(assignWindows(s, 12_000).map((w) => w.start)).toEqual([3_000, 6_000, 9_000, 12_000]);
    expect(assignWindows(s, 10_000).map((w) => w.start)).toEqual([3_000, 6_000, 9_000]);
    expect(assignWindows(s, 1_000).map((w) => w.start)).toEqual([-6_000, -3_000, 0]);
    expect(assignWindows(s, 999).map((w) => w.start)).toEqual([-9_000, -6_000, -3_000, 0]);
  });

  test('sliding with slide == size behaves as tumbling', () => {
    const s = { kind: 'sliding', sizeMs: 10_000, slideMs: 10_000 } as const;
    expect(assignWindows(s, 15_000)).toEqual([{ start: 10_000, end: 20_000 }]);
  });

  test('sliding with slide > size: times in the gaps are in no window', () => {
    const s = { kind: 'sliding', sizeMs: 1_000, slideMs: 5_000 } as const;
    expect(assignWindows(s, 5_999)).toEqual([{ start: 5_000, end: 6_000 }]);
    expect(assignWindows(s, 6_000)).toEqual([]);
  });

  test('property: every window contains the time, starts are multiples of the slide, none is missing', () => {
    for (const [sizeMs, slideMs] of [
      [10_000, 5_000],
      [10_000, 3_000],
      [7, 2],
      [60_000, 60_000],
    ] as const) {
      const a = { kind: 'sliding', sizeMs, slideMs } as const;
      for (let i = 0; i < 2_000; i++) {
        const t = Math.floor((i * 7919) % 200_000) - 100_000;
        const windows = assignWindows(a, t);
        const expected: number[] = [];
        for (let k = Math.ceil((t - sizeMs + 1) / slideMs); k * slideMs <= t; k++) expected.push(k * slideMs + 0); // + 0: no -0
        expect(windows.map((w) => w.start)).toEqual(expected);
        for (const w of windows) {
          expect(w.end - w.start).toBe(sizeMs);
          expect(w.start <= t && t < w.end).toBe(true);
        }
      }
    }
  });
});
