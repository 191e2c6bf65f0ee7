/**
 * Tables a job joins its stream against: `table(topic, options)` declares one, from a (compacted)
 * topic read as "the latest value per key" — a record with a null value (a tombstone) deletes its key.
 * Like the stream builder it only records what it was given and never throws; `compileJob` validates
 * the declaration where the table is joined (`checkJoin`, join-checks.ts).
 *
 * - `partitioned` (the default, Kafka Streams' `KTable`): co-partitioned with the stream it is joined
 *   against — the task of partition p holds table partition p, so the table topic must have as many
 *   partitions as that stream and be keyed and partitioned the same way. Each task holds its share.
 * - `global` (Kafka Streams' `GlobalKTable`): every worker holds the whole topic; any key can be looked
 *   up (the join's `key` option). For small reference data: each worker holds a copy.
 */
/** How a table's values are deserialized (the input's formats): parsed JSON, a UTF-8 string, or the raw `Buffer`. */
export type TableFormat = 'json' | 'string' | 'bytes';

/** How a table is spread over the tasks. */
export type TableKind = 'partitioned' | 'global';

/** Options of {@link table}. */
export interface TableOptions {
  /**
   * `partitioned`: co-partitioned with the stream (each task holds the partition of its own), joined on the
   * stream's key. `global`: every worker holds the whole table, joined on any key.
   * @defaultValue `'partitioned'`
   */
  kind?: TableKind;
  /**
   * How the table's values are deserialized, as the input's `format`.
   * @defaultValue `'json'`
   */
  format?: TableFormat;
}

declare const rowType: unique symbol;

/** A table declared with {@link table}: pass it to `stream.joinTable()`. */
export interface Table<Row = unknown, K extends TableKind = TableKind> {
  /** The topic the table is read from. */
  readonly topic: string;
  readonly kind: K;
  readonly format: TableFormat;
  /** Type-level only: the row type. */
  readonly [rowType]?: Row;
}

/** A table as the plan holds it, validated. */
export interface TablePlan {
  topic: string;
  kind: TableKind;
  format: TableFormat;
}

/** A `joinTable` step, validated: the operator's `join` (plan.ts `Op`). */
export interface JoinPlan {
  table: TablePlan;
  /** `inner`: an event without a row is dropped; `left`: the function gets `undefined` for the row. */
  kind: 'inner' | 'left';
  /** The lookup key from the event (global tables only); undefined: the element's current key. */
  key: ((value: unknown) => unknown) | undefined;
}

/** What a table object records: the arguments of {@link table}, as given. */
export interface TableInternals {
  readonly topic: unknown;
  readonly options: unknown;
}

// A registry symbol, as for streams: a table declared by another copy of this module is still readable.
const INTERNALS = Symbol.for('sluice.table');

/**
 * Declares a table read from `topic` (latest value per key; a null value deletes the key), to join a
 * stream against with `stream.joinTable(table, fn, options)`.
 *
 * @example
 * const users = table<User>('users'); // partitioned: co-partitioned with the stream, joined on its key
 * const countries = table<Country>('countries', { kind: 'global' }); // whole table in every worker
 */
export function table<Row = unknown>(topic: string, options: TableOptions & { kind: 'global' }): Table<Row, 'global'>;
export function table<Row = unknown>(
  topic: string,
  options?: TableOptions & { kind?: 'partitioned' },
): Table<Row, 'partitioned'>;
export function table<Row = unknown>(topic: string, options?: TableOptions): Table<Row> {
  const given = typeof options === 'object' && options !== null ? (options as Record<string, unknown>) : {};
  const described = {
    topic,
    kind: (given['kind'] ?? 'partitioned') as TableKind,
    format: (given['format'] ?? 'json') as TableFormat,
  };
  Object.defineProperty(described, INTERNALS, {
    value: Object.freeze({
      topic,
      options: typeof options === 'object' && options !== null ? { ...options } : options,
    }),
  });
  return Object.freeze(described);
}

/** The arguments a table was declared with (of any copy of this module), or `undefined` for anything else. */
export function tableInternals(value: unknown): TableInternals | undefined {
  if (typeof value !== 'object' || value === null) return undefined;
  const internals = (value as Record<symbol, unknown>)[INTERNALS];
  if (typeof internals !== 'object' || internals === null || !('topic' in internals)) return undefined;
  return internals as TableInternals;
}
