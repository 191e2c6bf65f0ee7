/**
 * The changelog topic's records: window-entry keys (one key per window and group key, null apart from
 * "null"), the progress key, accumulators in the structured-clone format, and the progress record —
 * their round trips, and what is refused.
 */
import { describe, expect, test } from '@jest/globals';
import {
  decodeAccumulator,
  decodeProgress,
  encodeAccumulator,
  encodeProgress,
  type Progress,
  PROGRESS_KEY,
  readChangelogKey,
  windowKey,
} from '../../src/wire/changelog.ts';

const utf8 = (text: string): number[] => [...new TextEncoder().encode(text)];
const f64 = (n: number): number[] => {
  const bytes = new Uint8Array(8);
  new DataView(bytes.buffer).setFloat64(0, n, false);
  return [...bytes];
};

function progress(extra: Partial<Progress> = {}): Progress {
  return { task: 'orders:3', end: 0, streamTime: null, dedupe: new Map(), sources: new Map(), ...extra };
}

describe('window keys', () => {
  test('layout: 0x01, the start as a big-endian float64, then 0x00 (null key) or 0x01 and the key in UTF-8', () => {
    expect([...windowKey(0, null)]).toEqual([1, ...f64(0), 0]);
    expect([...windowKey(1_700_000_000_000, 'é')]).toEqual([1, ...f64(1_700_000_000_000), 1, ...utf8('é')]);
    expect([...windowKey(-10_000, '')]).toEqual([1, ...f64(-10_000), 1]);
  });

  test('round trip of starts and keys, including null, "null", the empty key and any Unicode', () => {
    const starts = [0, -10_000, 1_700_000_000_000, 2 ** 53 - 1, -(2 ** 52), 12.5];
    const keys = [null, 'null', '', 'a', 'é', '日本', '😀', '\u0000', 'a\u0000b', 'x'.repeat(10_000)];
    for (const start of starts) {
      for (const key of keys) expect(readChangelogKey(windowKey(start, key))).toEqual({ kind: 'window', start, key });
    }
  });

  test('a null key, "null", the empty key and "\\u0000" are four different keys', () => {
    const hex = (key: string | null): string => Buffer.from(windowKey(5_000, key)).toString('hex');
    const all = [null, 'null', '', '\u0000'].map(hex);
    expect(new Set(all).size).toBe(4);
    expect(readChangelogKey(windowKey(5_000, null))).toEqual({ kind: 'window', start: 5_000, key: null });
    expect(readChangelogKey(windowKey(5_000, 'null'))).toEqual({ kind: 'window', start: 5_000, key: 'null' });
  });

  test('the same window and key always give the same bytes (compaction keeps one value per entry)', () => {
    expect(Buffer.from(windowKey(20_000, 'k')).equals(Buffer.from(windowKey(20_000, 'k')))).toBe(true);
    expect(Buffer.from(windowKey(20_000, 'k')).equals(Buffer.from(windowKey(30_000, 'k')))).toBe(false);
  });

  test('a key read from a view into a larger buffer (as a fetched record is) reads the same', () => {
    const key = windowKey(-5_000, 'page');
    const larger = new Uint8Array(key.length + 7);
    larger.set(key, 3);
    expect(readChangelogKey(larger.subarray(3, 3 + key.length))).toEqual({
      kind: 'window',
      start: -5_000,
      key: 'page',
    });
  });
});

describe('the progress key', () => {
  test('0x00 then "progress", read as the progress', () => {
    expect([...PROGRESS_KEY]).toEqual([0, ...utf8('progress')]);
    expect(readChangelogKey(PROGRESS_KEY)).toEqual({ kind: 'progress' });
    expect(readChangelogKey(Uint8Array.from(PROGRESS_KEY))).toEqual({ kind: 'progress' });
  });

  test('it is not a window key, and no window key is it', () => {
    expect(readChangelogKey(PROGRESS_KEY)?.kind).toBe('progress');
    expect(readChangelogKey(windowKey(0, 'progress'))?.kind).toBe('window');
  });
});

describe('keys this format never writes are refused (undefined)', () => {
  test.each([
    ['a null key', null],
    ['an empty key', []],
    ['an unknown kind byte', [2, ...f64(0), 0]],
    ['JSON text', utf8('{"start":0,"key":"a"}')],
    ['a window key too short for its start', [1, ...f64(0).slice(0, 7)]],
    ['a window key without its key marker', [1, ...f64(0)]],
    ['a null-key marker followed by bytes', [1, ...f64(0), 0, 0x61]],
    ['an unknown key marker', [1, ...f64(0), 2, 0x61]],
    ['a NaN start', [1, ...f64(Number.NaN), 0]],
    ['an infinite start', [1, ...f64(Infinity), 1, 0x61]],
    ['a key that is not UTF-8', [1, ...f64(0), 1, 0xff, 0xfe]],
    ['a truncated UTF-8 key', [1, ...f64(0), 1, 0xc3]],
    ['the progress prefix with more', [0, ...utf8('progress!')]],
    ['the progress prefix cut short', [0, ...utf8('progres')]],
    ['another text after 0x00', [0, ...utf8('Progress')]],
    ['0x00 alone', [0]],
  ])('%s', (_name, bytes) => {
    expect(readChangelogKey(bytes === null ? null : Uint8Array.from(bytes))).toBeUndefined();
  });
});

