/**
 * WindowStore: window boundaries, stream time and lateness, final vs update emission, replay, idle
 * advancement, atomicity when the aggregator throws, and the state-store surface: the changes drained
 * for the changelog (puts, and deletes for closed windows) and the restore from them, which must give
 * a store that goes on exactly as the original would have.
 */
import { describe, expect, test } from '@jest/globals';
import { IllegalStateError, UserCodeError } from '../../src/errors.ts';
import { type Aggregator, avg, count, custom, sum } from '../../src/windows/aggregators.ts';
import type { ResolvedAssigner } from '../../src/windows/assigners.ts';
import { mulberry32 } from '../../examples/generator/clickstream.ts';
import { decodeAccumulator, encodeAccumulator, readChangelogKey, windowKey } from '../../src/wire/changelog.ts';
import {
  type StoreChanges,
  type WindowResult,
  WindowStore,
  type WindowStoreOptions,
} from '../../src/windows/window-store.ts';

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
        expect(s.add('k', t, 1, wall, false)).toBe('added');
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
    s.add('k', 9_999, 1, wall);
    s.add('k', 10_000, 1, wall);
    s.add('k', 0, 1, wall); // streamTime 10 000 >= end 10 000 of [0, 10 000): late
    expect(s.openWindows).toBe(2);
    s.add('k', 30_000, 1, wall);
    expect(rows(s.collect())).toEqual([
      ['k', 0, 10_000, 1, true],
      ['k', 10_000, 20_000, 1, true],
    ]);
    expect(s.openWindows).toBe(1);
  });

  test('negative event times floor towards minus infinity', () => {
    const s = store({ latenessMs: 100_000 });
    s.add('k', -1, 'a', wall);
    s.add('k', -10_000, 'b', wall);
    s.add('k', -10_001, 'c', wall);
    s.add('k', 0, 'd', wall);
    s.add('k', 200_000, 'close', wall);
    expect(rows(s.collect())).toEqual([
      ['k', -20_000, -10_000, 1, true],
      ['k', -10_000, 0, 2, true],
      ['k', 0, 10_000, 1, true],
    ]);
  });

  test('sliding 10s / 5s: each event is in 2 windows', () => {
    const s = store({ assigner: sliding10s5s, aggregator: listAggregator() });
    expect(s.add('k', 12_000, 'x', wall)).toBe('added');
    expect(s.openWindows).toBe(2);
    s.add('k', 15_000, 'y', wall); // [10 000, 20 000) and [15 000, 25 000)
    expect(s.openWindows).toBe(3);
    s.add('k', 100_000, 'close', wall);
    expect(rows(s.collect())).toEqual([
      ['k', 5_000, 15_000, ['x'], true],
      ['k', 10_000, 20_000, ['x', 'y'], true],
      ['k', 15_000, 25_000, ['y'], true],
    ]);
  });

  test('sliding 10s / 3s: 4 windows contain 12s, 3 windows contain 10s', () => {
    const s = store({ assigner: sliding10s3s, aggregator: listAggregator() });
    s.add('k', 12_000, 'a', wall);
    expect(s.openWindows).toBe(4);
    s.add('j', 10_000, 'b', wall);
    expect(s.openWindows).toBe(7);
    s.add('k', 100_000, 'close', wall);
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
    expect(s.add('k', 500, 1, wall)).toBe('added');
    expect(s.add('k', 2_000, 1, wall)).toBe('late');
    expect(s.streamTime).toBe(2_000);
    expect(s.openWindows).toBe(1);
  });

  test('a sliding record partially late goes only into its still-open windows', () => {
    const s = store({ assigner: sliding10s5s, aggregator: listAggregator() });
    s.add('k', 16_000, 'first', wall); // streamTime 16 000: [5 000, 15 000) closed, [10 000, 20 000) open
    expect(s.add('k', 12_000, 'partial', wall)).toBe('added');
    s.add('k', 100_000, 'close', wall);
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
    expect(s.add('k', 5_000, 1, wall)).toBe('added');
    expect(s.streamTime).toBe(5_000);
    expect(s.add('k', 11_999, 1, wall)).toBe('added');
    expect(s.add('k', 1_000, 1, wall)).toBe('added'); // 11 999 < 12 000
    expect(s.streamTime).toBe(11_999);
    expect(s.add('k', 12_000, 1, wall)).toBe('added'); // checked against 11 999; now 12 000
    expect(s.add('k', 9_999, 1, wall)).toBe('late');
    expect(s.streamTime).toBe(12_000);
    expect(s.openWindows).toBe(2);
    expect(rows(s.collect())).toEqual([['k', 0, 10_000, 2, true]]);
  });

  test('the record that moves stream time past a window end is checked against the old stream time', () => {
    const s = store();
    // First record of [0, 10 000) arrives with streamTime -Infinity; the record at 10 000 then closes it.
    expect(s.add('k', 9_999, 1, wall)).toBe('added');
    expect(s.add('k', 25_000, 1, wall)).toBe('added');
    expect(s.add('k', 10_000, 1, wall)).toBe('late'); // [10 000, 20 000) closed at 25 000
    expect(s.streamTime).toBe(25_000);
  });

  test('lateness 0: a window closes as soon as stream time reaches its end', () => {
    const s = store();
    s.add('a', 9_999, 1, wall);
    expect(s.collect()).toEqual([]);
    s.add('b', 10_000, 1, wall);
    expect(s.add('a', 9_999, 1, wall)).toBe('late');
    expect(rows(s.collect())).toEqual([['a', 0, 10_000, 1, true]]);
    expect(s.openWindows).toBe(1);
  });

  test('stream time never goes back', () => {
    const s = store({ latenessMs: 50_000 });
    s.add('k', 40_000, 1, wall);
    s.add('k', 1_000, 1, wall);
    expect(s.streamTime).toBe(40_000);
  });

  test('a restored stream time makes older windows late from the first record', () => {
    const s = store({ initialStreamTime: 20_000 });
    expect(s.streamTime).toBe(20_000);
    expect(s.add('k', 19_999, 1, wall)).toBe('late');
    expect(s.add('k', 20_000, 1, wall)).toBe('added');
    expect(s.openWindows).toBe(1);
  });
});

