/**
 * Fixes to kafkajs. The first two are on the producer's hot path, found by profiling a worker that
 * publishes a stateless job's results (one Kafka record per input record):
 *
 * 1. kafkajs 2.2.4 groups a send's messages by partition with `[...current, message]` per message
 *    (`src/producer/groupMessagesPerPartition.js`): quadratic in the messages per partition of one
 *    call — 18 % of the worker. kafkajs is in maintenance and the module is internal, so
 *    `installKafkajsFixes()` puts a linear version with the same result in Node's module cache before
 *    kafkajs's producer first loads it. It must run before `kafkajs` is first imported (the worker's
 *    entry imports this module first); otherwise it changes nothing and says so.
 * 2. kafkajs's default partitioner hashes keys with murmur2 on 64-bit `Long` objects (3 % of the
 *    worker). `fastDefaultPartitioner` is a custom partitioner (public kafkajs API) with the same
 *    choices: explicit partition, else murmur2 of the key, else round robin over available partitions.
 *
 * The fourth is on every read_committed consumer:
 *
 * 4. kafkajs's `filterAbortedMessages` leaks records of aborted transactions when several producers'
 *    transactions interleave in a partition and are aborted out of order (see
 *    `filter-aborted-messages.cjs`, which replaces it in Node's module cache like fix 1: before kafkajs's
 *    consumer first loads it).
 *
 * The fifth is on the producer's hot path too, found measuring a worker's memory:
 *
 * 5. kafkajs's protocol `Encoder` takes its buffer from `Buffer.alloc` — zero-filled, an ArrayBuffer of
 *    its own, at least 512 bytes — and the record encoder makes a new Encoder per record, so each
 *    published record cost a 512-byte allocation outside the heap, left to the garbage collector.
 *    `installEncoderFix()` puts an Encoder that allocates from Node's buffer pool (`Buffer.allocUnsafe`:
 *    small buffers are slices of shared 8 KiB slabs) in Node's module cache before kafkajs first loads
 *    it, like fix 1. Unfilled memory is safe here: an Encoder writes only at its offset and exposes
 *    only what it wrote (`buffer` is `buf.slice(0, offset)`, growing copies `0..offset`).
 *
 * The third is in every connection (consumer, producer, admin) of every thread:
 *
 * 3. After each response, kafkajs's RequestQueue re-arms its throttle check even when no request
 *    waits and none is throttled: `setTimeout(check, throttledUntil - Date.now())` with
 *    `throttledUntil` at -1, a negative delay. Node runs that after 1 ms, so each idle connection
 *    spins a 1 ms timer loop (kafkajs#1704), and Node 23+ prints a TimeoutNegativeWarning on stderr
 *    once per thread (kafkajs#1751, open). `scheduleCheckPendingRequests` is replaced on the class's
 *    prototype, so load order does not matter: it arms no timer while nothing waits and nothing is
 *    throttled (a request queued later arms it in `push()`), otherwise it does what kafkajs does.
 */
import { createRequire } from 'node:module';
import type { ICustomPartitioner, Message, PartitionMetadata } from 'kafkajs';
import { partitionFor } from '../wire/repartition-block.ts';

const require = createRequire(import.meta.url);
const FIXED_FOR = '2.2.4';

type Partitioner = (args: { topic: string; partitionMetadata: PartitionMetadata[]; message: Message }) => number;

/** kafkajs's groupMessagesPerPartition, linear: messages per partition, in order. */
export function groupMessagesPerPartition({
  topic,
  partitionMetadata,
  messages,
  partitioner,
}: {
  topic: string;
  partitionMetadata: PartitionMetadata[];
  messages: Message[];
  partitioner: Partitioner;
}): Record<number, Message[]> {
  if (partitionMetadata.length === 0) return {};
  const result: Record<number, Message[]> = {};
  for (const message of messages) {
    const partition = partitioner({ topic, partitionMetadata, message });
    (result[partition] ??= []).push(message);
  }
  return result;
}

