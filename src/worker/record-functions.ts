/**
 * What every task does to one input record before its role takes over: check its size, decode its
 * value, extract its event time and run the stage's operators (a `joinTable` looks its key up in the
 * task's view of the table). Failures are `RecordFailure`s with the code their dead letter carries.
 */
import { describeError, type ErrorCode } from '../errors.ts';
import { type Format, type JobPlan, type Op, type RecordMeta } from '../job/plan.ts';
import { type TableAccess, type TableView } from '../state/table-store.ts';
import { type CodecRecord } from '../wire/record-codec.ts';
import { type PoisonIndex, type TaskContext } from './task.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Lenient = new TextDecoder();
const encoder = new TextEncoder();

/** One record refused: dead-lettered with `errorCode`, and the batch goes on. */
export class RecordFailure extends Error {
  readonly errorCode: ErrorCode;
  constructor(errorCode: ErrorCode, message: string) {
    super(message);
    this.errorCode = errorCode;
  }
}

/** A poison pill's failure: the record is dead-lettered without running user code again. */
export function poisonFailure(poison: { code: ErrorCode; message: string }): RecordFailure {
  return new RecordFailure(poison.code, poison.message);
}

/**
 * Opens a record for user code: a poison pill is refused without running anything, the worker's
 * progress names the record (a hang or crash in what follows is blamed on it), then the size check
 * and the decoded value. `sub`: the entry of a repartition block, -1 for a record of its own.
 */
export function openRecord(
  ctx: Pick<TaskContext, 'maxRecordBytes' | 'progress'>,
  pills: PoisonIndex,
  offset: number,
  sub: number,
  key: Uint8Array | null,
  value: Uint8Array | null,
): void {
  const pill = pills?.get(`${offset}:${sub}`);
  if (pill) throw poisonFailure(pill);
  ctx.progress.at(offset, sub);
  checkSize(key, value, ctx.maxRecordBytes);
}

/** A record on its way through the operators. */
export interface Element {
  key: string | null;
  value: unknown;
  /** The Kafka key's original bytes while no keyBy changed it (binary keys pass through untouched). */
  rawKey?: Uint8Array | null;
}

export type Runner = (input: Element) => Element[];

export function keyBytes(el: Element): Uint8Array | null {
  if (el.rawKey !== undefined) return el.rawKey;
  return el.key === null ? null : encoder.encode(el.key);
}

export function decodeText(bytes: Uint8Array | null): string | null {
  return bytes === null ? null : utf8Lenient.decode(bytes);
}

function callOp(op: Op, value: unknown): unknown {
  try {
    return op.fn(value);
  } catch (error) {
    throw new RecordFailure('SLUICE_USER_CODE_FAILED', `${op.label} threw ${describeError(error)}`);
  }
}

/** A table without rows: what a join reads when the task was given no tables. */
const NO_ROWS: TableView = { get: () => undefined, missed: () => undefined };

/** What an inner join returns for an element whose key has no row: the element is dropped. */
const DROPPED: unique symbol = Symbol('dropped');

/**
 * A `joinTable`: the row of the lookup key (the `key` option's, else the element's), then `fn(value, row)`;
 * no row drops the element (inner) or gives `fn` `undefined` (left). A null lookup key has no row.
 */
function joinOne(op: Op, view: TableView, el: Element): unknown {
  const join = op.join!;
  let key: string | null = el.key;
  if (join.key) {
    let out: unknown;
    try {
      out = join.key(el.value);
    } catch (error) {
      throw new RecordFailure('SLUICE_USER_CODE_FAILED', `${op.label} key threw ${describeError(error)}`);
    }
    if (out === null || out === undefined) key = null;
    else if (typeof out === 'string' || typeof out === 'number') key = String(out);
    else
      throw new RecordFailure(
        'SLUICE_USER_CODE_FAILED',
        `${op.label} key returned ${typeof out}, not a string or number`,
      );
  }
  const row = key === null ? undefined : view.get(key);
  if (row === undefined) {
    view.missed();
    if (join.kind === 'inner') return DROPPED;
  }
  try {
    return op.fn(el.value, row);
  } catch (error) {
    throw new RecordFailure('SLUICE_USER_CODE_FAILED', `${op.label} threw ${describeError(error)}`);
  }
}

function keyOf(op: Op, out: unknown): string {
  if (typeof out !== 'string' && typeof out !== 'number') {
    throw new RecordFailure('SLUICE_USER_CODE_FAILED', `${op.label} returned ${typeof out}, not a string or number`);
  }
  return String(out);
}

function applyOps(ops: readonly Op[], views: readonly TableView[], input: Element): Element[] {
  let current: Element[] = [input];
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    const next: Element[] = [];
    for (const el of current) {
      if (op.kind === 'joinTable') {
        const out = joinOne(op, views[i]!, el);
        if (out !== DROPPED) next.push({ ...el, value: out });
        continue;
      }
      const out = callOp(op, el.value);
      switch (op.kind) {
        case 'map':
          next.push({ ...el, value: out });
          break;
        case 'filter':
          if (out) next.push(el);
          break;
        case 'flatMap':
          if (out === null || typeof out !== 'object' || !(Symbol.iterator in out)) {
            throw new RecordFailure('SLUICE_USER_CODE_FAILED', `${op.label} did not return an iterable`);
          }
          try {
            for (const v of out as Iterable<unknown>) next.push({ ...el, value: v });
          } catch (error) {
            throw new RecordFailure('SLUICE_USER_CODE_FAILED', `${op.label} iteration threw ${describeError(error)}`);
          }
          break;
        case 'keyBy':
          next.push({ key: keyOf(op, out), value: el.value });
          break;
      }
    }
    current = next;
    if (current.length === 0) break;
  }
  return current;
}

