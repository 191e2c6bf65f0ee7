/**
 * The records of `sluice/testing`: what a test sends (encoded here into the fetched-message shape the
 * receiver packs, so the tasks read the same bytes as in the service) and what it reads back —
 * outputs and dead letters decoded from the bytes the tasks wrote, with Sluice's dead-letter headers
 * read into fields. Partitions are chosen as Kafka's default partitioner chooses them.
 */
import { type ErrorCode } from '../errors.ts';
import { type Format } from '../job/plan.ts';
import { type DeadLetter } from '../pool/protocol.ts';
import { DLQ_HEADERS } from '../wire/headers.ts';
import { type FetchedMessage } from '../wire/record-codec.ts';
import { partitionFor } from '../wire/repartition-block.ts';

/** A record sent to one of the job's input topics. */
export interface TestRecord {
  /** The input topic. @defaultValue the job's input topic, when it has only one */
  topic?: string;
  /**
   * The input partition. @defaultValue Kafka's default partitioner: murmur2 of the key over the
   * topic's partitions; without a key, round robin from partition 0
   */
  partition?: number;
  /** The Kafka key: text (written as UTF-8) or bytes. @defaultValue `null` */
  key?: string | Uint8Array | null;
  /**
   * The value, as a Kafka producer would send it: a string as its UTF-8 bytes (so `'{"a":'` is a
   * malformed JSON record), a `Uint8Array` as it is, `null` as no value. Anything else is written as
   * JSON, for a `json` job only.
   */
  value: unknown;
  /** The Kafka timestamp, epoch ms. @defaultValue the driver's clock */
  timestamp?: number | Date;
  /** Kafka headers. */
  headers?: Readonly<Record<string, string | Uint8Array>>;
}

/** Where a sent record landed. */
export interface SentRecord {
  topic: string;
  partition: number;
  offset: number;
}

/** A record the job published (to its output topic, or its dead-letter topic). */
export interface TestOutput {
  topic: string;
  /** The partition Kafka's default partitioner gives the key (round robin for a null key). */
  partition: number;
  /** Offset in that partition, from 0. */
  offset: number;
  key: string | null;
  /**
   * The value decoded: parsed when it is valid JSON (every windowed result is), else its UTF-8 text;
   * `null` for no value. `bytes` holds what was written.
   */
  value: unknown;
  bytes: Uint8Array | null;
  /** Header values as UTF-8 text. */
  headers: Record<string, string>;
  /** The record's timestamp: the input record's for a stateless job, else the publish time (the clock). */
  timestamp: number;
}

/** A dead letter: the refused record (key, value, headers as it was) and why, from its headers. */
export interface TestDeadLetter extends TestOutput {
  /** `sluice-error-code`: `SLUICE_DESERIALIZE_FAILED`, `SLUICE_USER_CODE_FAILED`, `SLUICE_LATE_RECORD`, … */
  code: ErrorCode;
  /** `sluice-error-message`. */
  message: string;
  /** The user's input record it came from (`sluice-source-*`); undefined for a failed window. */
  source: { topic: string; partition: number; offset: number; timestamp: number | undefined } | undefined;
  /** A late record's event time (`sluice-event-time`). */
  eventTime: number | undefined;
  /** A window whose result failed (`sluice-window-start`/`-end`). */
  window: { start: number; end: number } | undefined;
}

const decoder = new TextDecoder();

const toBuffer = (view: Uint8Array): Buffer => Buffer.from(view.buffer, view.byteOffset, view.byteLength);
const isBytes = (value: unknown): value is Uint8Array => value instanceof Uint8Array;

/** A value's bytes as the job's input format reads them. */
export function encodeValue(value: unknown, format: Format): Buffer | null {
  if (value === null) return null;
  if (typeof value === 'string') return Buffer.from(value, 'utf8');
  if (isBytes(value)) return toBuffer(value);
  if (format !== 'json') {
    throw new TypeError(`a ${format} job reads a string or a Uint8Array value (got ${typeof value})`);
  }
  const json = JSON.stringify(value);
  if (json === undefined) throw new TypeError(`the value cannot be written as JSON (got ${typeof value})`);
  return Buffer.from(json, 'utf8');
}

