/**
 * WindowStore: window boundaries, stream time and lateness, final vs update emission, replay, idle
 * advancement, atomicity when the aggregator throws, and the commit rule's minOpenOffset.
 */
import { describe, expect, test } from '@jest/globals';
import { IllegalStateError, UserCodeError } from '../../src/errors.ts';
import { type Aggregator, avg, count, custom, sum } from '../../src/windows/aggregators.ts';
import type { ResolvedAssigner } from '../../src/windows/assigners.ts';
import { type WindowResult, WindowStore, type WindowStoreOptions } from '../../src/windows/window-store.ts';

const tumbling10s: ResolvedAssigner = { kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000 };
const sliding10s5s: ResolvedAssigner = { kind: 'sliding', sizeMs: 10_000, slideMs: 5_000 };
const sliding10s3s: ResolvedAssigner = { kind: 'sliding', sizeMs: 10_000, slideMs: 3_000 };

function store(options: Partial<WindowStoreOptions> = {}): WindowStore {
  return new WindowStore({
    assigner: tumbling10s,
    latenessMs: 0,
    emit: 'final',
    aggregator: count() as Aggregator<unknown, unknown, unknown>,
    idleTimeoutMs: 0,
    ...options,
  });
}

/** Compact view of results: [key, start, end, value, final]. */
function rows(results: WindowResult[]): Array<[string | null, number, number, unknown, boolean]> {
  return results.map((r) => [r.key, r.windowStart, r.windowEnd, r.value, r.final]);
}

/** A collecting aggregator: the accumulator is the list of values (pure: returns a new array). */
function listAggregator(failOn?: (acc: unknown[], value: unknown) => boolean): Aggregator<unknown, unknown, unknown> {
  return custom<unknown, unknown[], unknown[]>({
    init: () => [],
    add: (acc, v) => {
      if (failOn?.(acc, v)) throw new Error(`refused ${String(v)}`);
      return [...acc, v];
    },
    merge: (a, b) => [...a, ...b],
    result: (acc) => acc,
  }) as Aggregator<unknown, unknown, unknown>;
}

let offset = 0;
const wall = 1_000_000;

