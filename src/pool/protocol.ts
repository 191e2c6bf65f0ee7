/**
 * The typed messages between the main thread and a worker thread. Both sides import this module.
 * Requests carry a `requestId`; the worker answers each with exactly one `result` or `error`.
 */
import { type SerializedError } from '../errors.ts';
import { type RepartitionBlock } from './repartition-block.ts';

/** How a worker reaches Kafka: each worker publishes its own partitions' results. */
export interface WorkerKafka {
  clientId: string;
  brokers: string[];
  ssl: false | { ca?: string; cert?: string; key?: string; rejectUnauthorized: boolean };
  sasl: undefined | { mechanism: 'plain' | 'scram-sha-256' | 'scram-sha-512'; username: string; password: string };
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
    }
  | { type: 'dropped'; requestId: number }
  | { type: 'closed'; requestId: number }
  | { type: 'error'; requestId: number; error: SerializedError };

/** Headers of repartition records: which upstream record a re-keyed record came from. */
export const SOURCE_HEADER = 'sluice-src';
export const POSITION_HEADER = 'sluice-pos';
/** On a repartition-topic control record: the upstream partition's stream time (and idleness). */
export const WATERMARK_HEADER = 'sluice-wm';
export const IDLE_HEADER = 'sluice-idle';

export const partitionId = (topic: string, partition: number): string => `${topic}:${partition}`;