describe('accumulators', () => {
  const roundTrip = (value: unknown): unknown => decodeAccumulator(encodeAccumulator(value));

  test('numbers, strings, null, undefined, booleans round-trip, -0 and NaN included', () => {
    for (const value of [0, 1, -1.5, 2 ** 60, Infinity, -Infinity, '', 'é😀', null, undefined, true, false]) {
      expect(roundTrip(value)).toBe(value);
    }
    expect(Object.is(roundTrip(-0), -0)).toBe(true);
    expect(roundTrip(Number.NaN)).toBeNaN();
  });

  test('plain objects and arrays, nested, as the built-in aggregators keep them', () => {
    const avg = { sum: 12.5, count: 3 };
    expect(roundTrip(avg)).toEqual(avg);
    const reduced = { v: { page: 'home', tags: ['a', 'b'], n: null } };
    expect(roundTrip(reduced)).toEqual(reduced);
    expect(roundTrip([[1, 2], [], [{ x: 'y' }]])).toEqual([[1, 2], [], [{ x: 'y' }]]);
  });

  test('Map, Set, BigInt, Date and typed arrays keep their types', () => {
    const acc = {
      seen: new Set(['a', 'b', null]),
      counts: new Map<unknown, unknown>([
        ['a', 1n],
        [2, new Set([3])],
        [null, new Map([['nested', [1]]])],
      ]),
      total: 123_456_789_012_345_678_901_234_567_890n,
      negative: -5n,
      first: new Date(1_700_000_000_000),
      bytes: new Uint8Array([0, 255, 7]),
      floats: new Float64Array([1.5, -2]),
    };
    const back = roundTrip(acc) as typeof acc;
    expect(back).toEqual(acc);
    // By tag, not instanceof: node:v8 builds its objects in Node's own realm, not in the test's.
    const tag = (v: unknown): string => Object.prototype.toString.call(v);
    expect(tag(back.seen)).toBe('[object Set]');
    expect([...back.seen]).toEqual(['a', 'b', null]);
    expect(tag(back.counts)).toBe('[object Map]');
    expect(back.counts.get('a')).toBe(1n);
    expect(tag(back.counts.get(2))).toBe('[object Set]');
    expect(tag(back.counts.get(null))).toBe('[object Map]');
    expect(typeof back.total).toBe('bigint');
    expect(back.total).toBe(123_456_789_012_345_678_901_234_567_890n);
    expect(back.negative).toBe(-5n);
    expect(tag(back.first)).toBe('[object Date]');
    expect(back.first.getTime()).toBe(1_700_000_000_000);
    expect(tag(back.bytes)).toBe('[object Uint8Array]');
    expect([...back.bytes]).toEqual([0, 255, 7]);
    expect(tag(back.floats)).toBe('[object Float64Array]');
    expect([...back.floats]).toEqual([1.5, -2]);
    expect(roundTrip(7n)).toBe(7n);
  });

  test('a shared or cyclic structure stays shared', () => {
    const shared = { n: 1 };
    const acc: { a: object; b: object; self?: unknown } = { a: shared, b: shared };
    acc.self = acc;
    const back = roundTrip(acc) as typeof acc;
    expect(back.a).toBe(back.b);
    expect(back.self).toBe(back);
  });

  test('what structured clone cannot hold is refused when encoding: functions, symbols, weak maps', () => {
    expect(() => encodeAccumulator(() => 1)).toThrow(/a function cannot be stored/);
    expect(() => encodeAccumulator({ add: () => 1 })).toThrow(/a function cannot be stored/);
    expect(() => encodeAccumulator(Symbol('s'))).toThrow(/a symbol cannot be stored/);
    expect(() => encodeAccumulator(new WeakMap())).toThrow(/WeakMap would lose its prototype|could not be cloned/);
  });

  test('a class instance is refused, also nested or extending a built-in: it would come back a plain object without its prototype', () => {
    class Counter {
      n = 2;
      inc(): number {
        return ++this.n;
      }
    }
    class Bag extends Map<string, number> {}
    expect(() => encodeAccumulator(new Counter())).toThrow(/an instance of Counter would lose its prototype/);
    expect(() => encodeAccumulator({ inner: [1, new Counter()] })).toThrow(/Counter/);
    expect(() => encodeAccumulator(new Map([['k', new Counter()]]))).toThrow(/Counter/);
    expect(() => encodeAccumulator(new Bag())).toThrow(/Bag/);
    // Plain data of every kind passes, null-prototype objects too.
    const plain = Object.assign(Object.create(null) as object, { n: 1 });
    for (const ok of [
      { a: [1, { b: 2 }] },
      new Set([1]),
      new Map([[1, { c: 3 }]]),
      new Date(0),
      plain,
      new Uint8Array(2),
    ])
      expect(() => encodeAccumulator(ok)).not.toThrow();
  });

  test.each([
    ['no bytes', []],
    ['JSON text', utf8('{"sum":1}')],
    ['garbage', [1, 2, 3, 4]],
    ['a version header and nothing else', [0xff, 0x0f]],
  ])('malformed bytes are refused when decoding: %s', (_name, bytes) => {
    expect(() => decodeAccumulator(Uint8Array.from(bytes))).toThrow();
  });

  test('a truncated accumulator is refused when decoding', () => {
    const bytes = encodeAccumulator({ sum: 1, count: 2, names: ['a', 'b'] });
    expect(() => decodeAccumulator(bytes.subarray(0, bytes.length - 3))).toThrow();
  });
});

