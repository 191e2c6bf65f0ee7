/**
 * The typed messages between the main thread and a worker thread. Both sides import this module.
 * Requests carry a `requestId`; the worker answers each with exactly one `result` or `error`.
 */
import { type KafkaConfig } from '../config/resolve.ts';
import { type SerializedError } from '../error-serialization.ts';
import { type ErrorCode } from '../errors.ts';
import { type Delivery } from '../job/plan.ts';
import { type RepartitionBlock } from '../wire/repartition-block.ts';

/** How a worker reaches Kafka: each worker publishes its own partitions' results. */
export interface WorkerKafka {
  connection: KafkaConfig;
  topics: {
    output: string;
    dlq: string;
    repartition: string | undefined;
    repartitionPartitions: number;
    /** `<job>-changelog` of an aggregating job. */
    changelog: string | undefined;
    /** Partitions of each table topic the job joins (read at start-up). */
    tables?: Record<string, number>;
  };
  logLevel: string;
  /** The consumer group: offsets are committed for it, and it prefixes transactional ids. */
  groupId: string;
  delivery: Delivery;
  transactionTimeoutMs: number;
}

/** What the worker needs once, at start. */
export interface WorkerInit {
  jobPath: string;
  workerIndex: number;
  maxRecordBytes: number;
  batchIntervalMs: number | undefined;
  kafka: WorkerKafka;
  /** Every input partition (`topic:partition`): the upstream sources of a repartitioned stage. */
  sources: string[];
  /** Shared with the main thread: where the worker is in its batch (progress.ts). */
  progress: SharedArrayBuffer;
}

/**
 * A record that hung or killed its worker twice: it is dead-lettered with `code` instead of being
 * run again (`sub`: the entry of a repartition block, -1 for a record of its own).
 */
export interface Poison {
  offset: number;
  sub: number;
  code: Extract<ErrorCode, 'SLUICE_USER_CODE_TIMEOUT' | 'SLUICE_WORKER_CRASHED'>;
  message: string;
}

/** The committed position of a partition, read when the partition is (re)assigned. */
export interface PartitionStart {
  /** Next offset to read, as committed; null when the group has no commit for it. */
  committedOffset: number | null;
  /**
   * The commit metadata. Versions before the changelog kept an aggregating task's checkpoint there
   * (wire/checkpoint.ts); it is read once, to upgrade a task whose changelog is still empty.
   */
  metadata: string | null;
}

export interface PartitionWork {
  topic: string;
  partition: number;
  /** Packed records (record-codec), transferred. */
  records: ArrayBuffer;
  count: number;
  /**
   * Nothing more is waiting for this partition: no buffered records, not paused, read up to its high
   * watermark. Only a caught-up partition can be idle (a paused or lagging one is merely behind).
   */
  caughtUp: boolean;
  /** Records not to run again: dead-lettered as poison pills. */
  poison?: Poison[];
  /**
   * The next offset after everything cut for the partition so far, counting offsets that hold no
   * record (transaction markers): the commit goes there, so a caught-up read_committed partition of a
   * transactional topic shows no lag.
   */
  through?: number;
}

export interface BatchRequest {
  type: 'batch';
  requestId: number;
  batchId: number;
  /** Wall-clock time the batch was cut (processing-time windows, idle advancement). */
  batchTime: number;
  partitions: PartitionWork[];
}

/**
 * Before a partition's committed offset is read: exactly-once opens its transactional producer, which
 * fences any previous owner (task-producer.ts). At-least-once has nothing to do.
 */
export interface OpenRequest {
  type: 'open';
  requestId: number;
  partitions: Array<{ topic: string; partition: number }>;
}

/** Builds each partition's task from its committed position and restores its state from the changelog. */
export interface RestoreRequest {
  type: 'restore';
  requestId: number;
  partitions: Array<{ topic: string; partition: number; start: PartitionStart }>;
}

export interface RestoredTask {
  topic: string;
  partition: number;
  /** Changelog records read. */
  records: number;
  ms: number;
  /** The next input offset the task processes (records below it are in its state already). */
  position: number | null;
  /** The outcome written for the task's failed transaction before the restore, if it had one. */
  settled?: 'commit' | 'abort';
}

