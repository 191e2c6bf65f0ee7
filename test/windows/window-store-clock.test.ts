/**
 * WindowStore with `externalClock` (a repartitioned stage): stream time moves only through
 * `advanceTo()` (or a restore), never through the records added, and it alone decides lateness and
 * closing — and so which entries the changelog gets deletes for.
 */
import { describe, expect, test } from '@jest/globals';
import { type Aggregator, count } from '../../src/windows/aggregators.ts';
import { type WindowResult, WindowStore, type WindowStoreOptions } from '../../src/windows/window-store.ts';

function store(options: Partial<WindowStoreOptions> = {}): WindowStore {
  return new WindowStore({
    assigner: { kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000 },
    latenessMs: 0,
    emit: 'final',
    aggregator: count() as Aggregator<unknown, unknown, unknown>,
    idleTimeoutMs: 0,
    externalClock: true,
    ...options,
  });
}

const rows = (results: WindowResult[]): Array<[string | null, number, unknown, boolean]> =>
  results.map((r) => [r.key, r.windowStart, r.value, r.final]);
const wall = 5_000_000;

describe('WindowStore with an external clock', () => {
  test('add() does not move stream time, whatever the event time', () => {
    const s = store();
    expect(s.add('k', 50_000, 1, wall)).toBe('added');
    expect(s.streamTime).toBe(-Infinity);
    expect(s.add('k', 1_000, 1, wall)).toBe('added');
    expect(s.add('k', 999_999, 1, wall)).toBe('added');
    expect(s.streamTime).toBe(-Infinity);
    expect(s.collect()).toEqual([]);
    expect(s.openWindows).toBe(3);
  });

  test('a restored stream time is kept and add() does not move it', () => {
    const s = store({ initialStreamTime: 20_000 });
    expect(s.add('k', 25_000, 1, wall)).toBe('added');
    expect(s.add('k', 90_000, 1, wall)).toBe('added');
    expect(s.streamTime).toBe(20_000);
    expect(s.add('k', 9_999, 1, wall)).toBe('late');
    expect(s.streamTime).toBe(20_000);
  });

  test('advanceTo() is monotonic: a smaller or non-numeric time changes nothing', () => {
    const s = store();
    s.advanceTo(15_000);
    expect(s.streamTime).toBe(15_000);
    s.advanceTo(14_000);
    expect(s.streamTime).toBe(15_000);
    s.advanceTo(Number.NaN);
    expect(s.streamTime).toBe(15_000);
    s.advanceTo(-Infinity);
    expect(s.streamTime).toBe(15_000);
    s.advanceTo(15_001);
    expect(s.streamTime).toBe(15_001);
  });

  test('advanceTo() closes windows: [start, end) closes when stream time >= end + lateness', () => {
    const s = store({ latenessMs: 2_000 });
    s.add('a', 1_000, 1, wall);
    s.add('b', 9_999, 1, wall);
    s.add('a', 10_000, 1, wall);
    s.advanceTo(11_999);
    expect(s.collect()).toEqual([]);
    s.advanceTo(12_000);
    expect(rows(s.collect())).toEqual([
      ['a', 0, 1, true],
      ['b', 0, 1, true],
    ]);
    expect(s.openWindows).toBe(1);
    s.advanceTo(22_000);
    expect(rows(s.collect())).toEqual([['a', 10_000, 1, true]]);
    expect(s.openWindows).toBe(0);
  });

  test('lateness is decided by the advanced time only', () => {
    const s = store({ latenessMs: 5_000 });
    s.advanceTo(14_999); // [0, 10 000) still open: 14 999 < 15 000
    expect(s.add('k', 1_000, 1, wall)).toBe('added');
    s.advanceTo(15_000);
    expect(s.add('k', 2_000, 1, wall)).toBe('late');
    // A record far ahead does not make the next one late: the clock is external.
    expect(s.add('k', 500_000, 1, wall)).toBe('added');
    expect(s.add('k', 10_000, 1, wall)).toBe('added');
    expect(rows(s.collect())).toEqual([['k', 0, 1, true]]);
  });

  test('sliding windows: advanceTo() closes each window on its own end', () => {
    const s = store({ assigner: { kind: 'sliding', sizeMs: 10_000, slideMs: 5_000 } });
    s.add('k', 7_000, 1, wall); // [0, 10 000) and [5 000, 15 000)
    s.advanceTo(10_000);
    expect(rows(s.collect())).toEqual([['k', 0, 1, true]]);
    expect(s.add('k', 9_000, 1, wall)).toBe('added'); // only [5 000, 15 000) is open
    s.advanceTo(15_000);
    expect(rows(s.collect())).toEqual([['k', 5_000, 2, true]]);
  });

  test('update mode: changes are emitted each collect, the final value once when advanceTo() closes', () => {
    const s = store({ emit: 'update' });
    s.add('k', 1_000, 1, wall);
    expect(rows(s.collect())).toEqual([['k', 0, 1, false]]);
    s.add('k', 2_000, 1, wall);
    s.advanceTo(10_000);
    expect(rows(s.collect())).toEqual([['k', 0, 2, true]]);
    expect(s.collect()).toEqual([]);
  });

  test('the changes drained follow what advanceTo() closed: a delete per entry of the closed window', () => {
    const s = store();
    s.add('k', 1_000, 1, wall);
    s.add('k', 11_000, 1, wall);
    expect(s.drainChanges()).toEqual({
      puts: [
        { start: 0, key: 'k', acc: 1 },
        { start: 10_000, key: 'k', acc: 1 },
      ],
      deletes: [],
    });
    s.add('j', 2_000, 1, wall);
    s.advanceTo(10_000);
    s.collect();
    // j@0 changed and closed since the last drain: a delete, not a put.
    expect(s.drainChanges()).toEqual({
      puts: [],
      deletes: [
        { start: 0, key: 'k' },
        { start: 0, key: 'j' },
      ],
    });
  });

  test('a restored stream time is where the external clock goes on from; add() still does not move it', () => {
    const s = store();
    s.restoreEntry(10_000, 'k', 3);
    s.restoreStreamTime(15_000);
    expect(s.add('k', 9_999, 1, wall)).toBe('late');
    expect(s.add('k', 12_000, 1, wall)).toBe('added');
    s.add('k', 90_000, 1, wall);
    expect(s.streamTime).toBe(15_000);
    s.advanceTo(14_000); // behind the restored stream time: ignored
    expect(s.collect()).toEqual([]);
    s.advanceTo(20_000);
    expect(rows(s.collect())).toEqual([['k', 10_000, 4, true]]);
  });

  test('idle advancement counts wall time from the same moment as the stream time it starts from', () => {
    // Stream time 1 000 when the last record came (wall W); advanceTo() then moved it to 41 000 (the
    // upstream watermark, 40 s of event time later). 40 s of wall time after W, the idle clock may
    // move stream time to at most 1 000 + 40 000 = 41 000, not 41 000 + 40 000 (the 40 s counted twice).
    const s = store({ idleTimeoutMs: 30_000 });
    s.advanceTo(1_000);
    s.add('k', 1_500, 1, wall);
    s.advanceTo(41_000);
    s.advanceIdle(wall + 40_000);
    expect(s.streamTime).toBe(41_000);
  });
});
