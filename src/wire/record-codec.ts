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

  #ensure(extra: number): void {
    if (this.#pos + extra <= this.#buf.length) return;
    let size = this.#buf.length * 2;
    while (size < this.#pos + extra) size *= 2;
    const next = new Uint8Array(size);
    next.set(this.#buf.subarray(0, this.#pos));
    this.#buf = next;
    this.#view = new DataView(next.buffer);
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

  /** The packed records, sized exactly; the writer must not be used afterwards. */
  finish(): ArrayBuffer {
    return (this.#buf.buffer as ArrayBuffer).slice(0, this.#pos);
  }
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