describe('emit modes', () => {
  test('final: one result per key and window when it closes, then forgotten', () => {
    const s = store({ aggregator: sum() as Aggregator<unknown, unknown, unknown> });
    s.add('a', 1_000, 3, wall);
    s.add('b', 2_000, 4, wall);
    s.add('a', 3_000, 5, wall);
    expect(s.collect()).toEqual([]);
    s.add('a', 15_000, 7, wall);
    expect(s.collect()).toEqual([
      { key: 'a', windowStart: 0, windowEnd: 10_000, value: 8, final: true },
      { key: 'b', windowStart: 0, windowEnd: 10_000, value: 4, final: true },
    ]);
    expect(s.collect()).toEqual([]);
    expect(s.openWindows).toBe(1);
  });

  test('update: changed windows after each batch, closed windows dropped, a closing changed window once as final', () => {
    const s = store({ emit: 'update' });
    s.add('a', 1, 1, wall);
    s.add('b', 2, 1, wall);
    s.add('a', 3, 1, wall);
    expect(rows(s.collect())).toEqual([
      ['a', 0, 10_000, 2, false],
      ['b', 0, 10_000, 1, false],
    ]);
    s.add('b', 4, 1, wall);
    expect(rows(s.collect())).toEqual([['b', 0, 10_000, 2, false]]);
    expect(s.collect()).toEqual([]);

    // Window 0 closes unchanged: dropped silently.
    s.add('c', 10_000, 1, wall);
    expect(rows(s.collect())).toEqual([['c', 10_000, 20_000, 1, false]]);
    expect(s.openWindows).toBe(1);

    // Window 10 000 changes and closes in the same batch: once, final.
    s.add('c', 10_500, 1, wall);
    s.add('a', 20_000, 1, wall);
    expect(rows(s.collect())).toEqual([
      ['c', 10_000, 20_000, 2, true],
      ['a', 20_000, 30_000, 1, false],
    ]);
    expect(s.openWindows).toBe(1);
  });

  test('update: a key changed in several windows and batches is reported per window', () => {
    const s = store({ emit: 'update', assigner: sliding10s5s, latenessMs: 100_000 });
    s.add('k', 7_000, 1, wall);
    expect(rows(s.collect())).toEqual([
      ['k', 0, 10_000, 1, false],
      ['k', 5_000, 15_000, 1, false],
    ]);
    s.add('k', 12_000, 1, wall);
    expect(rows(s.collect())).toEqual([
      ['k', 5_000, 15_000, 2, false],
      ['k', 10_000, 20_000, 1, false],
    ]);
  });

  test('results sorted by window start, then key: null first, then string order', () => {
    const s = store({ assigner: sliding10s5s });
    for (const key of ['b', null, 'null', 'a', 'B', ''] as const) s.add(key, 7_000, 1, wall);
    s.add(null, 7_001, 1, wall);
    s.add('z', 100_000, 1, wall);
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
    s.add('a', 1_000, 1, wall, true);
    s.add('a', 2_000, 1, wall, true);
    s.add('b', 2_000, 1, wall, true);
    expect(s.collect()).toEqual([]);
    expect(s.openWindows).toBe(2);
    s.add('a', 3_000, 1, wall);
    expect(rows(s.collect())).toEqual([['a', 0, 10_000, 3, false]]);
    // 'b' was never changed live: dropped on close; replay advances stream time like a live record.
    s.add('c', 12_000, 1, wall, true);
    expect(s.streamTime).toBe(12_000);
    expect(s.collect()).toEqual([]);
    expect(s.openWindows).toBe(1);
  });

  test('final: replayed records count in the final result', () => {
    const s = store();
    s.add('a', 1_000, 1, wall, true);
    s.add('a', 2_000, 1, wall, true);
    s.add('a', 3_000, 1, wall);
    s.add('a', 10_000, 1, wall);
    expect(rows(s.collect())).toEqual([['a', 0, 10_000, 3, true]]);
  });

  test('a replayed record for a closed window is late too', () => {
    const s = store({ initialStreamTime: 50_000 });
    expect(s.add('a', 1_000, 1, wall, true)).toBe('late');
    expect(s.openWindows).toBe(0);
  });
});