describe('window boundaries', () => {
  test('property: a record goes into every window containing it, starts multiples of the slide, none missing', () => {
    for (const [sizeMs, slideMs] of [
      [10_000, 5_000],
      [10_000, 3_000],
      [7, 2],
      [60_000, 60_000],
    ] as const) {
      for (let i = 0; i < 2_000; i++) {
        const t = Math.floor((i * 7919) % 200_000) - 100_000;
        const s = store({ assigner: { kind: 'sliding', sizeMs, slideMs }, emit: 'update', latenessMs: 1e12 });
        expect(s.add('k', t, 1, 0, wall, false)).toBe('added');
        const windows = s.collect();
        const expected: number[] = [];
        for (let k = Math.ceil((t - sizeMs + 1) / slideMs); k * slideMs <= t; k++) expected.push(k * slideMs + 0); // + 0: no -0
        expect(windows.map((w) => w.windowStart)).toEqual(expected);
        for (const w of windows) {
          expect(w.windowEnd - w.windowStart).toBe(sizeMs);
          expect(w.windowStart <= t && t < w.windowEnd).toBe(true);
        }
      }
    }
  });

  test('an event exactly at a window end belongs to the next window', () => {
    const s = store();
    s.add('k', 9_999, 1, offset++, wall);
    s.add('k', 10_000, 1, offset++, wall);
    s.add('k', 0, 1, offset++, wall); // streamTime 10 000 >= end 10 000 of [0, 10 000): late
    expect(s.openWindows).toBe(2);
    s.add('k', 30_000, 1, offset++, wall);
    expect(rows(s.collect())).toEqual([
      ['k', 0, 10_000, 1, true],
      ['k', 10_000, 20_000, 1, true],
    ]);
    expect(s.openWindows).toBe(1);
  });

  test('negative event times floor towards minus infinity', () => {
    const s = store({ latenessMs: 100_000 });
    s.add('k', -1, 'a', 1, wall);
    s.add('k', -10_000, 'b', 2, wall);
    s.add('k', -10_001, 'c', 3, wall);
    s.add('k', 0, 'd', 4, wall);
    s.add('k', 200_000, 'close', 5, wall);
    expect(rows(s.collect())).toEqual([
      ['k', -20_000, -10_000, 1, true],
      ['k', -10_000, 0, 2, true],
      ['k', 0, 10_000, 1, true],
    ]);
  });

  test('sliding 10s / 5s: each event is in 2 windows', () => {
    const s = store({ assigner: sliding10s5s, aggregator: listAggregator() });
    expect(s.add('k', 12_000, 'x', 1, wall)).toBe('added');
    expect(s.openWindows).toBe(2);
    s.add('k', 15_000, 'y', 2, wall); // [10 000, 20 000) and [15 000, 25 000)
    expect(s.openWindows).toBe(3);
    s.add('k', 100_000, 'close', 3, wall);
    expect(rows(s.collect())).toEqual([
      ['k', 5_000, 15_000, ['x'], true],
      ['k', 10_000, 20_000, ['x', 'y'], true],
      ['k', 15_000, 25_000, ['y'], true],
    ]);
  });

  test('sliding 10s / 3s: 4 windows contain 12s, 3 windows contain 10s', () => {
    const s = store({ assigner: sliding10s3s, aggregator: listAggregator() });
    s.add('k', 12_000, 'a', 1, wall);
    expect(s.openWindows).toBe(4);
    s.add('j', 10_000, 'b', 2, wall);
    expect(s.openWindows).toBe(7);
    s.add('k', 100_000, 'close', 3, wall);
    expect(rows(s.collect())).toEqual([
      ['j', 3_000, 13_000, ['b'], true],
      ['k', 3_000, 13_000, ['a'], true],
      ['j', 6_000, 16_000, ['b'], true],
      ['k', 6_000, 16_000, ['a'], true],
      ['j', 9_000, 19_000, ['b'], true],
      ['k', 9_000, 19_000, ['a'], true],
      ['k', 12_000, 22_000, ['a'], true],
    ]);
  });

  test('sliding with a slide larger than the size leaves gaps: an event in a gap is in no window and is late', () => {
    const s = store({ assigner: { kind: 'sliding', sizeMs: 1_000, slideMs: 5_000 } });
    expect(s.add('k', 500, 1, 1, wall)).toBe('added');
    expect(s.add('k', 2_000, 1, 2, wall)).toBe('late');
    expect(s.streamTime).toBe(2_000);
    expect(s.openWindows).toBe(1);
  });

  test('a sliding record partially late goes only into its still-open windows', () => {
    const s = store({ assigner: sliding10s5s, aggregator: listAggregator() });
    s.add('k', 16_000, 'first', 1, wall); // streamTime 16 000: [5 000, 15 000) closed, [10 000, 20 000) open
    expect(s.add('k', 12_000, 'partial', 2, wall)).toBe('added');
    s.add('k', 100_000, 'close', 3, wall);
    expect(rows(s.collect())).toEqual([
      ['k', 10_000, 20_000, ['first', 'partial'], true],
      ['k', 15_000, 25_000, ['first'], true],
    ]);
  });
});

describe('stream time and lateness', () => {
  test('a record is late exactly when streamTime >= end + lateness (stream time before the record)', () => {
    const s = store({ latenessMs: 2_000 });
    expect(s.streamTime).toBe(-Infinity);
    expect(s.add('k', 5_000, 1, 1, wall)).toBe('added');
    expect(s.streamTime).toBe(5_000);
    expect(s.add('k', 11_999, 1, 2, wall)).toBe('added');
    expect(s.add('k', 1_000, 1, 3, wall)).toBe('added'); // 11 999 < 12 000
    expect(s.streamTime).toBe(11_999);
    expect(s.add('k', 12_000, 1, 4, wall)).toBe('added'); // checked against 11 999; now 12 000
    expect(s.add('k', 9_999, 1, 5, wall)).toBe('late');
    expect(s.streamTime).toBe(12_000);
    expect(s.openWindows).toBe(2);
    expect(rows(s.collect())).toEqual([['k', 0, 10_000, 2, true]]);
  });

  test('the record that moves stream time past a window end is checked against the old stream time', () => {
    const s = store();
    // First record of [0, 10 000) arrives with streamTime -Infinity; the record at 10 000 then closes it.
    expect(s.add('k', 9_999, 1, 1, wall)).toBe('added');
    expect(s.add('k', 25_000, 1, 2, wall)).toBe('added');
    expect(s.add('k', 10_000, 1, 3, wall)).toBe('late'); // [10 000, 20 000) closed at 25 000
    expect(s.streamTime).toBe(25_000);
  });

  test('lateness 0: a window closes as soon as stream time reaches its end', () => {
    const s = store();
    s.add('a', 9_999, 1, 1, wall);
    expect(s.collect()).toEqual([]);
    s.add('b', 10_000, 1, 2, wall);
    expect(s.add('a', 9_999, 1, 3, wall)).toBe('late');
    expect(rows(s.collect())).toEqual([['a', 0, 10_000, 1, true]]);
    expect(s.openWindows).toBe(1);
  });

  test('stream time never goes back', () => {
    const s = store({ latenessMs: 50_000 });
    s.add('k', 40_000, 1, 1, wall);
    s.add('k', 1_000, 1, 2, wall);
    expect(s.streamTime).toBe(40_000);
  });

  test('a restored stream time makes older windows late from the first record', () => {
    const s = store({ initialStreamTime: 20_000 });
    expect(s.streamTime).toBe(20_000);
    expect(s.add('k', 19_999, 1, 1, wall)).toBe('late');
    expect(s.add('k', 20_000, 1, 2, wall)).toBe('added');
    expect(s.openWindows).toBe(1);
  });
});

