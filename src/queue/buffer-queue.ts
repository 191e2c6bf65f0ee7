/**
 * The bounded buffer between the Kafka receiver and the scheduler. Pure bookkeeping, no I/O.
 *
 * The bound is enforced by the receiver, not here: `push` always accepts (Kafka already delivered the
 * records), and the receiver pauses a partition once {@link BufferQueue.shouldPause} says its share
 * is full. The overshoot is at most one fetch per partition. Each of the `n` assigned partitions gets
 * an equal share (`maxRecords / n`, `maxBytes / n`), so one hot partition cannot starve the others.
 *
 * Records are held as the receiver packed them when they were fetched (record-codec layout, one
 * chunk per fetch), so what the byte bound counts is what the process holds: the packed bytes, the
 * index of record starts, and a fixed cost per chunk. A cut copies each partition's share into one
 * transferable buffer (one copy per byte; a whole chunk alone is handed over as it is) and drops
 * consumed chunks with one `splice`, never an `Array.shift()` per record.
 */
import { offsetAt, type PackedRecords } from '../wire/record-codec.ts';

/** What a chunk costs beyond its records: the objects that hold it, the end of its start index. */
export const CHUNK_OVERHEAD_BYTES = 256;
/** Each record's entry in its chunk's start index. */
const START_BYTES = 4;

/** One partition's share of a cut: its records packed in one buffer, to be transferred to a worker. */
export interface CutRecords {
  readonly buffer: ArrayBuffer;
  readonly count: number;
  /** Offset of the last record. */
  readonly lastOffset: number;
}

/** Bounds over all partitions; each assigned partition gets an equal share. */
export interface BufferQueueOptions {
  maxRecords: number;
  maxBytes: number;
}

interface PartitionBuffer {
  /** Pushed chunks, oldest first; the queue owns them once pushed. */
  chunks: PackedRecords[];
  /** Read position (record index) in `chunks[0]`. */
  head: number;
  records: number;
  bytes: number;
}

const emptyBuffer = (): PartitionBuffer => ({ chunks: [], head: 0, records: 0, bytes: 0 });
const countOf = (chunk: PackedRecords): number => chunk.starts.length - 1;
/** What records `from` up to `to` of a chunk cost the bound. */
const bytesOf = (chunk: PackedRecords, from: number, to: number): number =>
  chunk.starts[to]! - chunk.starts[from]! + START_BYTES * (to - from);

export class BufferQueue {
  readonly #maxRecords: number;
  readonly #maxBytes: number;
  /** Assigned partitions in assignment order, each with its buffer (possibly empty). */
  #buffers = new Map<string, PartitionBuffer>();
  readonly #paused = new Set<string>();
  #records = 0;
  #bytes = 0;
  /** Rotates which partition is served first in a cut, so rounding never favours the same one. */
  #cursor = 0;

  constructor(options: BufferQueueOptions) {
    for (const key of ['maxRecords', 'maxBytes'] as const) {
      const value = options[key];
      if (!(value > 0)) throw new RangeError(`BufferQueue: ${key} must be positive (got ${value})`);
    }
    this.#maxRecords = options.maxRecords;
    this.#maxBytes = options.maxBytes;
  }

