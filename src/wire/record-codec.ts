/**
 * Records cross between threads packed into one ArrayBuffer per partition, which is transferred,
 * not copied. Layout per record (little endian):
 *   f64 offset | f64 timestamp | i32 keyLen (-1 = null) | key | i32 valueLen (-1 = null) | value |
 *   u16 headerCount | (u16 nameLen | name utf8 | i32 valueLen | value)*
 * Hand-written because no maintained library packs Kafka records for `postMessage` transfer; it is
 * the hot path between the receiver and the workers.
 */

export interface CodecRecord {
  offset: number;
  timestamp: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  headers: ReadonlyArray<readonly [string, Uint8Array]>;
}

const encoder = new TextEncoder();

/** Appends records to a growable buffer; `finish()` returns an exactly sized ArrayBuffer. */
export class RecordWriter {
  #buf: Uint8Array;
  #view: DataView;
  #pos = 0;
  #count = 0;

  constructor(initialBytes = 64 * 1024) {
    this.#buf = new Uint8Array(Math.max(64, initialBytes));
    this.#view = new DataView(this.#buf.buffer);
  }

  get count(): number {
    return this.#count;
  }

  /**
   * Grows by doubling with `ArrayBuffer.prototype.transfer`: the old memory is released at once (a
   * realloc, often in place), not left to the garbage collector as a copy would be.
   */
  #ensure(extra: number): void {
    if (this.#pos + extra <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + extra) size *= 2;
    this.#buf = new Uint8Array((this.#buf.buffer as ArrayBuffer).transfer(size));
    this.#view = new DataView(this.#buf.buffer);
  }

  #bytes(data: Uint8Array | null): void {
    if (data === null) {
      this.#view.setInt32(this.#pos, -1, true);
      this.#pos += 4;
      return;
    }
    this.#view.setInt32(this.#pos, data.length, true);
    this.#buf.set(data, this.#pos + 4);
    this.#pos += 4 + data.length;
  }

  write(
    offset: number,
    timestamp: number,
    key: Uint8Array | null,
    value: Uint8Array | null,
    headers: ReadonlyArray<readonly [string, Uint8Array]> = [],
  ): void {
    let size = 8 + 8 + 4 + (key?.length ?? 0) + 4 + (value?.length ?? 0) + 2;
    const names = headers.map(([name]) => encoder.encode(name));
    for (let i = 0; i < headers.length; i++) size += 2 + names[i]!.length + 4 + headers[i]![1].length;
    this.#ensure(size);
    this.#view.setFloat64(this.#pos, offset, true);
    this.#view.setFloat64(this.#pos + 8, timestamp, true);
    this.#pos += 16;
    this.#bytes(key);
    this.#bytes(value);
    this.#view.setUint16(this.#pos, headers.length, true);
    this.#pos += 2;
    for (let i = 0; i < headers.length; i++) {
      const name = names[i]!;
      this.#view.setUint16(this.#pos, name.length, true);
      this.#buf.set(name, this.#pos + 2);
      this.#pos += 2 + name.length;
      this.#bytes(headers[i]![1]);
    }
    this.#count++;
  }

  /** The packed records, sized exactly (the spare room released, not copied); the writer is done. */
  finish(): ArrayBuffer {
    return (this.#buf.buffer as ArrayBuffer).transfer(this.#pos);
  }
}

/**
 * A fetched message as kafkajs decodes it (structural: the wire layer does not depend on kafkajs).
 * Header values are bytes or text, repeated names as arrays.
 */
export interface FetchedMessage {
  readonly offset: string;
  readonly timestamp: string;
  readonly key: Buffer | null;
  readonly value: Buffer | null;
  readonly headers?: Readonly<Record<string, Buffer | string | ReadonlyArray<Buffer | string> | undefined>>;
}

/** Records packed once, as fetched: the codec layout, and where each record starts. */
export interface PackedRecords {
  /** The records, back to back; its own ArrayBuffer, exactly sized. */
  readonly bytes: Uint8Array;
  /** `starts[i]` is where record i begins; `starts[count]` is the end (`count + 1` entries). */
  readonly starts: Uint32Array;
  /** Key, value and header bytes (what Kafka carried), without the layout's framing. */
  readonly payloadBytes: number;
}