describe('emit modes', () => {
  test('final: one result per key and window when it closes, then forgotten', () => {
    const s = store({ aggregator: sum() as Aggregator<unknown, unknown, unknown> });
    s.add('a', 1_000, 3, 1, wall);
    s.add('b', 2_000, 4, 2, wall);
    s.add('a', 3_000, 5, 3, wall);
    expect(s.collect()).toEqual([]);
    s.add('a', 15_000, 7, 4, wall);
    expect(s.collect()).toEqual([
      { key: 'a', windowStart: 0, windowEnd: 10_000, value: 8, final: true },
      { key: 'b', windowStart: 0, windowEnd: 10_000, value: 4, final: true },
    ]);
    expect(s.collect()).toEqual([]);
    expect(s.openWindows).toBe(1);
  });

  test('update: changed windows after each batch, closed windows dropped, a closing changed window once as final', () => {
    const s = store({ emit: 'update' });
    s.add('a', 1, 1, 1, wall);
    s.add('b', 2, 1, 2, wall);
    s.add('a', 3, 1, 3, wall);
    expect(rows(s.collect())).toEqual([
      ['a', 0, 10_000, 2, false],
      ['b', 0, 10_000, 1, false],
    ]);
    s.add('b', 4, 1, 4, wall);
    expect(rows(s.collect())).toEqual([['b', 0, 10_000, 2, false]]);
    expect(s.collect()).toEqual([]);

    // Window 0 closes unchanged: dropped silently.
    s.add('c', 10_000, 1, 5, wall);
    expect(rows(s.collect())).toEqual([['c', 10_000, 20_000, 1, false]]);
    expect(s.openWindows).toBe(1);

    // Window 10 000 changes and closes in the same batch: once, final.
    s.add('c', 10_500, 1, 6, wall);
    s.add('a', 20_000, 1, 7, wall);
    expect(rows(s.collect())).toEqual([
      ['c', 10_000, 20_000, 2, true],
      ['a', 20_000, 30_000, 1, false],
    ]);
    expect(s.openWindows).toBe(1);
  });

  test('update: a key changed in several windows and batches is reported per window', () => {
    const s = store({ emit: 'update', assigner: sliding10s5s, latenessMs: 100_000 });
    s.add('k', 7_000, 1, 1, wall);
    expect(rows(s.collect())).toEqual([
      ['k', 0, 10_000, 1, false],
      ['k', 5_000, 15_000, 1, false],
    ]);
    s.add('k', 12_000, 1, 2, wall);
    expect(rows(s.collect())).toEqual([
      ['k', 5_000, 15_000, 2, false],
      ['k', 10_000, 20_000, 1, false],
    ]);
  });

  test('results sorted by window start, then key: null first, then string order', () => {
    const s = store({ assigner: sliding10s5s });
    for (const key of ['b', null, 'null', 'a', 'B', ''] as const) s.add(key, 7_000, 1, 1, wall);
    s.add(null, 7_001, 1, 2, wall);
    s.add('z', 100_000, 1, 3, wall);
    const results = s.collect();
    expect(results.map((r) => [r.windowStart, r.key, r.value])).toEqual([
      [0, null, 2],
      [0, '', 1],
      [0, 'B', 1],
      [0, 'a', 1],
      [0, 'b', 1],
      [0, 'null', 1],
      [5_000, null, 2],
      [5_000, '', 1],
      [5_000, 'B', 1],
      [5_000, 'a', 1],
      [5_000, 'b', 1],
      [5_000, 'null', 1],
    ]);
  });
});

