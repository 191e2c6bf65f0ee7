/**
 * Repartition blocks: stage 1 of a re-keyed job writes the re-keyed records bound for one
 * repartition partition as one Kafka record per batch and upstream partition (split near
 * BLOCK_TARGET_BYTES), like Spark's shuffle blocks. One Kafka record per re-keyed record cost stage 1
 * most of its time in kafkajs's per-record encoding (profiled: 34 % of a worker) and stage 2 as much
 * again in decoding; a block is one record, and its entries are read here in a tight loop.
 *
 * Layout (little endian):
 *   u8 version (2) | u32 count | entries
 *   entry: f64 offset | u32 sequence | f64 eventTime | f64 timestamp | u8 encoding |
 *          i32 keyLen (-1 = null) | key | i32 valueLen (-1 = null) | value
 * `offset`/`sequence` is the entry's upstream position (the de-duplication mark), `timestamp` the
 * input record's Kafka timestamp (for its dead letter), `encoding` how the value is read back (a
 * string stays a string, bytes stay bytes). Version 1 blocks (no timestamp) are still read. The
 * block record carries the upstream partition in `sluice-src` and the version in `sluice-block`.
 * Hand-written: it is the hot path of re-keyed jobs and no maintained library packs this layout.
 */

import { BLOCK_HEADER, WATERMARK_HEADER } from './headers.ts';

export const BLOCK_VERSION = 2;
/** Version 1 entries have no input timestamp. */
const V1 = 1;
/** A block is closed once it reaches this size; an entry never spans two blocks. */
export const BLOCK_TARGET_BYTES = 256 * 1024;

export type ValueEncoding = 'json' | 'string' | 'bytes' | 'null';
const ENCODING_CODES: Record<ValueEncoding, number> = { json: 0, string: 1, bytes: 2, null: 3 };
const ENCODINGS: readonly ValueEncoding[] = ['json', 'string', 'bytes', 'null'];

export interface BlockEntry {
  offset: number;
  sequence: number;
  eventTime: number;
  /** The input record's Kafka timestamp; undefined in version 1 blocks. */
  timestamp: number | undefined;
  encoding: ValueEncoding;
  key: Uint8Array | null;
  /** A view into the block. */
  value: Uint8Array | null;
}

/** One Kafka record for the repartition topic. */
export interface RepartitionBlock {
  partition: number;
  /** Entries in the block. */
  count: number;
  data: Uint8Array;
}

export class BlockFormatError extends Error {}

/** Where an entry comes from upstream, and its times. */
export interface EntryPosition {
  offset: number;
  sequence: number;
  eventTime: number;
  timestamp: number;
}

const HEADER_BYTES = 5;
const ENTRY_FIXED_BYTES = 8 + 4 + 8 + 8 + 1 + 4 + 4;
const encoder = new TextEncoder();

class OpenBlock {
  buf = new Uint8Array(16 * 1024);
  view = new DataView(this.buf.buffer);
  pos = HEADER_BYTES;
  count = 0;

  ensure(extra: number): void {
    if (this.pos + extra <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < this.pos + extra) size *= 2;
    // Grown in place where the allocator can, the old memory released at once (not left to the GC).
    this.buf = new Uint8Array((this.buf.buffer as ArrayBuffer).transfer(size));
    this.view = new DataView(this.buf.buffer);
  }

  seal(partition: number): RepartitionBlock {
    this.view.setUint8(0, BLOCK_VERSION);
    this.view.setUint32(1, this.count, true);
    return { partition, count: this.count, data: this.buf.subarray(0, this.pos) };
  }
}

/** Collects one batch's re-keyed records of one upstream partition, by target partition. */
export class BlockWriter {
  readonly #partitions: number;
  readonly #open = new Map<number, OpenBlock>();
  readonly #sealed: RepartitionBlock[] = [];
  #count = 0;
  #scratch = new Uint8Array(256);

  constructor(partitions: number) {
    if (!(partitions > 0)) throw new RangeError(`BlockWriter: partitions must be positive (got ${partitions})`);
    this.#partitions = partitions;
  }

  /** Entries written so far. */
  get count(): number {
    return this.#count;
  }

