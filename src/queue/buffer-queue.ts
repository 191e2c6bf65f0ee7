/**
 * The bounded buffer between the Kafka receiver and the scheduler. Pure bookkeeping, no I/O.
 *
 * The bound is enforced by the receiver, not here: `push` always accepts (Kafka already delivered the
 * records), and the receiver pauses a partition once {@link BufferQueue.shouldPause} says its share
 * is full. The overshoot is at most one fetch per partition. Each of the `n` assigned partitions gets
 * an equal share (`maxRecords / n`, `maxBytes / n`), so one hot partition cannot starve the others.
 *
 * Records are kept in the arrays the receiver pushed (one chunk per fetch) with a read index into the
 * oldest chunk: a cut slices each chunk at most once and drops consumed chunks with one `splice`,
 * never an `Array.shift()` per record.
 */

/** One Kafka record as fetched: raw bytes, deserialized later in a worker. */
export interface RawRecord {
  offset: string;
  timestamp: number;
  key: Buffer | null;
  value: Buffer | null;
  headers: Array<[string, Buffer]>;
  /** Bytes of key + value + headers, for the byte bound. */
  size: number;
}

/** Bounds over all partitions; each assigned partition gets an equal share. */
export interface BufferQueueOptions {
  maxRecords: number;
  maxBytes: number;
}

interface PartitionBuffer {
  /** Pushed arrays, oldest first; the queue owns them once pushed. */
  chunks: RawRecord[][];
  /** Read position in `chunks[0]`. */
  head: number;
  records: number;
  bytes: number;
}

const emptyBuffer = (): PartitionBuffer => ({ chunks: [], head: 0, records: 0, bytes: 0 });

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
   * Appends records to a partition's buffer. Always accepts: backpressure is the caller's job (see
   * {@link shouldPause}). The queue keeps the array itself: do not modify it after pushing. A
   * partition not yet known is added to the assigned set (shares shrink accordingly).
   */
  push(partition: string, records: RawRecord[]): void {
    if (records.length === 0) return;
    let buffer = this.#buffers.get(partition);
    if (!buffer) {
      buffer = emptyBuffer();
      this.#buffers.set(partition, buffer);
    }
    let bytes = 0;
    for (const record of records) bytes += record.size;
    buffer.chunks.push(records);
    buffer.records += records.length;
    buffer.bytes += bytes;
    this.#records += records.length;
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
  cut(maxRecords: number): Map<string, RawRecord[]> {
    if (!(maxRecords >= 0)) throw new RangeError(`BufferQueue.cut: maxRecords must be ≥ 0 (got ${maxRecords})`);
    const batch = new Map<string, RawRecord[]>();
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
    this.#buffers.set(partition, emptyBuffer());
  }

  /** Drops every buffered record (partitions stay assigned, pause marks stay). */
  clearAll(): void {
    for (const id of this.#buffers.keys()) this.#buffers.set(id, emptyBuffer());
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

  /** Removes the `count` oldest records of a buffer (`count` ≤ its records). */
  #take(buffer: PartitionBuffer, count: number): RawRecord[] {
    const pieces: RawRecord[][] = [];
    let needed = count;
    let consumed = 0;
    while (needed > 0) {
      const chunk = buffer.chunks[consumed];
      if (!chunk) break;
      const available = chunk.length - buffer.head;
      if (available <= needed) {
        pieces.push(buffer.head === 0 ? chunk : chunk.slice(buffer.head));
        needed -= available;
        consumed++;
        buffer.head = 0;
      } else {
        pieces.push(chunk.slice(buffer.head, buffer.head + needed));
        buffer.head += needed;
        needed = 0;
      }
    }
    buffer.chunks.splice(0, consumed);
    const taken = pieces.length === 1 ? (pieces[0] as RawRecord[]) : pieces.flat();
    let bytes = 0;
    for (const record of taken) bytes += record.size;
    buffer.records -= taken.length;
    this.#records -= taken.length;
    // An emptied buffer resets to exactly 0, so float sizes cannot leave a residue.
    const byteDelta = buffer.records === 0 ? buffer.bytes : bytes;
    buffer.bytes -= byteDelta;
    this.#bytes -= byteDelta;
    return taken;
  }
}