export function encodeKey(key: string | Uint8Array | null | undefined): Buffer | null {
  if (key === undefined || key === null) return null;
  if (typeof key === 'string') return Buffer.from(key, 'utf8');
  if (isBytes(key)) return toBuffer(key);
  throw new TypeError(`a key is a string, a Uint8Array or null (got ${typeof key})`);
}

/** A sent record in the shape the receiver gets from kafkajs, ready for `packMessages`. */
export function fetchedMessage(record: TestRecord, format: Format, offset: number, now: number): FetchedMessage {
  const timestamp = record.timestamp instanceof Date ? record.timestamp.getTime() : (record.timestamp ?? now);
  if (!Number.isFinite(timestamp)) throw new RangeError(`a timestamp is a finite number of ms (got ${timestamp})`);
  const headers: Record<string, Buffer | string> = {};
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    headers[name] = isBytes(value) ? toBuffer(value) : String(value);
  }
  return {
    offset: String(offset),
    timestamp: String(Math.trunc(timestamp)),
    key: encodeKey(record.key),
    value: encodeValue(record.value, format),
    headers,
  };
}

/** Kafka's default partitioner: murmur2 of the key, or round robin (per topic, from 0) without one. */
export class DefaultPartitioner {
  readonly #counters = new Map<string, number>();

  partition(topic: string, key: Uint8Array | null, partitions: number): number {
    if (key !== null) return partitionFor(key, partitions);
    const next = this.#counters.get(topic) ?? 0;
    this.#counters.set(topic, next + 1);
    return next % partitions;
  }
}

/** A value as tests read it: parsed JSON, else text; null for none. */
export function decodeValue(bytes: Uint8Array | null): unknown {
  if (bytes === null) return null;
  const text = decoder.decode(bytes);
  try {
    return JSON.parse(text) as unknown;
  } catch {
    return text;
  }
}

export function decodeText(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : decoder.decode(bytes);
}

/** Header values as text; a repeated name keeps its last value. */
export function decodeHeaders(headers: Iterable<readonly [string, string | Uint8Array]>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [name, value] of headers) out[name] = typeof value === 'string' ? value : decoder.decode(value);
  return out;
}

const numberOf = (text: string | undefined): number | undefined =>
  text === undefined || text === '' ? undefined : Number(text);

/** A dead letter as the dead-letter topic holds it, its `sluice-*` headers read into fields. */
export function decodeDeadLetter(
  letter: DeadLetter,
  at: { topic: string; partition: number; offset: number },
  now: number,
): TestDeadLetter {
  const headers = decodeHeaders(letter.headers);
  const sourceTopic = headers[DLQ_HEADERS.sourceTopic];
  const start = numberOf(headers[DLQ_HEADERS.windowStart]);
  const end = numberOf(headers[DLQ_HEADERS.windowEnd]);
  return {
    ...at,
    key: decodeText(letter.key),
    value: decodeValue(letter.value),
    bytes: letter.value,
    headers,
    // The sink sets no timestamp on a dead letter: the producer's (publish time).
    timestamp: now,
    code: headers[DLQ_HEADERS.errorCode] as ErrorCode,
    message: headers[DLQ_HEADERS.errorMessage] ?? '',
    source:
      sourceTopic === undefined
        ? undefined
        : {
            topic: sourceTopic,
            partition: Number(headers[DLQ_HEADERS.sourcePartition]),
            offset: Number(headers[DLQ_HEADERS.sourceOffset]),
            timestamp: numberOf(headers[DLQ_HEADERS.sourceTimestamp]),
          },
    eventTime: numberOf(headers[DLQ_HEADERS.eventTime]),
    window: start !== undefined && end !== undefined ? { start, end } : undefined,
  };
}