describe('progress records', () => {
  test('round trip: task, end, stream time, de-duplication marks, upstream stream times and idleness', () => {
    const original = progress({
      end: 9_000_000_001,
      streamTime: 1_700_000_000_000,
      dedupe: new Map<string, readonly [number, number]>([
        ['views:0', [17, 0]],
        ['views:1', [9_000_000_000, 3]],
      ]),
      sources: new Map([
        ['views:0', { streamTime: 1_700_000_000_000, idle: false }],
        ['views:1', { streamTime: -Infinity, idle: true }], // idle before any record
      ]),
    });
    expect(decodeProgress(encodeProgress(original))).toEqual(original);
  });

  test('the minimal progress is compact and round-trips with null stream time and empty maps', () => {
    const bytes = encodeProgress(progress({ end: 5 }));
    expect(new TextDecoder().decode(bytes)).toBe('{"v":1,"task":"orders:3","end":5,"st":null}');
    expect(decodeProgress(bytes)).toEqual(progress({ end: 5 }));
  });

  test('replayUntil is kept only while it is ahead of the end', () => {
    expect(decodeProgress(encodeProgress(progress({ end: 5, replayUntil: 9 })))).toEqual(
      progress({ end: 5, replayUntil: 9, replayDedupe: new Map() }),
    );
    // The replayed records' de-duplication marks ride along while the replay lasts.
    const replayDedupe = new Map<string, readonly [number, number]>([['views:1', [7, 2]]]);
    expect(decodeProgress(encodeProgress(progress({ end: 5, replayUntil: 9, replayDedupe })))?.replayDedupe).toEqual(
      replayDedupe,
    );
    for (const replayUntil of [5, 4, 0]) {
      const decoded = decodeProgress(encodeProgress(progress({ end: 5, replayUntil })));
      expect(decoded).toEqual(progress({ end: 5 }));
      expect(decoded).not.toHaveProperty('replayUntil');
    }
  });

  test('a source stream time that is not finite is stored as none', () => {
    for (const streamTime of [-Infinity, Infinity, Number.NaN]) {
      const decoded = decodeProgress(
        encodeProgress(progress({ sources: new Map([['views:0', { streamTime, idle: false }]]) })),
      );
      expect(decoded?.sources.get('views:0')).toEqual({ streamTime: -Infinity, idle: false });
    }
  });

  test('task names with any characters survive', () => {
    for (const task of ['a.b-c_d:0', 'topic with "quotes":12', 'é:1']) {
      expect(decodeProgress(encodeProgress(progress({ task })))?.task).toBe(task);
    }
  });

  test.each([
    ['no bytes', ''],
    ['not JSON', 'progress'],
    ['JSON null', 'null'],
    ['a JSON array', '[1,"orders:3",5]'],
    ['a JSON number', '1'],
    ['another version', '{"v":2,"task":"orders:3","end":5,"st":null}'],
    ['no version', '{"task":"orders:3","end":5,"st":null}'],
    ['no task', '{"v":1,"end":5,"st":null}'],
    ['a task that is not a string', '{"v":1,"task":3,"end":5,"st":null}'],
    ['no end', '{"v":1,"task":"orders:3","st":null}'],
    ['an end that is not a number', '{"v":1,"task":"orders:3","end":"5","st":null}'],
    ['a commit checkpoint (wire/checkpoint.ts)', '{"v":2,"e":5}'],
  ])('refused (undefined): %s', (_name, text) => {
    expect(decodeProgress(new TextEncoder().encode(text))).toBeUndefined();
  });

  test('refused (undefined): bytes that are not UTF-8', () => {
    expect(decodeProgress(Uint8Array.from([0x7b, 0xff, 0x7d]))).toBeUndefined();
  });

  test('malformed marks are left out, the rest is read', () => {
    const text =
      '{"v":1,"task":"t:0","end":7,"st":"soon","d":{"a:0":[1,2],"a:1":"x","a:2":[1]},"w":{"a:0":[5,1],"a:1":7}}';
    expect(decodeProgress(new TextEncoder().encode(text))).toEqual({
      task: 't:0',
      end: 7,
      streamTime: null,
      dedupe: new Map([['a:0', [1, 2]]]),
      sources: new Map([['a:0', { streamTime: 5, idle: true }]]),
    });
  });
});