describe('idle advancement', () => {
  test('stream time follows wall-clock time after idleTimeout without records and closes windows', () => {
    const s = store({ idleTimeoutMs: 1_000 });
    s.add('k', 5_000, 1, 100_000);
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
    s.add('k', 5_000, 1, 100_000);
    s.advanceIdle(110_000);
    expect(s.streamTime).toBe(15_000);
    s.add('k', 12_000, 1, 110_000); // stream time stays 15 000 (the record's window [10 000, 20 000) is open)
    s.advanceIdle(110_999);
    expect(s.streamTime).toBe(15_000);
    s.advanceIdle(111_500);
    expect(s.streamTime).toBe(16_500);
    s.add('k', 30_000, 1, 112_000);
    s.advanceIdle(113_000);
    expect(s.streamTime).toBe(31_000);
  });

  test('a late record restarts the idle clock too', () => {
    const s = store({ idleTimeoutMs: 1_000 });
    s.add('k', 20_000, 1, 100_000);
    expect(s.add('k', 1_000, 1, 100_900)).toBe('late');
    s.advanceIdle(101_500);
    expect(s.streamTime).toBe(20_000);
    s.advanceIdle(101_900);
    expect(s.streamTime).toBe(21_000);
  });

  test('idleTimeoutMs 0 never advances', () => {
    const s = store();
    s.add('k', 5_000, 1, 100_000);
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
    s.add('k', 7_000, 'x', wall); // [0, 10 000), [5 000, 15 000)
    expect(() => s.add('k', 12_000, 'boom', wall)).toThrow('refused boom'); // [5 000, 15 000), [10 000, 20 000)
    expect(s.streamTime).toBe(7_000);
    expect(s.openWindows).toBe(2);
    // Nothing of the failed record is logged for the changelog: only the first record's two windows.
    expect(changes(s)).toEqual({
      puts: [
        [5_000, 'k', ['x']],
        [0, 'k', ['x']],
      ],
      deletes: [],
    });
    // The stream time was not advanced: a record for [0, 10 000) is still on time.
    expect(s.add('k', 1_000, 'y', wall)).toBe('added');
    s.add('z', 100_000, 'close', wall);
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
    s.add('k', 1_000, 2, 100_000);
    expect(s.collect()).toHaveLength(1);
    expect(() => s.add('k', 50_000, 'abc', 100_500)).toThrow(TypeError);
    expect(s.streamTime).toBe(1_000);
    expect(s.collect()).toEqual([]); // not marked changed
    // The idle clock was not restarted by the failed record.
    s.advanceIdle(101_000);
    expect(s.streamTime).toBe(2_000);
    s.add('k', 2_000, 3, 101_000);
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
    expect(() => s.add('k', 1_000, 1, wall)).toThrow('no init');
    expect(s.openWindows).toBe(0);
    expect(s.streamTime).toBe(-Infinity);
    expect(s.drainChanges()).toEqual({ puts: [], deletes: [] });
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
    s.add('bad', 1_000, 1, wall);
    s.add('bad', 2_000, 1, wall);
    s.add('good', 3_000, 1, wall);
    s.add('k', 11_000, 1, wall);
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
    expect(() => s.add('k', Number.NaN, 1, wall)).toThrow(UserCodeError);
    expect(() => s.add('k', Infinity, 1, wall)).toThrow(UserCodeError);
    expect(s.streamTime).toBe(-Infinity);
    expect(s.openWindows).toBe(0);
  });
});

