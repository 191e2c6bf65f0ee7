/**
 * The typed messages between the main thread and a worker thread. Both sides import this module.
 * Requests carry a `requestId`; the worker answers each with exactly one `result` or `error`.
 */
import { type KafkaConfig } from '../config/resolve.ts';
import { type SerializedError } from '../error-serialization.ts';
import { type ErrorCode } from '../errors.ts';
import { type RepartitionBlock } from '../wire/repartition-block.ts';

/** How a worker reaches Kafka: each worker publishes its own partitions' results. */
export interface WorkerKafka {
  connection: KafkaConfig;
  topics: { output: string; dlq: string; repartition: string | undefined; repartitionPartitions: number };
  logLevel: string;
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
  /** The commit metadata Sluice wrote with it (stream time, replay end, de-duplication marks). */
  metadata: string | null;
}

export interface PartitionWork {
  topic: string;
  partition: number;
  /** Present when the worker must (re)build this partition's state from its committed position. */
  start?: PartitionStart;
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
}

export interface BatchRequest {
  type: 'batch';
  requestId: number;
  batchId: number;
  /** Wall-clock time the batch was cut (processing-time windows, idle advancement). */
  batchTime: number;
  partitions: PartitionWork[];
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

export type WorkerRequest = BatchRequest | DropRequest | CloseRequest;

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
  /** Offset and metadata to commit once the batch's writes are acknowledged; null: nothing new. */
  commit: { offset: number; metadata: string | null } | null;
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
  | { type: 'dropped'; requestId: number; held: HeldTask[] }
  | { type: 'closed'; requestId: number }
  | { type: 'error'; requestId: number; error: SerializedError };

/** A partition a worker holds a task for. */
export interface HeldTask {
  topic: string;
  partition: number;
  kind: string;
  openWindows: number;
}

export const partitionId = (topic: string, partition: number): string => `${topic}:${partition}`;