export type FixOutcome = 'installed' | 'already-installed' | 'too-late' | 'other-version';

/** The corrected kafkajs `filterAbortedMessages` (fix 4). */
export const filterAbortedMessages = require('./filter-aborted-messages.cjs') as (fetched: {
  messages: unknown[];
  abortedTransactions?: Array<{ producerId: string; firstOffset: string }>;
}) => unknown[];

/** Installs fix 4 (see above). Idempotent. */
export function installAbortedFilterFix(): FixOutcome {
  const version = (require('kafkajs/package.json') as { version: string }).version;
  if (version !== FIXED_FOR) return 'other-version';
  const filterPath = require.resolve('kafkajs/src/consumer/filterAbortedMessages.js');
  if (require.cache[filterPath]?.exports === filterAbortedMessages) return 'already-installed';
  if (require.cache[require.resolve('kafkajs/src/consumer/batch.js')]) return 'too-late';
  require(filterPath);
  require.cache[filterPath]!.exports = filterAbortedMessages;
  return 'installed';
}

/** Installed on import, like fix 1. */
export const abortedFilterFix: FixOutcome = installAbortedFilterFix();

/** Installs fix 1 (see above). Idempotent. */
export function installKafkajsFixes(): FixOutcome {
  const version = (require('kafkajs/package.json') as { version: string }).version;
  if (version !== FIXED_FOR) return 'other-version';
  const groupPath = require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js');
  const cached = require.cache[groupPath];
  if (cached?.exports === groupMessagesPerPartition) return 'already-installed';
  if (require.cache[require.resolve('kafkajs/src/producer/sendMessages.js')]) return 'too-late';
  require(groupPath);
  require.cache[groupPath]!.exports = groupMessagesPerPartition;
  return 'installed';
}

/** Installed on import: importing this module before `kafkajs` is what makes fix 1 apply. */
export const kafkajsFixes: FixOutcome = installKafkajsFixes();

/** The parts of kafkajs's protocol Encoder (`src/protocol/encoder.js`) that fix 5 uses. */
interface EncoderClass {
  new (initialSize?: number): EncoderInstance;
  nextPowerOfTwo(value: number): number;
  prototype: EncoderInstance;
}
interface EncoderInstance {
  buf: Buffer;
  offset: number;
  ensureAvailable(length: number): void;
}

/** kafkajs's Encoder, its buffers from Node's pool (fix 5); the same prototype, so the same methods. */
function pooledEncoderOf(Encoder: EncoderClass): EncoderClass {
  // A function, not a subclass: a subclass would have to run kafkajs's constructor, which allocates.
  function PooledEncoder(this: EncoderInstance, initialSize = 511): void {
    this.buf = Buffer.allocUnsafe(Encoder.nextPowerOfTwo(initialSize));
    this.offset = 0;
  }
  PooledEncoder.prototype = Encoder.prototype;
  Object.setPrototypeOf(PooledEncoder, Encoder); // the static helpers (sizeOfVarInt, …)
  return PooledEncoder as unknown as EncoderClass;
}

/** kafkajs's `Encoder.prototype.ensureAvailable`, growing from the pool. */
function ensureAvailable(this: EncoderInstance, length: number): void {
  if (this.offset + length <= this.buf.length) return;
  const grown = Buffer.allocUnsafe((this.constructor as EncoderClass).nextPowerOfTwo(this.offset + length));
  this.buf.copy(grown, 0, 0, this.offset);
  this.buf = grown;
}

/** Installs fix 5 (see above). Idempotent. */
export function installEncoderFix(): FixOutcome {
  const version = (require('kafkajs/package.json') as { version: string }).version;
  if (version !== FIXED_FOR) return 'other-version';
  const encoderPath = require.resolve('kafkajs/src/protocol/encoder.js');
  const cached = require.cache[encoderPath];
  if ((cached?.exports as { pooled?: boolean } | undefined)?.pooled) return 'already-installed';
  if (cached) return 'too-late';
  const Encoder = require(encoderPath) as EncoderClass;
  Encoder.prototype.ensureAvailable = ensureAvailable;
  const pooled = Object.assign(pooledEncoderOf(Encoder), { pooled: true });
  require.cache[encoderPath]!.exports = pooled;
  return 'installed';
}