  /**
   * Adds an entry for the partition Kafka's default partitioner would choose for the key (bytes, or
   * text written as UTF-8). `payload`:
   * the value as text (json, string) or bytes, null for the null encoding.
   */
  add(
    keyOrText: Uint8Array | string,
    at: EntryPosition,
    encoding: ValueEncoding,
    payload: string | Uint8Array | null,
  ): void {
    let key: Uint8Array;
    if (typeof keyOrText === 'string') {
      // Encoded into a reused buffer (then copied into the block): no allocation per record.
      if (keyOrText.length * 3 > this.#scratch.length) this.#scratch = new Uint8Array(keyOrText.length * 3);
      key = this.#scratch.subarray(0, encoder.encodeInto(keyOrText, this.#scratch).written);
    } else key = keyOrText;
    const partition = partitionFor(key, this.#partitions);
    let block = this.#open.get(partition);
    if (!block) this.#open.set(partition, (block = new OpenBlock()));
    const payloadMax = payload === null ? 0 : typeof payload === 'string' ? payload.length * 3 : payload.length;
    block.ensure(ENTRY_FIXED_BYTES + key.length + payloadMax);
    const { view, buf } = block;
    let pos = block.pos;
    view.setFloat64(pos, at.offset, true);
    view.setUint32(pos + 8, at.sequence, true);
    view.setFloat64(pos + 12, at.eventTime, true);
    view.setFloat64(pos + 20, at.timestamp, true);
    view.setUint8(pos + 28, ENCODING_CODES[encoding]);
    view.setInt32(pos + 29, key.length, true);
    buf.set(key, pos + 33);
    pos += 33 + key.length;
    if (payload === null) {
      view.setInt32(pos, -1, true);
      pos += 4;
    } else if (typeof payload === 'string') {
      const { written } = encoder.encodeInto(payload, buf.subarray(pos + 4));
      view.setInt32(pos, written, true);
      pos += 4 + written;
    } else {
      view.setInt32(pos, payload.length, true);
      buf.set(payload, pos + 4);
      pos += 4 + payload.length;
    }
    block.pos = pos;
    block.count++;
    this.#count++;
    if (pos >= BLOCK_TARGET_BYTES) {
      this.#sealed.push(block.seal(partition));
      this.#open.delete(partition);
    }
  }

  /** The blocks, in the order their entries were written per partition. */
  finish(): RepartitionBlock[] {
    const blocks = this.#sealed.slice();
    for (const [partition, block] of this.#open) blocks.push(block.seal(partition));
    this.#open.clear();
    this.#sealed.length = 0;
    return blocks;
  }
}

/** Entries of a block, or undefined when `data` is not a block of a known version. */
export function blockEntryCount(data: Uint8Array | null): number | undefined {
  if (data === null || data.length < HEADER_BYTES || (data[0] !== BLOCK_VERSION && data[0] !== V1)) return undefined;
  return new DataView(data.buffer, data.byteOffset, data.length).getUint32(1, true);
}

/**
 * How many records some repartition-topic records hold: a block its entries, a control record
 * (upstream stream time) none, anything else one (it will be dead-lettered as it is).
 */
export function repartitionRecords(
  records: Iterable<{ value: Uint8Array | null; headers: ReadonlyArray<readonly [string, unknown]> }>,
): number {
  let n = 0;
  for (const r of records) {
    let block = false;
    let control = false;
    for (const [name] of r.headers) {
      if (name === BLOCK_HEADER) block = true;
      else if (name === WATERMARK_HEADER) control = true;
    }
    if (block) n += blockEntryCount(r.value) ?? 0;
    else if (!control) n++;
  }
  return n;
}

/** Iterates a block's entries; keys and values are views. Throws BlockFormatError on a malformed block. */
export function* readBlock(data: Uint8Array | null): Generator<BlockEntry> {
  if (data === null || data.length < HEADER_BYTES) throw new BlockFormatError('block is empty or truncated');
  const version = data[0];
  if (version !== BLOCK_VERSION && version !== V1) {
    throw new BlockFormatError(`block version ${version} is not ${V1} or ${BLOCK_VERSION}`);
  }
  const withTimestamp = version !== V1;
  const fixed = withTimestamp ? 29 : 21;
  const view = new DataView(data.buffer, data.byteOffset, data.length);
  const count = view.getUint32(1, true);
  let pos = HEADER_BYTES;
  const bytes = (): Uint8Array | null => {
    if (pos + 4 > data.length) throw new BlockFormatError('block is truncated');
    const len = view.getInt32(pos, true);
    pos += 4;
    if (len < 0) return null;
    if (pos + len > data.length) throw new BlockFormatError('block is truncated');
    const out = data.subarray(pos, pos + len);
    pos += len;
    return out;
  };
  for (let i = 0; i < count; i++) {
    if (pos + fixed > data.length) throw new BlockFormatError('block is truncated');
    const offset = view.getFloat64(pos, true);
    const sequence = view.getUint32(pos + 8, true);
    const eventTime = view.getFloat64(pos + 12, true);
    const timestamp = withTimestamp ? view.getFloat64(pos + 20, true) : undefined;
    const code = view.getUint8(pos + fixed - 1);
    const encoding = ENCODINGS[code];
    if (encoding === undefined) throw new BlockFormatError(`unknown value encoding ${code}`);
    pos += fixed;
    const key = bytes();
    const value = bytes();
    yield { offset, sequence, eventTime, timestamp, encoding, key, value };
  }
  if (pos !== data.length) throw new BlockFormatError(`${data.length - pos} bytes after the last entry`);
}

/**
 * Kafka's default partitioner for a keyed record: murmur2 of the key bytes, made positive, modulo
 * the partition count (Java's `Utils.murmur2`). Written here because kafkajs's version works on
 * 64-bit Long objects (slow on this path) and is not part of its public API; a test checks both agree.
 */
export function partitionFor(key: Uint8Array, partitions: number): number {
  return (murmur2(key) & 0x7fffffff) % partitions;
}

export function murmur2(data: Uint8Array): number {
  const m = 0x5bd1e995;
  const length = data.length;
  let h = 0x9747b28c ^ length;
  const length4 = length >> 2;
  for (let i = 0; i < length4; i++) {
    const i4 = i * 4;
    let k = data[i4]! | (data[i4 + 1]! << 8) | (data[i4 + 2]! << 16) | (data[i4 + 3]! << 24);
    k = Math.imul(k, m);
    k ^= k >>> 24;
    k = Math.imul(k, m);
    h = Math.imul(h, m);
    h ^= k;
  }
  const tail = length & ~3;
  const rest = length & 3;
  if (rest === 3) h ^= data[tail + 2]! << 16;
  if (rest >= 2) h ^= data[tail + 1]! << 8;
  if (rest >= 1) {
    h ^= data[tail]!;
    h = Math.imul(h, m);
  }
  h ^= h >>> 13;
  h = Math.imul(h, m);
  h ^= h >>> 15;
  return h | 0;
}