/** applyOps for pipelines without flatMap: one element at most, no arrays per operator. */
function applyOneToOne(ops: readonly Op[], views: readonly TableView[], input: Element): Element[] {
  let el = input;
  for (let i = 0; i < ops.length; i++) {
    const op = ops[i]!;
    if (op.kind === 'joinTable') {
      const out = joinOne(op, views[i]!, el);
      if (out === DROPPED) return [];
      el = { ...el, value: out };
      continue;
    }
    const out = callOp(op, el.value);
    if (op.kind === 'filter') {
      if (!out) return [];
    } else if (op.kind === 'map') el = { ...el, value: out };
    else el = { key: keyOf(op, out), value: el.value };
  }
  return [el];
}

/**
 * How a stage runs its operators, chosen once per task: without flatMap, no arrays per operator. A join
 * reads `tables`' view of its table for the task's `partition` (none: no rows).
 */
export function runnerFor(ops: readonly Op[], tables?: { access: TableAccess | undefined; partition: number }): Runner {
  if (ops.length === 0) return (input) => [input];
  const views = ops.map((op) => (op.join && tables?.access?.view(op.join.table, tables.partition)) || NO_ROWS);
  if (ops.every((op) => op.kind !== 'flatMap')) return (input) => applyOneToOne(ops, views, input);
  return (input) => applyOps(ops, views, input);
}

/** Whether a stage looks the element's key up in a table (so a task must give elements their key). */
export function joinsOnKey(ops: readonly Op[]): boolean {
  return ops.some((op) => op.kind === 'joinTable' && !op.join?.key);
}

export function checkSize(key: Uint8Array | null, value: Uint8Array | null, maxRecordBytes: number): void {
  const size = (key?.length ?? 0) + (value?.length ?? 0);
  if (size > maxRecordBytes) {
    throw new RecordFailure(
      'SLUICE_RECORD_TOO_LARGE',
      `record of ${size} bytes exceeds SLUICE_MAX_RECORD_BYTES (${maxRecordBytes})`,
    );
  }
}

/** A value as the job's format reads it: bytes as a Buffer, text, or parsed JSON. */
export function deserialize(value: Uint8Array | null, format: Format): unknown {
  if (format === 'bytes') return value === null ? null : Buffer.from(value.buffer, value.byteOffset, value.length);
  if (value === null) throw new RecordFailure('SLUICE_DESERIALIZE_FAILED', 'record has no value');
  let text: string;
  try {
    text = utf8.decode(value);
  } catch {
    throw new RecordFailure('SLUICE_DESERIALIZE_FAILED', 'value is not valid UTF-8');
  }
  if (format === 'string') return text;
  try {
    return JSON.parse(text);
  } catch (error) {
    throw new RecordFailure('SLUICE_DESERIALIZE_FAILED', `value is not valid JSON: ${(error as Error).message}`);
  }
}

/** An output value: strings as UTF-8, bytes as they are, `null` as a tombstone, anything else as JSON. */
export function encodeValue(value: unknown): Uint8Array | null {
  if (value === null) return null;
  if (typeof value === 'string') return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  return encoder.encode(toJson(value));
}

export function toJson(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) {
    throw new RecordFailure('SLUICE_USER_CODE_FAILED', `result is not serialisable: ${typeof value}`);
  }
  return json;
}

/** The `meta` argument of an event-time extractor: key, offset and headers decoded on first read. */
class LazyMeta implements RecordMeta {
  readonly topic: string;
  readonly partition: number;
  readonly #record: CodecRecord;
  #headers: Record<string, string> | undefined;

  constructor(topic: string, partition: number, record: CodecRecord) {
    this.topic = topic;
    this.partition = partition;
    this.#record = record;
  }
  get offset(): string {
    return String(this.#record.offset);
  }
  get timestamp(): number {
    return this.#record.timestamp;
  }
  get key(): string | null {
    return decodeText(this.#record.key);
  }
  get headers(): Readonly<Record<string, string>> {
    if (this.#headers === undefined) {
      this.#headers = {};
      for (const [name, v] of this.#record.headers) this.#headers[name] = utf8Lenient.decode(v);
    }
    return this.#headers;
  }
}

export type EventTimeOf = (record: CodecRecord, value: unknown, batchTime: number) => number;

/** How a task reads a record's event time, chosen once: batch time, the Kafka timestamp, or the extractor. */
export function eventTimeFor(plan: JobPlan, topic: string, partition: number): EventTimeOf {
  if (plan.window?.time === 'processing') return (_record, _value, batchTime) => batchTime;
  const extract = plan.eventTime;
  if (!extract) return (record) => record.timestamp;
  // Most extractors take a field of the value and never declare `meta`: theirs decodes only what is read.
  const plain = extract.length >= 2;
  return (record, value) => {
    const lazy = new LazyMeta(topic, partition, record);
    const meta: RecordMeta = plain
      ? {
          topic,
          partition,
          offset: lazy.offset,
          timestamp: lazy.timestamp,
          key: lazy.key,
          headers: lazy.headers,
        }
      : lazy;
    let t: unknown;
    try {
      t = extract(value, meta);
    } catch (error) {
      throw new RecordFailure('SLUICE_USER_CODE_FAILED', `eventTime threw ${describeError(error)}`);
    }
    const ms = t instanceof Date ? t.getTime() : t;
    if (typeof ms !== 'number' || !Number.isFinite(ms)) {
      const shown = typeof t === 'number' ? String(t) : JSON.stringify(t);
      throw new RecordFailure('SLUICE_USER_CODE_FAILED', `eventTime returned ${shown}, not a time`);
    }
    return ms;
  };
}