describe('replay', () => {
  test('update: replayed records rebuild state without being reported as changes', () => {
    const s = store({ emit: 'update' });
    s.add('a', 1_000, 1, 1, wall, true);
    s.add('a', 2_000, 1, 2, wall, true);
    s.add('b', 2_000, 1, 3, wall, true);
    expect(s.collect()).toEqual([]);
    expect(s.openWindows).toBe(2);
    s.add('a', 3_000, 1, 4, wall);
    expect(rows(s.collect())).toEqual([['a', 0, 10_000, 3, false]]);
    // 'b' was never changed live: dropped on close; replay advances stream time like a live record.
    s.add('c', 12_000, 1, 5, wall, true);
    expect(s.streamTime).toBe(12_000);
    expect(s.collect()).toEqual([]);
    expect(s.openWindows).toBe(1);
  });

  test('final: replayed records count in the final result', () => {
    const s = store();
    s.add('a', 1_000, 1, 1, wall, true);
    s.add('a', 2_000, 1, 2, wall, true);
    s.add('a', 3_000, 1, 3, wall);
    s.add('a', 10_000, 1, 4, wall);
    expect(rows(s.collect())).toEqual([['a', 0, 10_000, 3, true]]);
  });

  test('a replayed record for a closed window is late too', () => {
    const s = store({ initialStreamTime: 50_000 });
    expect(s.add('a', 1_000, 1, 1, wall, true)).toBe('late');
    expect(s.openWindows).toBe(0);
  });
});

describe('idle advancement', () => {
  test('stream time follows wall-clock time after idleTimeout without records and closes windows', () => {
    const s = store({ idleTimeoutMs: 1_000 });
    s.add('k', 5_000, 1, 1, 100_000);
    s.advanceIdle(100_500);
    expect(s.streamTime).toBe(5_000);
    s.advanceIdle(100_999);
    expect(s.streamTime).toBe(5_000);
    s.advanceIdle(101_000);
    expect(s.streamTime).toBe(6_000);
    expect(s.collect()).toEqual([]);
    s.advanceIdle(105_000);
    expect(s.streamTime).toBe(10_000);
    expect(rows(s.collect())).toEqual([['k', 0, 10_000, 1, true]]);
    s.advanceIdle(104_000); // wall clock going back: stream time stays
    expect(s.streamTime).toBe(10_000);
  });

  test('a record restarts the idle clock from the stream time after it', () => {
    const s = store({ idleTimeoutMs: 1_000 });
    s.add('k', 5_000, 1, 1, 100_000);
    s.advanceIdle(110_000);
    expect(s.streamTime).toBe(15_000);
    s.add('k', 12_000, 1, 2, 110_000); // stream time stays 15 000 (the record's window [10 000, 20 000) is open)
    s.advanceIdle(110_999);
    expect(s.streamTime).toBe(15_000);
    s.advanceIdle(111_500);
    expect(s.streamTime).toBe(16_500);
    s.add('k', 30_000, 1, 3, 112_000);
    s.advanceIdle(113_000);
    expect(s.streamTime).toBe(31_000);
  });

  test('a late record restarts the idle clock too', () => {
    const s = store({ idleTimeoutMs: 1_000 });
    s.add('k', 20_000, 1, 1, 100_000);
    expect(s.add('k', 1_000, 1, 2, 100_900)).toBe('late');
    s.advanceIdle(101_500);
    expect(s.streamTime).toBe(20_000);
    s.advanceIdle(101_900);
    expect(s.streamTime).toBe(21_000);
  });

  test('idleTimeoutMs 0 never advances', () => {
    const s = store();
    s.add('k', 5_000, 1, 1, 100_000);
    s.advanceIdle(10_000_000);
    expect(s.streamTime).toBe(5_000);
  });

  test('no record and no restored stream time: nothing to advance from', () => {
    const s = store({ idleTimeoutMs: 1_000 });
    s.advanceIdle(100_000);
    s.advanceIdle(200_000);
    expect(s.streamTime).toBe(-Infinity);
  });

  test('restored stream time: the first call starts the idle clock', () => {
    const s = store({ idleTimeoutMs: 1_000, initialStreamTime: 50_000 });
    s.advanceIdle(1_000);
    expect(s.streamTime).toBe(50_000);
    s.advanceIdle(1_999);
    expect(s.streamTime).toBe(50_000);
    s.advanceIdle(2_000);
    expect(s.streamTime).toBe(51_000);
  });
});