export interface DropRequest {
  type: 'drop';
  requestId: number;
  partitions: Array<{ topic: string; partition: number }>;
}

/** Flush and disconnect the worker's producer before the thread is terminated. */
export interface CloseRequest {
  type: 'close';
  requestId: number;
}

/**
 * Queryable state: the open windows of `key` in the partition's state store that intersect
 * `[from, to)`. Answered by the task between batches, or between two tasks of a batch.
 */
export interface StateQueryRequest {
  type: 'state-query';
  requestId: number;
  topic: string;
  partition: number;
  key: string;
  from: number;
  to: number;
}

/** One open window of a queried key: `value` as the output would show it (the aggregate's `result()`, as JSON). */
export interface QueriedWindow {
  windowStart: number;
  windowEnd: number;
  value: unknown;
  /** The aggregate's `result()` threw (or its value is not JSON): `value` is null. */
  error?: string;
}

export type WorkerRequest =
  BatchRequest | OpenRequest | RestoreRequest | DropRequest | CloseRequest | StateQueryRequest;

export interface DeadLetter {
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: Array<[string, string | Uint8Array]>;
}

export interface SourceWatermark {
  /** Largest event time seen on the source partition; null before any record. */
  streamTime: number | null;
  /** No record for the idle timeout: the aggregating stage stops waiting for this source. */
  idle: boolean;
}

export interface PartitionStats {
  recordsIn: number;
  recordsOut: number;
  late: number;
  dead: number;
  duplicates: number;
  replayed: number;
  /** Records read again after a restart whose effects the restored state already holds. */
  skipped: number;
  /** Changelog records written (window entries, tombstones, progress). */
  changelog: number;
  openWindows: number;
  /** Largest event time seen (ms), or null before any. */
  streamTime: number | null;
}

export interface PartitionResult {
  topic: string;
  partition: number;
  /** Packed output records for the output topic (record-codec; offset unused). */
  outputs: ArrayBuffer;
  outputCount: number;
  /** Blocks for the repartition topic (published by the worker; emptied before the result is posted). */
  repartition: RepartitionBlock[];
  /** Re-keyed records in those blocks. */
  repartitionCount: number;
  dead: DeadLetter[];
  /**
   * Stage 1 of a re-keyed windowed job: this input partition's stream time, published to every
   * repartition partition so the aggregating stage knows how far each upstream source has come.
   * Null when unchanged since the last report.
   */
  watermark: SourceWatermark | null;
  /** Changelog records of an aggregating task (record-codec: key and value) and their partition. */
  changelog: ArrayBuffer;
  changelogPartition: number | null;
  /** Offset and metadata to commit once the batch's writes are acknowledged; null: nothing new. */
  commit: { offset: number; metadata: string | null } | null;
  /** Exactly-once: `commit` was committed with the batch's transaction (the scheduler commits nothing). */
  committed: boolean;
  stats: PartitionStats;
}

export type WorkerResponse =
  | { type: 'ready'; workerIndex: number }
  | { type: 'init-error'; error: SerializedError }
  | {
      type: 'result';
      requestId: number;
      /** Per partition: statistics, dead letters (already published) and what to commit. */
      partitions: PartitionResult[];
      processingMs: number;
      /** Time to publish the batch's records and get every acknowledgement. */
      publishMs: number;
      /** Every task the worker holds after the batch. */
      held: HeldTask[];
    }
  | { type: 'opened'; requestId: number }
  | { type: 'restored'; requestId: number; partitions: RestoredTask[]; held: HeldTask[] }
  | { type: 'restore-progress'; requestId: number; topic: string; partition: number; records: number; end: number }
  | { type: 'dropped'; requestId: number; held: HeldTask[] }
  | { type: 'closed'; requestId: number }
  /** `held`: false when the worker holds no restored task for the partition (yet). */
  | { type: 'state'; requestId: number; held: boolean; windows: QueriedWindow[] }
  | { type: 'error'; requestId: number; error: SerializedError };

/** A partition a worker holds a task for. */
export interface HeldTask {
  topic: string;
  partition: number;
  kind: string;
  openWindows: number;
}

export const partitionId = (topic: string, partition: number): string => `${topic}:${partition}`;
