/** The built-in aggregators: init/add/merge/result, extractors, and non-numeric input. */
import { describe, expect, test } from '@jest/globals';
import { type Aggregator, avg, count, custom, max, min, reducer, sum } from '../../src/windows/aggregators.ts';

function fold<V, A, R>(agg: Aggregator<V, A, R>, values: V[]): R {
  let acc = agg.init();
  for (const v of values) acc = agg.add(acc, v);
  return agg.result(acc);
}

describe('count', () => {
  test('counts records whatever their values', () => {
    const c = count();
    expect(c.name).toBe('count');
    expect(fold(c, [])).toBe(0);
    expect(fold(c, ['a', null, undefined, { x: 1 }, 7])).toBe(5);
    expect(c.merge(3, 4)).toBe(7);
  });
});

describe('sum', () => {
  test('adds numbers; merge adds accumulators', () => {
    const s = sum();
    expect(s.name).toBe('sum');
    expect(fold(s, [])).toBe(0);
    expect(fold(s, [1, 2.5, -4])).toBe(-0.5);
    expect(s.merge(10, 5)).toBe(15);
  });

  test('with an extractor', () => {
    expect(
      fold(
        sum((v: { n: number }) => v.n),
        [{ n: 2 }, { n: 40 }],
      ),
    ).toBe(42);
  });

  test('non-numeric, NaN and infinite values throw a TypeError', () => {
    const s = sum<unknown>();
    expect(() => s.add(0, '3')).toThrow(TypeError);
    expect(() => s.add(0, null)).toThrow('aggregated value is not a finite number: null');
    expect(() => s.add(0, Number.NaN)).toThrow(TypeError);
    expect(() => s.add(0, Infinity)).toThrow(TypeError);
    expect(() => sum((v: { n?: number }) => v.n as number).add(0, {})).toThrow(TypeError);
  });
});

describe('min and max', () => {
  test('smallest and largest value; null when empty', () => {
    expect(fold(min(), [])).toBeNull();
    expect(fold(max(), [])).toBeNull();
    expect(fold(min(), [3, -2, 8])).toBe(-2);
    expect(fold(max(), [3, -2, 8])).toBe(8);
    expect(min().name).toBe('min');
    expect(max().name).toBe('max');
  });

  test('merge treats null as empty', () => {
    expect(min().merge(null, 4)).toBe(4);
    expect(min().merge(4, null)).toBe(4);
    expect(min().merge(4, 2)).toBe(2);
    expect(min().merge(null, null)).toBeNull();
    expect(max().merge(null, 4)).toBe(4);
    expect(max().merge(4, null)).toBe(4);
    expect(max().merge(4, 9)).toBe(9);
  });

  test('extractors and non-numeric input', () => {
    expect(
      fold(
        min((v: [number]) => v[0]),
        [[5], [1], [3]],
      ),
    ).toBe(1);
    expect(
      fold(
        max((v: [number]) => v[0]),
        [[5], [1], [3]],
      ),
    ).toBe(5);
    expect(() => min<unknown>().add(null, 'x')).toThrow(TypeError);
    expect(() => max<unknown>().add(1, {})).toThrow(TypeError);
  });
});

describe('avg', () => {
  test('mean of the values; null when empty', () => {
    const a = avg();
    expect(a.name).toBe('avg');
    expect(fold(a, [])).toBeNull();
    expect(fold(a, [1, 2, 6])).toBe(3);
    expect(a.merge({ sum: 3, count: 2 }, { sum: 7, count: 3 })).toEqual({ sum: 10, count: 5 });
    expect(a.result({ sum: 10, count: 4 })).toBe(2.5);
  });

  test('the accumulator is not mutated (a new one per add)', () => {
    const a = avg();
    const acc = a.init();
    const next = a.add(acc, 5);
    expect(acc).toEqual({ sum: 0, count: 0 });
    expect(next).toEqual({ sum: 5, count: 1 });
  });

  test('extractor and non-numeric input', () => {
    expect(
      fold(
        avg((v: { ms: number }) => v.ms),
        [{ ms: 10 }, { ms: 20 }],
      ),
    ).toBe(15);
    expect(() => avg<unknown>().add({ sum: 0, count: 0 }, 'ten')).toThrow(TypeError);
  });
});

describe('custom', () => {
  test('uses the given functions; name defaults to custom', () => {
    const distinct = custom<string, string[], number>({
      init: () => [],
      add: (acc, v) => (acc.includes(v) ? acc : [...acc, v]),
      merge: (a, b) => [...new Set([...a, ...b])],
      result: (acc) => acc.length,
    });
    expect(distinct.name).toBe('custom');
    expect(fold(distinct, ['a', 'b', 'a', 'c'])).toBe(3);
    expect(distinct.merge(['a'], ['a', 'b'])).toEqual(['a', 'b']);
    expect(custom({ name: 'mine', init: () => 0, add: (a: number) => a, merge: (a) => a, result: (a) => a }).name).toBe(
      'mine',
    );
  });
});

describe('reducer', () => {
  test('first value, then fn(acc, value); null when empty', () => {
    const concat = reducer((a: string, b: string) => a + b);
    expect(concat.name).toBe('reduce');
    expect(fold(concat, [])).toBeNull();
    expect(fold(concat, ['x'])).toBe('x');
    expect(fold(concat, ['a', 'b', 'c'])).toBe('abc');
  });

  test('merge applies fn and treats null as empty', () => {
    const m = reducer((a: number, b: number) => Math.max(a, b));
    expect(m.merge({ v: 1 }, { v: 5 })).toEqual({ v: 5 });
    expect(m.merge(null, { v: 5 })).toEqual({ v: 5 });
    expect(m.merge({ v: 1 }, null)).toEqual({ v: 1 });
    expect(m.merge(null, null)).toBeNull();
  });

  test('keeps falsy values', () => {
    expect(
      fold(
        reducer((a: number, b: number) => a * b),
        [0, 5],
      ),
    ).toBe(0);
  });
});
