/**
 * What one Fetch response (v11, read_committed) of one changelog partition holds for a restore: the
 * committed data records from the fetch offset on, and the offset to fetch next. It follows what
 * kafkajs's consumer does with a response (`src/consumer/batch.js`), with two differences, each
 * where kafkajs's way would lose or leak records:
 *
 * - The next offset is the end of the last record batch returned, not its last record + 1: a
 *   compacted batch keeps its offset range, so the next fetch starts past it instead of returning
 *   the same batch again (kafkajs steps one offset at a time there).
 * - Kafka returns aborted transactional records to read_committed readers, with the list of aborted
 *   transactions, and the reader drops them. kafkajs's `filterAbortedMessages` leaks some (it enters at
 *   most one aborted transaction per record, in the broker's order, and takes a data record keyed by
 *   four zero bytes for an abort marker); the corrected one in `src/kafka/filter-aborted-messages.cjs`
 *   is used, the one the service installs for kafkajs's consumer too.
 */
import { filterAbortedMessages as filterAborted } from '../kafka/kafkajs-fixes.ts';

/** A record as kafkajs decodes it (`src/protocol/recordBatch/record/v0/decoder.js`), as far as used here. */
export interface FetchedMessage {
  /** Int64 as a decimal string. */
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  /** Epoch ms as a decimal string. */
  timestamp?: string;
  headers?: Record<string, Buffer | Buffer[] | undefined>;
  isControlRecord: boolean;
  /** The record batch's header; absent for the legacy message formats. */
  batchContext?: { firstOffset: string; lastOffsetDelta: number; producerId: string; inTransaction: boolean };
}

export interface AbortedTransaction {
  producerId: string;
  firstOffset: string;
}

/** One partition of a Fetch v11 response (`src/protocol/requests/fetch/v11/response.js`). */
export interface FetchedPartition {
  partition: number;
  errorCode: number;
  highWatermark: string;
  /** -1 when the broker does not know it; else the end that read_committed readers see. */
  lastStableOffset: string;
  /** The partition's log start offset. */
  lastStartOffset: string;
  abortedTransactions: AbortedTransaction[] | null;
  messages: FetchedMessage[];
}

export interface ChangelogRecord {
  offset: number;
  /** Views into the fetched response: copy what outlives the callback, or the response stays in memory. */
  key: Buffer | null;
  value: Buffer | null;
  /** As kafkajs decodes them (references, not converted): for a table record's dead letter. */
  timestamp?: string | undefined;
  headers?: Record<string, Buffer | Buffer[] | undefined> | undefined;
}

const filterAbortedMessages = filterAborted as (input: {
  messages: FetchedMessage[];
  abortedTransactions: AbortedTransaction[];
}) => FetchedMessage[];

/** The end a read_committed reader sees in this response. */
export function stableEnd(partition: FetchedPartition): number {
  const stable = Number(partition.lastStableOffset);
  return stable >= 0 ? stable : Number(partition.highWatermark);
}

/**
 * The committed data records of `partition` in `[position, end)`, in offset order, and the offset
 * after the last record batch the response holds (`undefined` when it holds none at or after
 * `position`: empty or compacted-away batches, or nothing yet).
 */
export function readFetched(
  partition: FetchedPartition,
  position: number,
  end: number,
): { records: ChangelogRecord[]; next: number | undefined } {
  const raw = partition.messages;
  if (raw.length === 0) return { records: [], next: undefined };
  // A compressed batch is returned whole, so it may start before the fetch offset.
  let first = 0;
  while (first < raw.length && Number(raw[first]!.offset) < position) first++;
  const within = first === 0 ? raw : raw.slice(first);
  const last = raw[raw.length - 1]!;
  const batch = last.batchContext;
  const lastOffset = batch ? Number(batch.firstOffset) + batch.lastOffsetDelta : Number(last.offset);
  const next = Math.max(lastOffset, Number(last.offset)) + 1;
  const aborted = partition.abortedTransactions ?? [];
  const committed =
    aborted.length > 0 ? filterAbortedMessages({ messages: within, abortedTransactions: aborted }) : within;
  const records: ChangelogRecord[] = [];
  for (const message of committed) {
    if (message.isControlRecord) continue;
    const offset = Number(message.offset);
    if (offset >= end) break;
    records.push({
      offset,
      key: message.key,
      value: message.value,
      timestamp: message.timestamp,
      headers: message.headers,
    });
  }
  return { records, next: next > position ? next : undefined };
}