/** Framing bytes per record in the packed layout (offset, timestamp, two lengths, header count). */
export const RECORD_FRAME_BYTES = 8 + 8 + 4 + 4 + 2;

/** The header values of one name, as kafkajs gives them (one value or several). */
function headerValues(value: Buffer | string | ReadonlyArray<Buffer | string>): ReadonlyArray<Buffer | string> {
  return typeof value === 'string' || Buffer.isBuffer(value) ? [value] : value;
}

const byteLength = (v: Buffer | string): number => (typeof v === 'string' ? Buffer.byteLength(v) : v.length);

/**
 * Packs fetched messages in one pass over their sizes and one copy of their bytes, into an exactly
 * sized buffer, so the fetch's message objects (and the response buffers their bytes are views into)
 * can go at once. The result's bytes are what `readRecords` reads.
 */
export function packMessages(messages: readonly FetchedMessage[]): PackedRecords {
  const starts = new Uint32Array(messages.length + 1);
  let total = 0;
  let payloadBytes = 0;
  for (let i = 0; i < messages.length; i++) {
    const m = messages[i]!;
    starts[i] = total;
    let payload = (m.key?.length ?? 0) + (m.value?.length ?? 0);
    let frame = RECORD_FRAME_BYTES;
    if (m.headers) {
      for (const name in m.headers) {
        const value = m.headers[name];
        if (value === undefined) continue;
        const nameBytes = Buffer.byteLength(name);
        for (const v of headerValues(value)) {
          frame += 2 + 4;
          payload += nameBytes + byteLength(v);
        }
      }
    }
    total += frame + payload;
    payloadBytes += payload;
  }
  starts[messages.length] = total;
  const out = Buffer.allocUnsafeSlow(total);
  let pos = 0;
  const bytes = (data: Buffer | string | null): void => {
    if (data === null) {
      out.writeInt32LE(-1, pos);
      pos += 4;
      return;
    }
    const len = typeof data === 'string' ? out.write(data, pos + 4) : (out.set(data, pos + 4), data.length);
    out.writeInt32LE(len, pos);
    pos += 4 + len;
  };
  for (const m of messages) {
    out.writeDoubleLE(Number(m.offset), pos);
    out.writeDoubleLE(Number(m.timestamp), pos + 8);
    pos += 16;
    bytes(m.key);
    bytes(m.value);
    const countAt = pos;
    pos += 2;
    let headerCount = 0;
    if (m.headers) {
      for (const name in m.headers) {
        const value = m.headers[name];
        if (value === undefined) continue;
        for (const v of headerValues(value)) {
          const len = out.write(name, pos + 2);
          out.writeUInt16LE(len, pos);
          pos += 2 + len;
          bytes(v);
          headerCount++;
        }
      }
    }
    out.writeUInt16LE(headerCount, countAt);
  }
  return { bytes: new Uint8Array(out.buffer, out.byteOffset, total), starts, payloadBytes };
}

/** The offset of the packed record that begins at `start`. */
export function offsetAt(bytes: Uint8Array, start: number): number {
  return new DataView(bytes.buffer, bytes.byteOffset + start, 8).getFloat64(0, true);
}

const decoder = new TextDecoder();

/** Iterates the records of a packed buffer. Keys, values and header values are views, not copies. */
export function* readRecords(buffer: ArrayBuffer): Generator<CodecRecord> {
  const view = new DataView(buffer);
  const bytes = new Uint8Array(buffer);
  let pos = 0;
  const readBytes = (): Uint8Array | null => {
    const len = view.getInt32(pos, true);
    pos += 4;
    if (len < 0) return null;
    const out = bytes.subarray(pos, pos + len);
    pos += len;
    return out;
  };
  while (pos < buffer.byteLength) {
    const offset = view.getFloat64(pos, true);
    const timestamp = view.getFloat64(pos + 8, true);
    pos += 16;
    const key = readBytes();
    const value = readBytes();
    const headerCount = view.getUint16(pos, true);
    pos += 2;
    const headers: Array<[string, Uint8Array]> = [];
    for (let i = 0; i < headerCount; i++) {
      const nameLen = view.getUint16(pos, true);
      const name = decoder.decode(bytes.subarray(pos + 2, pos + 2 + nameLen));
      pos += 2 + nameLen;
      headers.push([name, readBytes() ?? new Uint8Array(0)]);
    }
    yield { offset, timestamp, key, value, headers };
  }
}