describe('a throwing aggregator', () => {
  test('leaves the store unchanged, with no partial add to some windows, and the error is re-thrown', () => {
    // Throws for 'boom' into a window that already holds a value: in a sliding pair, one new window
    // (would succeed) and one existing window (throws).
    const s = store({
      assigner: sliding10s5s,
      aggregator: listAggregator((acc, v) => v === 'boom' && acc.length > 0),
    });
    s.add('k', 7_000, 'x', 10, wall); // [0, 10 000), [5 000, 15 000)
    expect(() => s.add('k', 12_000, 'boom', 11, wall)).toThrow('refused boom'); // [5 000, 15 000), [10 000, 20 000)
    expect(s.streamTime).toBe(7_000);
    expect(s.openWindows).toBe(2);
    expect(s.minOpenOffset()).toBe(10);
    // The stream time was not advanced: a record for [0, 10 000) is still on time.
    expect(s.add('k', 1_000, 'y', 12, wall)).toBe('added');
    s.add('z', 100_000, 'close', 13, wall);
    expect(rows(s.collect())).toEqual([
      ['k', 0, 10_000, ['x', 'y'], true],
      ['k', 5_000, 15_000, ['x'], true],
    ]);
  });

  test('a non-numeric value for sum throws a TypeError and changes nothing', () => {
    const s = store({
      emit: 'update',
      idleTimeoutMs: 1_000,
      aggregator: sum() as Aggregator<unknown, unknown, unknown>,
    });
    s.add('k', 1_000, 2, 1, 100_000);
    expect(s.collect()).toHaveLength(1);
    expect(() => s.add('k', 50_000, 'abc', 2, 100_500)).toThrow(TypeError);
    expect(s.streamTime).toBe(1_000);
    expect(s.collect()).toEqual([]); // not marked changed
    // The idle clock was not restarted by the failed record.
    s.advanceIdle(101_000);
    expect(s.streamTime).toBe(2_000);
    s.add('k', 2_000, 3, 3, 101_000);
    expect(rows(s.collect())).toEqual([['k', 0, 10_000, 5, false]]);
  });

  test('a throwing init() changes nothing either', () => {
    const failing = custom<unknown, number, number>({
      init: () => {
        throw new Error('no init');
      },
      add: (a) => a + 1,
      merge: (a, b) => a + b,
      result: (a) => a,
    }) as Aggregator<unknown, unknown, unknown>;
    const s = store({ aggregator: failing });
    expect(() => s.add('k', 1_000, 1, 1, wall)).toThrow('no init');
    expect(s.openWindows).toBe(0);
    expect(s.streamTime).toBe(-Infinity);
    expect(s.minOpenOffset()).toBeUndefined();
  });

  test('a throwing result() fails that window alone: reported with its error and forgotten', () => {
    const agg = custom<unknown, number, number>({
      init: () => 0,
      add: (a) => a + 1,
      merge: (a, b) => a + b,
      result: (a) => {
        if (a === 2) throw new Error('no result');
        return a;
      },
    }) as Aggregator<unknown, unknown, unknown>;
    const s = store({ aggregator: agg });
    s.add('bad', 1_000, 1, 1, wall);
    s.add('bad', 2_000, 1, 2, wall);
    s.add('good', 3_000, 1, 3, wall);
    s.add('k', 11_000, 1, 4, wall);
    const results = s.collect();
    expect(
      results.map((r) => [r.key, r.windowStart, r.value, r.error instanceof Error ? r.error.message : undefined]),
    ).toEqual([
      ['bad', 0, undefined, 'no result'],
      ['good', 0, 1, undefined],
    ]);
    expect(s.openWindows).toBe(1);
    expect(s.collect()).toEqual([]);
  });

  test('a non-finite event time is rejected before anything changes', () => {
    const s = store();
    expect(() => s.add('k', Number.NaN, 1, 1, wall)).toThrow(UserCodeError);
    expect(() => s.add('k', Infinity, 1, 1, wall)).toThrow(UserCodeError);
    expect(s.streamTime).toBe(-Infinity);
    expect(s.openWindows).toBe(0);
  });
});

