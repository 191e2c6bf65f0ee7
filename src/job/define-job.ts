/**
 * The public job API: what a job module default-exports. `defineJob` only types and brands the
 * spec; every rule is checked by `compileJob` when the module is loaded, so that one error lists
 * every problem at once.
 */
import { type Duration } from '../util/duration.ts';
import { type AggregatedStream, type Stream } from './stream.ts';

/** How record values are deserialized: parsed JSON, a UTF-8 string, or the raw `Buffer`. */
export type Format = 'json' | 'string' | 'bytes';

/** Where a record came from, given to {@link JobSpec.eventTime}. */
export interface RecordMeta {
  /** Source topic. */
  topic: string;
  /** Source partition. */
  partition: number;
  /** Offset in the partition (a decimal string: offsets are 64-bit). */
  offset: string;
  /** The Kafka record timestamp, epoch milliseconds. */
  timestamp: number;
  /** The record key as a UTF-8 string, or `null`. */
  key: string | null;
  /** Record headers, values decoded as UTF-8. */
  headers: Readonly<Record<string, string>>;
}

/** A job: where records come from, what to do with them, where results go. */
export interface JobSpec<In> {
  /**
   * The job's name: the consumer group id and the prefix of its internal topics (`<name>-dlq`,
   * `<name>-repartition`). 1–200 characters from `a-z A-Z 0-9 . _ -`.
   */
  name: string;
  /** The topics to read, and how to deserialize their values. */
  input: {
    /** One or more distinct topic names. */
    topics: string[];
    /**
     * Value format.
     * @defaultValue `'json'`
     */
    format?: Format;
  };
  /**
   * The event time of a record, epoch milliseconds or a `Date`.
   * @defaultValue the Kafka record timestamp
   */
  eventTime?: (value: In, meta: RecordMeta) => number | Date;
  /**
   * How often a micro-batch is cut (at least `10ms`).
   * @defaultValue `'1s'`
   */
  batchInterval?: Duration;
  /**
   * The most records in one batch, over all partitions.
   * @defaultValue `50_000`
   */
  maxBatchRecords?: number;
  /**
   * How results and state reach Kafka. `'exactly-once'`: each partition's batch is one Kafka
   * transaction (outputs, repartition and changelog records, dead letters and the consumed offset), so a
   * `read_committed` reader sees every result once whatever crashes, outages and rebalances happen.
   * `'at-least-once'`: after a crash a result may be published again (with the same value).
   * `SLUICE_DELIVERY` overrides it.
   * @defaultValue `'exactly-once'`
   */
  delivery?: 'exactly-once' | 'at-least-once';
  /**
   * Builds the processing pipeline from the input stream. Called once when the job is loaded; it must
   * return the stream it was given or one derived from it.
   */
  pipeline: (stream: Stream<In>) => Stream<unknown> | AggregatedStream<unknown>;
  /** Where results are published. Must not be one of the input topics. */
  output: {
    /** The output topic. */
    topic: string;
  };
}

const JOB_BRAND: unique symbol = Symbol.for('sluice.job');

/** A job spec passed through {@link defineJob}: frozen and branded. */
export type JobDefinition<In = unknown> = Readonly<JobSpec<In>> & { readonly [JOB_BRAND]: true };

function frozenCopy(value: unknown): unknown {
  if (typeof value !== 'object' || value === null) return value;
  if (Array.isArray(value)) return Object.freeze([...(value as unknown[])]);
  const copy: Record<string, unknown> = {};
  for (const [key, inner] of Object.entries(value)) copy[key] = Array.isArray(inner) ? frozenCopy(inner) : inner;
  return Object.freeze(copy);
}

/**
 * Declares a job; a job module default-exports the result.
 *
 * The spec is copied and frozen; it is validated when the job is loaded (all problems reported in
 * one `JobValidationError`). Give the input value type explicitly to type the pipeline:
 * `defineJob<PageView>({ ... })`.
 */
export function defineJob<In = unknown>(spec: JobSpec<In>): JobDefinition<In> {
  // Not an object (from JavaScript): returned as is, for compileJob to report.
  if (typeof spec !== 'object' || spec === null) return spec as JobDefinition<In>;
  const copy: Record<string, unknown> = {};
  // Unknown fields are kept, so that validation can name them.
  for (const [key, value] of Object.entries(spec)) {
    copy[key] = key === 'input' || key === 'output' ? frozenCopy(value) : value;
  }
  Object.defineProperty(copy, JOB_BRAND, { value: true });
  return Object.freeze(copy) as JobDefinition<In>;
}

/** True for the result of {@link defineJob}, even from another copy of this module. */
export function isJobDefinition(value: unknown): value is JobDefinition {
  return typeof value === 'object' && value !== null && (value as Record<symbol, unknown>)[JOB_BRAND] === true;
}