/** Drained changes, compact: puts as [start, key, acc], deletes as [start, key]. */
function changes(s: WindowStore): {
  puts: Array<[number, string | null, unknown]>;
  deletes: Array<[number, string | null]>;
} {
  const { puts, deletes } = s.drainChanges();
  return {
    puts: puts.map((p) => [p.start, p.key, p.acc]),
    deletes: deletes.map((d) => [d.start, d.key]),
  };
}

describe('drainChanges: what the changelog gets', () => {
  test('every entry changed since the last drain, once, with its accumulator at the drain; then nothing', () => {
    const s = store({ aggregator: sum() as Aggregator<unknown, unknown, unknown>, latenessMs: 5_000 });
    expect(changes(s)).toEqual({ puts: [], deletes: [] });
    s.add('a', 1_000, 1, wall);
    s.add('b', 2_000, 10, wall);
    s.add('a', 3_000, 2, wall); // the same entry again: one put, its latest value
    s.add('a', 12_000, 5, wall); // [10 000, 20 000)
    expect(changes(s)).toEqual({
      puts: [
        [0, 'a', 3],
        [0, 'b', 10],
        [10_000, 'a', 5],
      ],
      deletes: [],
    });
    expect(changes(s)).toEqual({ puts: [], deletes: [] });
    s.add('b', 4_000, 1, wall);
    expect(changes(s)).toEqual({ puts: [[0, 'b', 11]], deletes: [] });
  });

  test('a drain does not depend on collect(): changes are logged whether or not results were emitted', () => {
    const s = store({ emit: 'update' });
    s.add('a', 1_000, 1, wall);
    expect(rows(s.collect())).toEqual([['a', 0, 10_000, 1, false]]);
    s.add('a', 2_000, 1, wall);
    expect(changes(s)).toEqual({ puts: [[0, 'a', 2]], deletes: [] });
    expect(rows(s.collect())).toEqual([['a', 0, 10_000, 2, false]]);
    expect(changes(s)).toEqual({ puts: [], deletes: [] });
  });

  test('replayed adds are logged like live ones (they rebuild state the changelog must hold)', () => {
    const s = store({ emit: 'update' });
    s.add('a', 1_000, 1, wall, true);
    s.add('a', 2_000, 1, wall, true);
    s.add('b', 2_000, 1, wall, true);
    expect(s.collect()).toEqual([]); // not emitted as updates...
    expect(changes(s)).toEqual({
      puts: [
        [0, 'a', 2],
        [0, 'b', 1],
      ],
      deletes: [],
    }); // ...but logged
  });

  test('a closed window gives a delete per entry, not a put, even when it changed since the last drain', () => {
    const s = store({ latenessMs: 1_000 });
    s.add('a', 1_000, 1, wall);
    s.add(null, 2_000, 1, wall);
    expect(changes(s).puts).toHaveLength(2);
    s.add('a', 3_000, 1, wall); // changed...
    s.add('b', 9_000, 1, wall); // ...and new...
    s.add('c', 11_000, 1, wall); // ...then closed (at 11 000 = 10 000 + 1 000)
    // Closed but not yet collected: still an entry, still put.
    expect(s.openWindows).toBe(4);
    expect(rows(s.collect())).toEqual([
      [null, 0, 10_000, 1, true],
      ['a', 0, 10_000, 2, true],
      ['b', 0, 10_000, 1, true],
    ]);
    expect(changes(s)).toEqual({
      puts: [[10_000, 'c', 1]],
      deletes: [
        [0, 'a'],
        [0, null],
        [0, 'b'],
      ],
    });
    expect(changes(s)).toEqual({ puts: [], deletes: [] });
  });

  test('a late record logs nothing; a sliding record logs each of its open windows', () => {
    const s = store({ assigner: sliding10s5s });
    s.add('k', 16_000, 1, wall); // [10 000, 20 000), [15 000, 25 000)
    changes(s);
    expect(s.add('k', 4_000, 1, wall)).toBe('late'); // [0, 10 000) and [-5 000, 5 000) closed
    expect(changes(s)).toEqual({ puts: [], deletes: [] });
    expect(s.add('k', 12_000, 1, wall)).toBe('added'); // [10 000, 20 000) open, [5 000, 15 000) closed
    expect(changes(s)).toEqual({ puts: [[10_000, 'k', 2]], deletes: [] });
    s.add('k', 18_000, 1, wall);
    expect(changes(s)).toEqual({
      puts: [
        [15_000, 'k', 2],
        [10_000, 'k', 3],
      ],
      deletes: [],
    });
  });

  test('null and "null" are two keys, in the log as in the windows', () => {
    const s = store();
    s.add(null, 1_000, 1, wall);
    s.add('null', 1_000, 1, wall);
    s.add(null, 1_500, 1, wall);
    expect(changes(s).puts).toEqual([
      [0, null, 2],
      [0, 'null', 1],
    ]);
    s.add('x', 10_000, 1, wall);
    s.collect();
    expect(changes(s).deletes).toEqual([
      [0, null],
      [0, 'null'],
    ]);
  });

  test('a failing result() still deletes its window: it is forgotten like any closed window', () => {
    const agg = custom<unknown, number, number>({
      init: () => 0,
      add: (a) => a + 1,
      merge: (a, b) => a + b,
      result: () => {
        throw new Error('no result');
      },
    }) as Aggregator<unknown, unknown, unknown>;
    const s = store({ aggregator: agg });
    s.add('bad', 1_000, 1, wall);
    changes(s);
    s.add('k', 11_000, 1, wall);
    expect(s.collect().map((r) => [r.key, r.error instanceof Error])).toEqual([['bad', true]]);
    expect(changes(s)).toEqual({ puts: [[10_000, 'k', 1]], deletes: [[0, 'bad']] });
  });
});

