/**
 * The pipeline builder users write against. A `Stream` is an immutable description: every method
 * returns a new stream that records one more step; nothing runs here. `compileJob` (plan.ts) reads
 * the recorded steps and validates them all at once, so the builder itself never throws.
 */
import { type Duration } from '../util/duration.ts';
import { type Aggregator } from '../windows/aggregators.ts';
import { type WindowAssigner } from '../windows/assigners.ts';
import { type Table, type TableKind } from './table.ts';

/** Options of {@link Stream.window}. */
export interface WindowOptions {
  /**
   * How long after its end a window still accepts records (measured in stream time). Records for a
   * window that already closed are late and go to the dead-letter topic.
   * @defaultValue `0`
   */
  lateness?: Duration;
  /**
   * `final`: one result per window and key, when the window closes. `update`: after each batch, the
   * windows whose aggregate changed in that batch.
   * @defaultValue `'final'`
   */
  emit?: 'final' | 'update';
  /**
   * A partition with no record for this long advances its stream time by wall-clock time, so windows
   * still close when traffic stops. `0` disables it.
   * @defaultValue `'30s'`
   */
  idleTimeout?: Duration;
  /**
   * `event`: windows by event time (deterministic). `processing`: windows by batch time (not
   * deterministic across replays).
   * @defaultValue `'event'`
   */
  time?: 'event' | 'processing';
}

/**
 * Options of {@link Stream.joinTable}. `key` (global tables only) computes the lookup key from the event;
 * without it the element's current key is looked up: the Kafka key, or the `keyBy` key after a `keyBy`.
 */
export type JoinOptions<T, K extends TableKind, J extends 'inner' | 'left'> = {
  /**
   * `inner`: an event without a row is dropped (and counted). `left`: `fn` gets `undefined` for the row.
   * @defaultValue `'inner'`
   */
  kind?: J;
} & (K extends 'global'
  ? {
      /** The key to look up, from the event; `null` or `undefined`: no row. */
      key?: (event: T) => string | number | null | undefined;
    }
  : { key?: never });

/** A stream of values of type `T`: an immutable builder, each method returns a new stream. */
export interface Stream<T> {
  /** Transforms each value. */
  map<U>(fn: (value: T) => U): Stream<U>;
  /** Keeps the values for which `fn` returns `true`. `fn` must not modify the value (use `map`). */
  filter(fn: (value: T) => boolean): Stream<T>;
  /** Replaces each value by the values `fn` returns (zero or more). */
  flatMap<U>(fn: (value: T) => Iterable<U>): Stream<U>;
  /**
   * Sets the key of each value. Before a window this re-partitions the stream (records go through
   * the internal `<job>-repartition` topic) so that each key is aggregated in one place; in a
   * stateless job it only sets the key of the output records. `fn` must not modify the value: a value
   * that only passed filter and keyBy goes to the repartition topic as the input's bytes.
   */
  keyBy(fn: (value: T) => string | number): Stream<T>;
  /**
   * Enriches each value with the current row of its key in `table` (see `table()`): the value becomes
   * `fn(value, row)`. The table is read as of the start of the batch. An inner join (the default) drops a
   * value whose key has no row; a left join calls `fn(value, undefined)`. A partitioned table is looked up
   * with the element's key, so it must be co-partitioned with the stream; a global table with any key
   * (`options.key`). `fn` must not modify the row.
   */
  joinTable<R, K extends TableKind, U>(
    table: Table<R, K>,
    fn: (value: T, row: R) => U,
    options?: JoinOptions<T, K, 'inner'>,
  ): Stream<U>;
  joinTable<R, K extends TableKind, U>(
    table: Table<R, K>,
    fn: (value: T, row: R | undefined) => U,
    options: JoinOptions<T, K, 'left'> & { kind: 'left' },
  ): Stream<U>;
  /**
   * Groups the values into windows, per key (the `keyBy` key, or else the Kafka record key). Follow
   * it with `aggregate()` or `reduce()`. `tumbling(size)` and `sliding(size, slide)` windows are
   * aligned to the epoch; `session(gap)` windows follow each key's activity and merge (the aggregator's
   * `merge` joins two sessions a late record bridges).
   */
  window(assigner: WindowAssigner, options?: WindowOptions): WindowedStream<T>;
}