/** Installed on import, like fix 1. */
export const encoderFix: FixOutcome = installEncoderFix();

/** The fields and methods of kafkajs's RequestQueue (`src/network/requestQueue/index.js`) that fix 3 uses. */
interface RequestQueue {
  pending: unknown[];
  throttledUntil: number;
  throttleCheckTimeoutId: ReturnType<typeof setTimeout> | null;
  checkPendingRequests(): void;
  scheduleCheckPendingRequests(): void;
}

/** kafkajs's `CHECK_PENDING_REQUESTS_INTERVAL`. */
const CHECK_PENDING_REQUESTS_INTERVAL = 10;

/** kafkajs's `RequestQueue.scheduleCheckPendingRequests`, without the timer when there is nothing to check. */
export function scheduleCheckPendingRequests(this: RequestQueue): void {
  if (this.throttleCheckTimeoutId) return;
  let scheduleAt = this.throttledUntil - Date.now();
  if (this.pending.length > 0) scheduleAt = scheduleAt > 0 ? scheduleAt : CHECK_PENDING_REQUESTS_INTERVAL;
  else if (scheduleAt <= 0) return;
  this.throttleCheckTimeoutId = setTimeout(() => {
    this.throttleCheckTimeoutId = null;
    this.checkPendingRequests();
  }, scheduleAt);
}

/** Installs fix 3 (see above). Idempotent. */
export function installRequestQueueFix(): FixOutcome {
  const version = (require('kafkajs/package.json') as { version: string }).version;
  if (version !== FIXED_FOR) return 'other-version';
  const { prototype } = require('kafkajs/src/network/requestQueue/index.js') as { prototype: RequestQueue };
  if (prototype.scheduleCheckPendingRequests === scheduleCheckPendingRequests) return 'already-installed';
  prototype.scheduleCheckPendingRequests = scheduleCheckPendingRequests;
  return 'installed';
}

/** Installed on import, in any order with kafkajs. */
export const requestQueueFix: FixOutcome = installRequestQueueFix();

/** Whether kafkajs's producer, as loaded, groups messages with the linear version. */
export function kafkajsFixesActive(): boolean {
  const sendMessages = require.cache[require.resolve('kafkajs/src/producer/sendMessages.js')];
  const group = require.cache[require.resolve('kafkajs/src/producer/groupMessagesPerPartition.js')];
  return sendMessages !== undefined && group?.exports === groupMessagesPerPartition;
}

/** Whether kafkajs's consumer, as loaded, filters aborted records with the corrected version (fix 4). */
export function abortedFilterFixActive(): boolean {
  const filter = require.cache[require.resolve('kafkajs/src/consumer/filterAbortedMessages.js')];
  return filter?.exports === filterAbortedMessages;
}

/** kafkajs's DefaultPartitioner, with a 32-bit murmur2 (fix 2). */
export const fastDefaultPartitioner: ICustomPartitioner = () => {
  const counters = new Map<string, number>();
  return ({ topic, partitionMetadata, message }) => {
    if (message.partition !== null && message.partition !== undefined) return message.partition;
    const key = message.key;
    if (key !== null && key !== undefined) {
      const bytes = typeof key === 'string' ? Buffer.from(key) : key;
      return partitionFor(bytes, partitionMetadata.length);
    }
    const next = (counters.get(topic) ?? Math.floor(Math.random() * 2 ** 31)) + 1;
    counters.set(topic, next);
    const available = partitionMetadata.filter((p) => p.leader >= 0);
    if (available.length > 0) return available[(next & 0x7fffffff) % available.length]!.partitionId;
    return (next & 0x7fffffff) % partitionMetadata.length;
  };
};
