/**
 * Aggregators fold the values of one (key, window) into an accumulator. `merge` combines two
 * accumulators (session windows: when a record bridges two sessions); `result` turns the accumulator
 * into the value published. Accumulators are kept in the changelog in `node:v8`'s structured-clone
 * format: plain objects, arrays, numbers, strings, `Map`, `Set`, `Date`, `BigInt`, typed arrays —
 * no functions, no class instances (see `wire/changelog.ts`).
 */
export interface Aggregator<V, A, R> {
  readonly name: string;
  /** `add` never reads the value (count): a stage that only aggregates need not decode values. */
  readonly ignoresValue?: boolean;
  init(): A;
  add(acc: A, value: V): A;
  /**
   * Combines the accumulators of two sessions of one key that a record joined (session windows), in
   * time order: `a` is the earlier session's, `b` the later one's. It must merge correctly:
   * `merge(a, b)` equals folding both sessions' records in order, earlier first, with `add` from
   * `init()` — for `count`, `sum`, `min`, `max` and `avg` it does; for `reduce(fn)` it is `fn` itself,
   * which therefore must be associative. It must not modify `a` or `b`. Tumbling and sliding windows
   * never call it.
   */
  merge(a: A, b: A): A;
  result(acc: A): R;
}

type NumberOf<V> = (value: V) => number;

function numeric<V>(extract: NumberOf<V> | undefined, value: V): number {
  const n = extract ? extract(value) : value;
  if (typeof n !== 'number' || !Number.isFinite(n)) {
    throw new TypeError(`aggregated value is not a finite number: ${JSON.stringify(n)}`);
  }
  return n;
}

/** Number of records. */
export function count<V = unknown>(): Aggregator<V, number, number> {
  return {
    name: 'count',
    ignoresValue: true,
    init: () => 0,
    add: (acc) => acc + 1,
    merge: (a, b) => a + b,
    result: (acc) => acc,
  };
}

/** Sum of the values (or of `extract(value)`). */
export function sum<V = number>(extract?: NumberOf<V>): Aggregator<V, number, number> {
  return {
    name: 'sum',
    init: () => 0,
    add: (acc, v) => acc + numeric(extract, v),
    merge: (a, b) => a + b,
    result: (acc) => acc,
  };
}

/** Smallest value; `null` for an empty window (never emitted). */
export function min<V = number>(extract?: NumberOf<V>): Aggregator<V, number | null, number | null> {
  return {
    name: 'min',
    init: () => null,
    add: (acc, v) => {
      const n = numeric(extract, v);
      return acc === null ? n : Math.min(acc, n);
    },
    merge: (a, b) => (a === null ? b : b === null ? a : Math.min(a, b)),
    result: (acc) => acc,
  };
}

/** Largest value. */
export function max<V = number>(extract?: NumberOf<V>): Aggregator<V, number | null, number | null> {
  return {
    name: 'max',
    init: () => null,
    add: (acc, v) => {
      const n = numeric(extract, v);
      return acc === null ? n : Math.max(acc, n);
    },
    merge: (a, b) => (a === null ? b : b === null ? a : Math.max(a, b)),
    result: (acc) => acc,
  };
}

/** Arithmetic mean. */
export function avg<V = number>(extract?: NumberOf<V>): Aggregator<V, { sum: number; count: number }, number | null> {
  return {
    name: 'avg',
    init: () => ({ sum: 0, count: 0 }),
    add: (acc, v) => ({ sum: acc.sum + numeric(extract, v), count: acc.count + 1 }),
    merge: (a, b) => ({ sum: a.sum + b.sum, count: a.count + b.count }),
    result: (acc) => (acc.count === 0 ? null : acc.sum / acc.count),
  };
}

/** A user-defined aggregator. */
export function custom<V, A, R>(spec: Omit<Aggregator<V, A, R>, 'name'> & { name?: string }): Aggregator<V, A, R> {
  return { name: spec.name ?? 'custom', init: spec.init, add: spec.add, merge: spec.merge, result: spec.result };
}

/** `reduce(fn)` as an aggregator: the first value, then `fn(acc, value)` for each next one. */
export function reducer<V>(fn: (a: V, b: V) => V): Aggregator<V, { v: V } | null, V | null> {
  return {
    name: 'reduce',
    init: () => null,
    add: (acc, v) => (acc === null ? { v } : { v: fn(acc.v, v) }),
    merge: (a, b) => (a === null ? b : b === null ? a : { v: fn(a.v, b.v) }),
    result: (acc) => (acc === null ? null : acc.v),
  };
}