/** A windowed stream: aggregate it to get one result per key and window. */
export interface WindowedStream<T> {
  /** Folds the values of each key and window with `aggregator` (`count()`, `sum()`, `custom(...)`…). */
  aggregate<A, R>(aggregator: Aggregator<T, A, R>): AggregatedStream<R>;
  /** Folds the values of each key and window with `fn`, starting from the first value. */
  reduce(fn: (a: T, b: T) => T): AggregatedStream<T>;
}

declare const resultType: unique symbol;

/** The terminal stream of an aggregating job: results of type `R`, one per key and window. */
export interface AggregatedStream<R> {
  /** Type-level only: carries the result type. */
  readonly [resultType]?: R;
}

/** The operators that transform records one at a time. */
export type OpKind = 'map' | 'filter' | 'flatMap' | 'keyBy' | 'joinTable';

/**
 * One recorded builder call. Arguments are kept as given (`unknown`): the builder never validates,
 * `compileJob` does.
 */
export type Step =
  | { readonly kind: Exclude<OpKind, 'joinTable'>; readonly fn: unknown }
  | { readonly kind: 'joinTable'; readonly table: unknown; readonly fn: unknown; readonly options: unknown }
  | { readonly kind: 'window'; readonly assigner: unknown; readonly options: unknown }
  | { readonly kind: 'aggregate'; readonly aggregator: unknown }
  | { readonly kind: 'reduce'; readonly fn: unknown };

/** What a stream object records: the root it derives from, its steps, and which builder it is. */
export interface StreamInternals {
  readonly root: object;
  readonly steps: readonly Step[];
  readonly shape: 'stream' | 'windowed' | 'aggregated';
}

// A registry symbol, not a module-local one: a stream built by another copy of this module (a job
// bundling its own `sluice`, a loader namespace) is still readable.
const INTERNALS = Symbol.for('sluice.stream');

function make<S extends object>(target: S, internals: StreamInternals): S {
  Object.defineProperty(target, INTERNALS, { value: internals });
  return Object.freeze(target);
}

function stream<T>(root: object, steps: readonly Step[]): Stream<T> {
  const next = <U>(step: Step): Stream<U> => stream<U>(root, Object.freeze([...steps, step]));
  return make<Stream<T>>(
    {
      map: (fn) => next({ kind: 'map', fn }),
      filter: (fn) => next({ kind: 'filter', fn }),
      flatMap: (fn) => next({ kind: 'flatMap', fn }),
      keyBy: (fn) => next({ kind: 'keyBy', fn }),
      joinTable: (table: unknown, fn: unknown, options?: unknown) => next({ kind: 'joinTable', table, fn, options }),
      window: (assigner, options) =>
        windowed<T>(root, Object.freeze([...steps, { kind: 'window', assigner, options }])),
    },
    { root, steps, shape: 'stream' },
  );
}

function windowed<T>(root: object, steps: readonly Step[]): WindowedStream<T> {
  return make<WindowedStream<T>>(
    {
      aggregate: (aggregator) => aggregated(root, Object.freeze([...steps, { kind: 'aggregate', aggregator }])),
      reduce: (fn) => aggregated(root, Object.freeze([...steps, { kind: 'reduce', fn }])),
    },
    { root, steps, shape: 'windowed' },
  );
}

function aggregated<R>(root: object, steps: readonly Step[]): AggregatedStream<R> {
  return make<AggregatedStream<R>>({}, { root, steps, shape: 'aggregated' });
}

/** A fresh root stream, and the identity every stream derived from it carries. */
export function createRootStream(): { stream: Stream<unknown>; root: object } {
  const root = Object.freeze({});
  return { stream: stream<unknown>(root, Object.freeze([])), root };
}

/** The recorded steps of a stream (of any copy of this module), or `undefined` for anything else. */
export function streamInternals(value: unknown): StreamInternals | undefined {
  if ((typeof value !== 'object' && typeof value !== 'function') || value === null) return undefined;
  const internals = (value as Record<symbol, unknown>)[INTERNALS];
  if (typeof internals !== 'object' || internals === null) return undefined;
  const { root, steps, shape } = internals as Partial<StreamInternals>;
  if (typeof root !== 'object' || root === null || !Array.isArray(steps)) return undefined;
  if (shape !== 'stream' && shape !== 'windowed' && shape !== 'aggregated') return undefined;
  return { root, steps, shape };
}