describe('restoring from the changelog', () => {
  test('restored entries and stream time are not logged, and count as open windows', () => {
    const s = store({ aggregator: sum() as Aggregator<unknown, unknown, unknown>, latenessMs: 5_000 });
    s.restoreEntry(10_000, 'a', 7);
    s.restoreEntry(0, 'b', 3); // an earlier window after a later one: kept in start order
    s.restoreEntry(10_000, null, 1);
    s.restoreEntry(10_000, 'a', 8); // a later record of the changelog for the same entry wins
    s.restoreStreamTime(12_000);
    expect(s.openWindows).toBe(3);
    expect(s.streamTime).toBe(12_000);
    expect(changes(s)).toEqual({ puts: [], deletes: [] });
    // Restored state behaves like state that was added: lateness, updates and emission.
    expect(s.add('b', 1_000, 2, wall)).toBe('added'); // 12 000 < 10 000 + 5 000
    expect(changes(s)).toEqual({ puts: [[0, 'b', 5]], deletes: [] });
    s.add('c', 15_000, 1, wall);
    expect(rows(s.collect())).toEqual([['b', 0, 10_000, 5, true]]);
    s.add('c', 25_000, 1, wall);
    expect(rows(s.collect())).toEqual([
      [null, 10_000, 20_000, 1, true],
      ['a', 10_000, 20_000, 8, true],
      ['c', 10_000, 20_000, 1, true],
    ]);
    expect(changes(s).deletes).toEqual([
      [0, 'b'],
      [10_000, 'a'],
      [10_000, null],
      [10_000, 'c'],
    ]);
  });

  test('restoreDelete forgets an entry, and its window with its last entry; unknown entries are ignored', () => {
    const s = store();
    s.restoreEntry(0, 'a', 1);
    s.restoreEntry(0, 'b', 1);
    s.restoreEntry(10_000, 'a', 1);
    s.restoreDelete(0, 'a');
    s.restoreDelete(0, 'zz');
    s.restoreDelete(50_000, 'a');
    s.restoreDelete(0, null); // null is not 'a' nor 'b'
    expect(s.openWindows).toBe(2);
    s.restoreDelete(10_000, 'a');
    expect(s.openWindows).toBe(1);
    // A window emptied by deletes is gone: closing it emits nothing, and a put brings it back.
    s.restoreEntry(20_000, 'c', 4);
    s.add('z', 100_000, 1, wall);
    expect(rows(s.collect())).toEqual([
      ['b', 0, 10_000, 1, true],
      ['c', 20_000, 30_000, 4, true],
    ]);
    expect(changes(s).deletes).toEqual([
      [0, 'b'],
      [20_000, 'c'],
    ]);
  });

  test('restoreStreamTime never moves stream time back, and makes older windows late', () => {
    const s = store({ initialStreamTime: 30_000 });
    s.restoreStreamTime(20_000);
    expect(s.streamTime).toBe(30_000);
    s.restoreStreamTime(45_000);
    expect(s.streamTime).toBe(45_000);
    expect(s.add('k', 34_999, 1, wall)).toBe('late');
    expect(s.add('k', 40_000, 1, wall)).toBe('added');
  });

  test('idle advancement after a restore: the first batch starts the idle clock at the restored stream time', () => {
    const s = store({ idleTimeoutMs: 1_000 });
    s.restoreEntry(0, 'k', 1);
    s.restoreStreamTime(5_000);
    s.advanceIdle(200_000);
    expect(s.streamTime).toBe(5_000);
    s.advanceIdle(200_999);
    expect(s.streamTime).toBe(5_000);
    s.advanceIdle(206_000);
    expect(s.streamTime).toBe(11_000);
    expect(rows(s.collect())).toEqual([['k', 0, 10_000, 1, true]]);
  });
});