  /**
   * Sets the assigned partitions (ids like `"topic:3"`). Shares become `maxRecords / n` and
   * `maxBytes / n`. Buffers and pause marks of partitions not in the list are dropped.
   */
  setPartitions(partitions: readonly string[]): void {
    const next = new Map<string, PartitionBuffer>();
    for (const id of partitions) next.set(id, this.#buffers.get(id) ?? emptyBuffer());
    for (const [id, buffer] of this.#buffers) {
      if (next.has(id)) continue;
      this.#records -= buffer.records;
      this.#bytes -= buffer.bytes;
      this.#paused.delete(id);
    }
    this.#buffers = next;
  }

  /**
   * Appends a packed chunk to a partition's buffer. Always accepts: backpressure is the caller's job
   * (see {@link shouldPause}). The queue keeps the chunk itself: do not modify it after pushing. A
   * partition not yet known is added to the assigned set (shares shrink accordingly).
   */
  push(partition: string, chunk: PackedRecords): void {
    const count = countOf(chunk);
    if (count === 0) return;
    let buffer = this.#buffers.get(partition);
    if (!buffer) {
      buffer = emptyBuffer();
      this.#buffers.set(partition, buffer);
    }
    const bytes = bytesOf(chunk, 0, count) + CHUNK_OVERHEAD_BYTES;
    buffer.chunks.push(chunk);
    buffer.records += count;
    buffer.bytes += bytes;
    this.#records += count;
    this.#bytes += bytes;
  }

  /** True when the partition's buffered records or bytes reached its share: pause fetching it. */
  shouldPause(partition: string): boolean {
    const buffer = this.#buffers.get(partition);
    if (!buffer) return false;
    return buffer.records >= this.#shareOf('records') || buffer.bytes >= this.#shareOf('bytes');
  }

  /** Records that the caller paused the partition (so {@link resumable} will report it). */
  markPaused(partition: string): void {
    this.#paused.add(partition);
  }

  /**
   * Paused partitions drained to at most half their share (in records and in bytes): the caller
   * resumes them. They are unmarked. The gap between the pause mark (full share) and the resume mark
   * (half) keeps a partition from flapping between paused and resumed on every fetch.
   */
  resumable(): string[] {
    const records = this.#shareOf('records') / 2;
    const bytes = this.#shareOf('bytes') / 2;
    const ready: string[] = [];
    for (const id of this.#paused) {
      const buffer = this.#buffers.get(id);
      if (!buffer || (buffer.records <= records && buffer.bytes <= bytes)) {
        ready.push(id);
        this.#paused.delete(id);
      }
    }
    return ready;
  }

  /**
   * Takes a batch of at most `maxRecords` records (`Infinity`: everything buffered): oldest first per
   * partition, in order. Fair: each non-empty partition gets an equal share; a partition needing less
   * leaves the rest to the others. Only partitions that contribute records appear in the result.
   */
  cut(maxRecords: number): Map<string, CutRecords> {
    if (!(maxRecords >= 0)) throw new RangeError(`BufferQueue.cut: maxRecords must be ≥ 0 (got ${maxRecords})`);
    const batch = new Map<string, CutRecords>();
    const candidates: Array<[string, PartitionBuffer]> = [];
    for (const entry of this.#buffers) if (entry[1].records > 0) candidates.push(entry);
    if (candidates.length === 0 || maxRecords < 1) return batch;

    // Water-filling: the smallest demands are served first and what they leave is shared by the rest.
    // Rounding leftovers go to the largest backlogs (the last ones), which self-balances over
    // successive cuts; ties keep a rotated order, so equal partitions take turns.
    const start = this.#cursor++ % candidates.length;
    const bySize = [...candidates.slice(start), ...candidates.slice(0, start)].sort(
      (a, b) => a[1].records - b[1].records,
    );
    const takes = new Map<string, number>();
    let remaining = Math.floor(maxRecords);
    let left = bySize.length;
    for (const [id, buffer] of bySize) {
      const take = Math.min(buffer.records, Math.floor(remaining / left));
      takes.set(id, take);
      remaining -= take;
      left--;
    }
    for (let i = bySize.length - 1; i >= 0 && remaining > 0; i--) {
      const [id, buffer] = bySize[i] as [string, PartitionBuffer];
      const take = takes.get(id) ?? 0;
      const extra = Math.min(buffer.records - take, remaining);
      takes.set(id, take + extra);
      remaining -= extra;
    }
    for (const [id, buffer] of candidates) {
      const take = takes.get(id) ?? 0;
      if (take > 0) batch.set(id, this.#take(buffer, take));
    }
    return batch;
  }

  /** Drops a partition's buffered records (it stays assigned; a pause mark stays, to be resumed). */
  clear(partition: string): void {
    const buffer = this.#buffers.get(partition);
    if (!buffer) return;
    this.#records -= buffer.records;
    this.#bytes -= buffer.bytes;
    buffer.chunks.forEach(release);
    this.#buffers.set(partition, emptyBuffer());
  }

  /** Drops every buffered record (partitions stay assigned, pause marks stay). */
  clearAll(): void {
    for (const [id, buffer] of this.#buffers) {
      buffer.chunks.forEach(release);
      this.#buffers.set(id, emptyBuffer());
    }
    this.#records = 0;
    this.#bytes = 0;
  }

  /** Buffered records over all partitions. */
  get records(): number {
    return this.#records;
  }

  /** Buffered bytes over all partitions. */
  get bytes(): number {
    return this.#bytes;
  }

  /** Buffered records and bytes of one partition. */
  sizeOf(partition: string): { records: number; bytes: number } {
    const buffer = this.#buffers.get(partition);
    return { records: buffer?.records ?? 0, bytes: buffer?.bytes ?? 0 };
  }

  /** Partitions marked paused and not yet reported by {@link resumable}. */
  get pausedPartitions(): readonly string[] {
    return [...this.#paused];
  }

  #shareOf(kind: 'records' | 'bytes'): number {
    const n = Math.max(1, this.#buffers.size);
    return (kind === 'records' ? this.#maxRecords : this.#maxBytes) / n;
  }

  /** Removes the `count` oldest records of a buffer (`count` ≤ its records), packed in one buffer. */
  #take(buffer: PartitionBuffer, count: number): CutRecords {
    const pieces: Array<{ chunk: PackedRecords; from: number; to: number }> = [];
    let needed = count;
    let consumed = 0;
    let bytes = 0;
    let length = 0;
    while (needed > 0) {
      const chunk = buffer.chunks[consumed];
      if (!chunk) break;
      const from = buffer.head;
      const to = Math.min(countOf(chunk), from + needed);
      pieces.push({ chunk, from, to });
      bytes += bytesOf(chunk, from, to);
      length += chunk.starts[to]! - chunk.starts[from]!;
      needed -= to - from;
      if (to === countOf(chunk)) {
        bytes += CHUNK_OVERHEAD_BYTES;
        consumed++;
        buffer.head = 0;
      } else {
        buffer.head = to;
      }
    }
    buffer.chunks.splice(0, consumed);
    const taken = count - needed;
    buffer.records -= taken;
    this.#records -= taken;
    // An emptied buffer resets to exactly 0, so float sizes cannot leave a residue.
    const byteDelta = buffer.records === 0 ? buffer.bytes : bytes;
    buffer.bytes -= byteDelta;
    this.#bytes -= byteDelta;
    const last = pieces[pieces.length - 1]!;
    const lastOffset = offsetAt(last.chunk.bytes, last.chunk.starts[last.to - 1]!);
    const out = joined(pieces, length);
    // Chunks copied out whole are freed now, not when the collector gets to them.
    for (const { chunk, to } of pieces) if (to === countOf(chunk) && chunk.bytes.buffer !== out) release(chunk);
    return { buffer: out, count: taken, lastOffset };
  }
}

/** Frees a chunk's bytes at once (the queue owns them: nothing else holds a view). */
function release(chunk: PackedRecords): void {
  (chunk.bytes.buffer as ArrayBuffer).transfer(0);
}

/** The pieces' bytes in one ArrayBuffer: a whole chunk alone as it is, else one copy. */
function joined(
  pieces: ReadonlyArray<{ chunk: PackedRecords; from: number; to: number }>,
  length: number,
): ArrayBuffer {
  const only = pieces.length === 1 ? pieces[0]! : undefined;
  if (only && only.from === 0 && only.to === countOf(only.chunk)) {
    const { bytes } = only.chunk;
    if (bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength) return bytes.buffer as ArrayBuffer;
  }
  const out = new Uint8Array(length);
  let pos = 0;
  for (const { chunk, from, to } of pieces) {
    const part = chunk.bytes.subarray(chunk.starts[from], chunk.starts[to]);
    out.set(part, pos);
    pos += part.length;
  }
  return out.buffer;
}