describe('minOpenOffset', () => {
  test('the smallest offset held by a window not yet collected', () => {
    const s = store({ latenessMs: 5_000 });
    expect(s.minOpenOffset()).toBeUndefined();
    s.add('a', 1_000, 1, 100, wall); // [0, 10 000)
    s.add('b', 11_000, 1, 101, wall); // [10 000, 20 000)
    s.add('b', 2_000, 1, 102, wall);
    s.add('a', 21_000, 1, 103, wall); // [20 000, 30 000); closes [0, 10 000) (at 15 000)
    // Closed but not collected yet: still held, still needed.
    expect(s.minOpenOffset()).toBe(100);
    expect(rows(s.collect())).toEqual([
      ['a', 0, 10_000, 1, true],
      ['b', 0, 10_000, 1, true],
    ]);
    expect(s.minOpenOffset()).toBe(101);
    expect(s.add('a', 500, 1, 104, wall)).toBe('late');
    expect(s.minOpenOffset()).toBe(101);
    s.add('a', 30_000, 1, 105, wall); // closes [10 000, 20 000) (at 25 000)
    expect(s.minOpenOffset()).toBe(101);
    s.collect();
    expect(s.minOpenOffset()).toBe(103);
    s.add('a', 100_000, 1, 106, wall);
    s.collect();
    expect(s.minOpenOffset()).toBe(106);
  });

  test('a record in two sliding windows stays needed until both are collected', () => {
    const s = store({ assigner: sliding10s5s });
    s.add('k', 7_000, 1, 7, wall); // [0, 10 000), [5 000, 15 000)
    s.add('k', 12_000, 1, 8, wall); // [5 000, 15 000), [10 000, 20 000)
    expect(s.collect()).toHaveLength(1); // [0, 10 000) closed at 12 000
    expect(s.minOpenOffset()).toBe(7);
    s.add('k', 15_000, 1, 9, wall);
    expect(rows(s.collect())).toEqual([['k', 5_000, 15_000, 2, true]]);
    expect(s.minOpenOffset()).toBe(8);
  });

  test('offsets arriving out of order (replay) keep the minimum', () => {
    const s = store();
    s.add('k', 1_000, 1, 50, wall);
    s.add('j', 1_000, 1, 40, wall, true);
    expect(s.minOpenOffset()).toBe(40);
  });
});

describe('options and aggregates', () => {
  test('invalid options are refused', () => {
    expect(() => store({ latenessMs: -1 })).toThrow(IllegalStateError);
    expect(() => store({ latenessMs: Number.NaN })).toThrow(IllegalStateError);
    expect(() => store({ idleTimeoutMs: -5 })).toThrow(IllegalStateError);
    expect(() => store({ assigner: { kind: 'tumbling', sizeMs: 0, slideMs: 0 } })).toThrow(IllegalStateError);
    expect(() => store({ initialStreamTime: Number.NaN })).toThrow(IllegalStateError);
  });

  test('the value is aggregator.result(acc): avg of an object field', () => {
    const s = store({ aggregator: avg((v: { ms: number }) => v.ms) as Aggregator<unknown, unknown, unknown> });
    s.add(null, 1_000, { ms: 10 }, 1, wall);
    s.add(null, 2_000, { ms: 15 }, 2, wall);
    s.add('x', 3_000, { ms: 1 }, 3, wall);
    s.add(null, 20_000, { ms: 0 }, 4, wall);
    expect(rows(s.collect())).toEqual([
      [null, 0, 10_000, 12.5, true],
      ['x', 0, 10_000, 1, true],
    ]);
  });

  test('openWindows counts distinct (key, window) pairs', () => {
    const s = store({ assigner: sliding10s5s });
    s.add('a', 7_000, 1, 1, wall);
    s.add('a', 8_000, 1, 2, wall);
    s.add('b', 8_000, 1, 3, wall);
    s.add(null, 8_000, 1, 4, wall);
    s.add('null', 8_000, 1, 5, wall);
    expect(s.openWindows).toBe(8);
  });
});