/**
 * Property: a store rebuilt from the changelog another store wrote (its drained changes, through the
 * changelog's bytes) and fed the records that followed emits exactly what the original emits, and
 * logs the same changes. The original collects and drains at the end of each batch, as a task does;
 * the restart comes after one of those drains, so the records after it are fed again.
 */
describe('property: restore from the drained changes, then the same records, emits exactly what the original emits', () => {
  interface Rec {
    key: string | null;
    eventTime: number;
    value: number;
  }
  interface LogRecord {
    key: Uint8Array;
    value: Uint8Array | null;
  }

  function randomRecords(seed: number, n: number, sizeMs: number, latenessMs: number): Rec[] {
    const random = mulberry32(seed);
    const keys: Array<string | null> = [null, 'null', '', 'é', 'a', 'b', 'c', 'd'];
    let clock = 1_700_000_000_000;
    const records: Rec[] = [];
    for (let i = 0; i < n; i++) {
      clock += Math.floor(random() * (sizeMs / 10));
      let eventTime = clock - Math.floor(random() * 2 * (latenessMs + 1));
      if (random() < 0.03) eventTime = clock - Math.floor(random() * 10 * sizeMs); // very late
      records.push({ key: keys[Math.floor(random() * keys.length)]!, eventTime, value: Math.floor(random() * 100) });
    }
    return records;
  }

  function batchesOf(records: Rec[], seed: number): Rec[][] {
    const random = mulberry32(seed);
    const batches: Rec[][] = [];
    for (let i = 0; i < records.length;) {
      const size = Math.floor(random() * 40); // empty batches too
      batches.push(records.slice(i, i + size));
      i += size;
    }
    return batches;
  }

  /** A changelog as a topic holds it: window entries and tombstones, and the progress (stream time). */
  function append(log: LogRecord[], drained: StoreChanges): void {
    for (const p of drained.puts) log.push({ key: windowKey(p.start, p.key), value: encodeAccumulator(p.acc) });
    for (const d of drained.deletes) log.push({ key: windowKey(d.start, d.key), value: null });
  }

  /** What compaction leaves: the last record per key, in the order of those last records. */
  function compact(log: LogRecord[]): LogRecord[] {
    const last = new Map<string, number>();
    log.forEach((r, i) => last.set(Buffer.from(r.key).toString('hex'), i));
    return log.filter((r, i) => last.get(Buffer.from(r.key).toString('hex')) === i && r.value !== null);
  }

  function restoreFrom(options: WindowStoreOptions, log: LogRecord[], streamTime: number): WindowStore {
    const s = new WindowStore(options);
    for (const r of log) {
      const key = readChangelogKey(r.key);
      if (key?.kind !== 'window') throw new Error('not a window entry');
      if (r.value === null) s.restoreDelete(key.start, key.key);
      else s.restoreEntry(key.start, key.key, decodeAccumulator(r.value));
    }
    s.restoreStreamTime(streamTime);
    return s;
  }

  interface Batch {
    results: WindowResult[];
    late: number;
    changes: { puts: StoreChanges['puts']; deletes: string[] };
  }

  function runBatch(s: WindowStore, batch: Rec[], log?: LogRecord[]): Batch {
    let late = 0;
    for (const r of batch) if (s.add(r.key, r.eventTime, r.value, wall) === 'late') late++;
    const results = s.collect();
    const drained = s.drainChanges();
    if (log) append(log, drained);
    const deletes = drained.deletes.map((d) => `${d.start}/${JSON.stringify(d.key)}`).sort();
    return { results, late, changes: { puts: drained.puts, deletes } };
  }

  const cases: Array<{ name: string; options: Partial<WindowStoreOptions>; seed: number }> = [
    { name: 'tumbling, final, count', seed: 1, options: { latenessMs: 2_000 } },
    {
      name: 'tumbling, update, sum',
      seed: 2,
      options: { emit: 'update', latenessMs: 3_000, aggregator: sum() as Aggregator<unknown, unknown, unknown> },
    },
    {
      name: 'sliding 10s/3s, final, avg (object accumulators)',
      seed: 3,
      options: {
        assigner: sliding10s3s,
        latenessMs: 1_000,
        aggregator: avg((v: number) => v) as Aggregator<unknown, unknown, unknown>,
      },
    },
    {
      name: 'sliding 10s/5s, update, list (array accumulators), lateness 0',
      seed: 4,
      options: { assigner: sliding10s5s, emit: 'update', aggregator: listAggregator() },
    },
  ];

  test.each(cases)('$name', ({ options, seed }) => {
    const full: WindowStoreOptions = {
      assigner: tumbling10s,
      latenessMs: 0,
      emit: 'final',
      aggregator: count() as Aggregator<unknown, unknown, unknown>,
      idleTimeoutMs: 0,
      ...options,
    };
    const records = randomRecords(seed, 3_000, 10_000, full.latenessMs);
    const batches = batchesOf(records, seed + 100);
    const original = new WindowStore(full);
    const log: LogRecord[] = [];
    const logLengths: number[] = [];
    const streamTimes: number[] = [];
    const reference = batches.map((b) => {
      const batch = runBatch(original, b, log);
      logLengths.push(log.length);
      streamTimes.push(original.streamTime);
      return batch;
    });
    // Non-trivial: late records, windows closed (deletes), windows emitted.
    expect(reference.reduce((n, b) => n + b.late, 0)).toBeGreaterThan(20);
    expect(reference.reduce((n, b) => n + b.changes.deletes.length, 0)).toBeGreaterThan(100);
    expect(reference.reduce((n, b) => n + b.results.length, 0)).toBeGreaterThan(100);

    const random = mulberry32(seed + 7);
    const splits = [
      0,
      1,
      batches.length - 1,
      ...Array.from({ length: 8 }, () => Math.floor(random() * batches.length)),
    ];
    for (const k of splits) {
      // The restart: every drain up to batch k is in the changelog, as is the stream time.
      const upTo = log.slice(0, k === 0 ? 0 : logLengths[k - 1]);
      const streamTime = k === 0 ? -Infinity : streamTimes[k - 1]!;
      for (const changelog of [upTo, compact(upTo)]) {
        const restored = restoreFrom(full, changelog, streamTime);
        expect(restored.drainChanges()).toEqual({ puts: [], deletes: [] });
        expect(restored.openWindows).toBe(k === 0 ? 0 : countOpen(upTo));
        batches.slice(k).forEach((b, i) => {
          const again = runBatch(restored, b);
          const ref = reference[k + i]!;
          expect(again.results).toEqual(ref.results);
          expect(again.late).toBe(ref.late);
          expect(again.changes).toEqual(ref.changes);
        });
        expect(restored.openWindows).toBe(original.openWindows);
        expect(restored.streamTime).toBe(original.streamTime);
      }
    }
  });

  /** Entries the changelog holds: window entries whose last record is not a tombstone. */
  function countOpen(log: LogRecord[]): number {
    return compact(log).length;
  }
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
    s.add(null, 1_000, { ms: 10 }, wall);
    s.add(null, 2_000, { ms: 15 }, wall);
    s.add('x', 3_000, { ms: 1 }, wall);
    s.add(null, 20_000, { ms: 0 }, wall);
    expect(rows(s.collect())).toEqual([
      [null, 0, 10_000, 12.5, true],
      ['x', 0, 10_000, 1, true],
    ]);
  });

  test('openWindows counts distinct (key, window) pairs', () => {
    const s = store({ assigner: sliding10s5s });
    s.add('a', 7_000, 1, wall);
    s.add('a', 8_000, 1, wall);
    s.add('b', 8_000, 1, wall);
    s.add(null, 8_000, 1, wall);
    s.add('null', 8_000, 1, wall);
    expect(s.openWindows).toBe(8);
  });
});
