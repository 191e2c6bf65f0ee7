/**
 * Runs one partition's records through the job, inside a worker thread: deserialize, extract event
 * time, apply the pipeline, then either write to the repartition topic (stage 1 of a re-keyed job),
 * add to the partition's windows, or emit (stateless). Bad records become dead letters and the batch
 * goes on. It owns the partition's state (windows, stream time, de-duplication marks) and computes
 * the offset that may be committed once the batch's writes are acknowledged.
 */
import { describeError, type ErrorCode } from '../errors.ts';
import { type JobPlan, type Op, type RecordMeta } from '../job/plan.ts';
import { decodeCheckpoint, encodeCheckpoint } from '../state/checkpoint.ts';
import { WindowStore, type WindowResult } from '../windows/window-store.ts';
import {
  type DeadLetter,
  type PartitionResult,
  type PartitionStart,
  type PartitionStats,
  type SourceWatermark,
  IDLE_HEADER,
  POSITION_HEADER,
  SOURCE_HEADER,
  WATERMARK_HEADER,
} from './protocol.ts';
import { readRecords, RecordWriter, type CodecRecord } from './record-codec.ts';
import {
  BLOCK_HEADER,
  BlockFormatError,
  BlockWriter,
  readBlock,
  type BlockEntry,
  type ValueEncoding,
} from './repartition-block.ts';

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Lenient = new TextDecoder();
const encoder = new TextEncoder();
const EMPTY = new Uint8Array(0);

export { SOURCE_HEADER, POSITION_HEADER, WATERMARK_HEADER, IDLE_HEADER };

/** Headers Sluice writes on dead letters (replaced, not copied, when a dead letter is re-driven). */
const OWN_DLQ_HEADER = /^sluice-(error-|job$|source-|event-time$|window-)/;

/** Timestamp of an output record that the producer sets (publish time). */
export const NO_TIMESTAMP = -1;

export interface ProcessorOptions {
  plan: JobPlan;
  maxRecordBytes: number;
  /** Every input partition (`topic:partition`): the upstream sources of a repartitioned stage. */
  sources: readonly string[];
  /** Partitions of the repartition topic (stage 1 of a re-keyed job chooses them). */
  repartitionPartitions: number;
}

class RecordFailure extends Error {
  readonly errorCode: ErrorCode;
  constructor(errorCode: ErrorCode, message: string) {
    super(message);
    this.errorCode = errorCode;
  }
}

interface Element {
  key: string | null;
  value: unknown;
  /** The Kafka key's original bytes while no keyBy changed it (binary keys pass through untouched). */
  rawKey?: Uint8Array | null;
}

function keyBytes(el: Element): Uint8Array | null {
  if (el.rawKey !== undefined) return el.rawKey;
  return el.key === null ? null : encoder.encode(el.key);
}

function applyOps(ops: readonly Op[], input: Element): Element[] {
  let current: Element[] = [input];
  for (const op of ops) {
    const next: Element[] = [];
    for (const el of current) {
      let out: unknown;
      try {
        out = op.fn(el.value);
      } catch (error) {
        throw new RecordFailure('SLUICE_USER_CODE_FAILED', `${op.label} threw ${describeError(error)}`);
      }
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
          if (typeof out !== 'string' && typeof out !== 'number') {
            throw new RecordFailure(
              'SLUICE_USER_CODE_FAILED',
              `${op.label} returned ${typeof out}, not a string or number`,
            );
          }
          next.push({ key: String(out), value: el.value });
          break;
      }
    }
    current = next;
    if (current.length === 0) break;
  }
  return current;
}

type Runner = (input: Element) => Element[];

/** How a stage runs its operators, chosen once: without flatMap, no arrays per operator. */
function runnerFor(ops: readonly Op[]): Runner {
  if (ops.length === 0) return (input) => [input];
  if (ops.every((op) => op.kind !== 'flatMap')) return (input) => applyOneToOne(ops, input);
  return (input) => applyOps(ops, input);
}

/** applyOps for pipelines without flatMap: one element at most, no arrays per operator. */
function applyOneToOne(ops: readonly Op[], input: Element): Element[] {
  let el = input;
  for (const op of ops) {
    let out: unknown;
    try {
      out = op.fn(el.value);
    } catch (error) {
      throw new RecordFailure('SLUICE_USER_CODE_FAILED', `${op.label} threw ${describeError(error)}`);
    }
    if (op.kind === 'filter') {
      if (!out) return [];
    } else if (op.kind === 'map') {
      el = { ...el, value: out };
    } else {
      if (typeof out !== 'string' && typeof out !== 'number') {
        throw new RecordFailure(
          'SLUICE_USER_CODE_FAILED',
          `${op.label} returned ${typeof out}, not a string or number`,
        );
      }
      el = { key: String(out), value: el.value };
    }
  }
  return [el];
}

/** An output value: strings as UTF-8, bytes as they are, `null` as a tombstone, anything else as JSON. */
function encodeValue(value: unknown): Uint8Array | null {
  if (value === null) return null;
  if (typeof value === 'string') return encoder.encode(value);
  if (value instanceof Uint8Array) return value;
  return encoder.encode(toJson(value));
}

function toJson(value: unknown): string {
  const json = JSON.stringify(value);
  if (json === undefined) {
    throw new RecordFailure('SLUICE_USER_CODE_FAILED', `result is not serialisable: ${typeof value}`);
  }
  return json;
}

/**
 * How a value travels through the repartition topic, so that stage 2 reads back exactly what stage 1
 * had: a string stays a string (not parsed as JSON), bytes stay bytes, null stays null. Blocks carry
 * it per entry; a record of the per-record format (written before blocks) in a `sluice-enc` header.
 */
const ENCODING_HEADER = 'sluice-enc';
const ENCODINGS: Record<ValueEncoding, Uint8Array> = {
  json: encoder.encode('json'),
  string: encoder.encode('string'),
  bytes: encoder.encode('bytes'),
  null: encoder.encode('null'),
};

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
    return this.#record.key === null ? null : utf8Lenient.decode(this.#record.key);
  }

  get headers(): Readonly<Record<string, string>> {
    if (this.#headers === undefined) {
      this.#headers = {};
      for (const [name, v] of this.#record.headers) this.#headers[name] = utf8Lenient.decode(v);
    }
    return this.#headers;
  }
}

/**
 * A block entry as a record of its own, for its dead letter: the block's offset, the event time as
 * timestamp, and the upstream position in `sluice-src` / `sluice-pos` (as a per-record repartition
 * record had them), so a dead letter names the input record it came from.
 */
function entryRecord(block: CodecRecord, source: string | undefined, entry: BlockEntry): CodecRecord {
  const headers: Array<[string, Uint8Array]> = [];
  if (source !== undefined) headers.push([SOURCE_HEADER, encoder.encode(source)]);
  headers.push([POSITION_HEADER, encoder.encode(`${entry.offset}:${entry.sequence}`)]);
  headers.push([ENCODING_HEADER, ENCODINGS[entry.encoding]]);
  return { offset: block.offset, timestamp: entry.eventTime, key: entry.key, value: entry.value, headers };
}

function comparePosition(a: readonly [number, number], b: readonly [number, number]): number {
  return a[0] !== b[0] ? a[0] - b[0] : a[1] - b[1];
}

interface Upstream {
  source?: string;
  position?: [number, number];
  watermark?: number | null;
  idle: boolean;
  encoding: ValueEncoding;
  block: boolean;
}

export class PartitionProcessor {
  readonly topic: string;
  readonly partition: number;
  readonly #plan: JobPlan;
  readonly #maxRecordBytes: number;
  readonly #stage: 1 | 2;
  readonly #windows: WindowStore | undefined;
  /** Records below this offset were processed before the last restart: rebuild state only. */
  readonly #replayUntil: number;
  /** Next offset after the last record processed. */
  #end: number;
  readonly #dedupe: Map<string, readonly [number, number]>;
  readonly #replayDedupe = new Map<string, readonly [number, number]>();
  #lastCommit: { offset: number; metadata: string | null } | undefined;
  /** Stage 2: what each upstream partition last reported; stream time is the smallest. */
  readonly #sources: Map<string, { streamTime: number; idle: boolean }>;
  readonly #expectedSources: readonly string[];
  /** Stage 1 of a windowed re-keyed job: this partition's stream time, reported downstream. */
  readonly #reportsWatermark: boolean;
  readonly #repartitionPartitions: number;
  /**
   * Stage 1 has only filter and keyBy on JSON input: a value that reaches the repartition topic is the
   * parsed input value itself (filter and keyBy receive it read-only), so its input bytes are written.
   */
  readonly #passThrough: boolean;
  /** Stage 2 is a bare count(): nothing reads the values. */
  readonly #skipStage2Values: boolean;
  readonly #runStage1: Runner;
  readonly #runStage2: Runner;
  /** Stage 1 has a keyBy: the input's key is never read as text. */
  readonly #keyReplaced: boolean;
  #sourceStreamTime = -Infinity;
  /** Last time this partition had a record or was behind (records waiting): the idle clock. */
  #lastBusyWall: number = Date.now();
  #lastReported: SourceWatermark | undefined;

  constructor(options: ProcessorOptions, topic: string, partition: number, start: PartitionStart) {
    this.topic = topic;
    this.partition = partition;
    this.#plan = options.plan;
    this.#maxRecordBytes = options.maxRecordBytes;
    this.#stage = options.plan.repartitionTopic === topic ? 2 : 1;
    const checkpoint = decodeCheckpoint(start.metadata, options.sources);
    this.#end = start.committedOffset ?? 0;
    this.#replayUntil = checkpoint && start.committedOffset !== null ? checkpoint.end : 0;
    this.#dedupe = checkpoint?.dedupe ?? new Map();
    this.#sources = checkpoint?.sources ?? new Map();
    this.#expectedSources = options.sources;
    const window = options.plan.window;
    const windowed = window !== undefined && (this.#stage === 2 || options.plan.repartitionTopic === undefined);
    this.#repartitionPartitions = options.repartitionPartitions;
    this.#keyReplaced = options.plan.stage1.some((op) => op.kind === 'keyBy');
    this.#skipStage2Values = options.plan.stage2.length === 0 && options.plan.window?.aggregator.ignoresValue === true;
    this.#runStage1 = runnerFor(options.plan.stage1);
    this.#runStage2 = runnerFor(options.plan.stage2);
    this.#passThrough =
      options.plan.format === 'json' && options.plan.stage1.every((op) => op.kind === 'filter' || op.kind === 'keyBy');
    this.#reportsWatermark = window !== undefined && this.#stage === 1 && options.plan.repartitionTopic !== undefined;
    this.#windows = windowed
      ? new WindowStore({
          assigner: window.assigner,
          latenessMs: window.latenessMs,
          emit: window.emit,
          aggregator: window.aggregator,
          idleTimeoutMs: window.idleTimeoutMs,
          ...(checkpoint?.streamTime != null ? { initialStreamTime: checkpoint.streamTime } : {}),
          externalClock: this.#stage === 2,
        })
      : undefined;
  }

  get openWindows(): number {
    return this.#windows?.openWindows ?? 0;
  }

  /**
   * Processes one batch of this partition's records. `caughtUp`: nothing else is waiting for the
   * partition (see PartitionWork); idleness is only measured while caught up.
   */
  process(records: ArrayBuffer, batchTime: number, wallNow: number, caughtUp = true): PartitionResult {
    if (!caughtUp) this.#lastBusyWall = wallNow;
    const plan = this.#plan;
    const outputs = new RecordWriter();
    const repartition =
      plan.repartitionTopic !== undefined && this.#stage === 1
        ? new BlockWriter(this.#repartitionPartitions)
        : undefined;
    const dead: DeadLetter[] = [];
    const stats: PartitionStats = {
      recordsIn: 0,
      recordsOut: 0,
      late: 0,
      dead: 0,
      duplicates: 0,
      replayed: 0,
      openWindows: 0,
      streamTime: null,
    };
    const processingTime = plan.window?.time === 'processing';

    for (const record of readRecords(records)) {
      stats.recordsIn++;
      const replay = record.offset < this.#replayUntil;
      if (replay) stats.replayed++;
      this.#end = Math.max(this.#end, record.offset + 1);
      try {
        if (this.#stage === 2) {
          const upstream = this.#upstream(record);
          if (upstream.watermark !== undefined || upstream.block) {
            // A control record or a block, not a record of its own: kept out of the record statistics.
            stats.recordsIn--;
            if (replay) stats.replayed--;
            if (upstream.block) {
              this.#processBlock(record, upstream.source, replay, processingTime ? batchTime : undefined, wallNow, {
                dead,
                stats,
              });
            } else this.#noteSource(upstream.source!, upstream.watermark!, upstream.idle, wallNow);
            continue;
          }
          // A record of the per-record format, written before blocks.
          this.#checkSize(record.key, record.value);
          if (this.#isDuplicate(upstream.source, upstream.position, replay)) {
            stats.duplicates++;
            continue;
          }
          const value = upstream.encoding === 'null' ? null : this.#deserialize(record, upstream.encoding);
          const eventTime = processingTime ? batchTime : record.timestamp;
          const key = record.key === null ? null : utf8Lenient.decode(record.key);
          for (const el of this.#runStage2({ key, value })) {
            if (this.#toWindow(el, eventTime, record.offset, wallNow, replay, stats)) {
              dead.push(this.#lateLetter(record, eventTime));
            }
          }
          if (upstream.source !== undefined) this.#noteSource(upstream.source, eventTime, false, wallNow);
          continue;
        }
        this.#checkSize(record.key, record.value);
        const value = this.#deserialize(record, plan.format);
        const eventTime = processingTime ? batchTime : this.#eventTime(record, value);
        if (this.#reportsWatermark) {
          this.#lastBusyWall = wallNow;
          if (eventTime > this.#sourceStreamTime) this.#sourceStreamTime = eventTime;
        }
        // The Kafka key as text only when it stays the key (a keyBy replaces it).
        const key = record.key === null || this.#keyReplaced ? null : utf8Lenient.decode(record.key);
        const elements = this.#runStage1({ key, value, rawKey: record.key });
        if (repartition) {
          for (let seq = 0; seq < elements.length; seq++) {
            const el = elements[seq]!;
            const v = el.value;
            const k = el.rawKey !== undefined ? (el.rawKey ?? EMPTY) : (el.key ?? '');
            if (v === value && v !== null && this.#passThrough && record.value !== null) {
              // The value the input record held, unchanged: its bytes, not a re-serialization.
              repartition.add(k, record.offset, seq, eventTime, 'json', record.value);
            } else if (v === null) repartition.add(k, record.offset, seq, eventTime, 'null', null);
            else if (typeof v === 'string') repartition.add(k, record.offset, seq, eventTime, 'string', v);
            else if (v instanceof Uint8Array) repartition.add(k, record.offset, seq, eventTime, 'bytes', v);
            else repartition.add(k, record.offset, seq, eventTime, 'json', toJson(v));
          }
        } else if (this.#windows) {
          for (const el of elements) {
            if (this.#toWindow(el, eventTime, record.offset, wallNow, replay, stats)) {
              dead.push(this.#lateLetter(record, eventTime));
            }
          }
        } else {
          for (const el of elements) {
            // The input's Kafka timestamp, not the extracted event time: an old event time would make
            // the output's time-based retention delete the record at once.
            outputs.write(0, record.timestamp, keyBytes(el), encodeValue(el.value));
          }
        }
      } catch (error) {
        if (replay) continue; // dead-lettered before the restart
        dead.push(this.#failureLetter(record, error));
      }
    }

    if (this.#windows) {
      // A re-keyed stage follows its upstream partitions; its own idle clock runs only when they all are idle.
      if (caughtUp && (this.#stage === 1 || this.#allSourcesIdle())) this.#windows.advanceIdle(wallNow);
      else if (!caughtUp) this.#windows.holdIdle(wallNow);
      for (const result of this.#windows.collect()) {
        try {
          if (result.error !== undefined) throw result.error;
          // No timestamp: the producer's (publish time). The window's end is in the value; an event-time
          // timestamp would make the output's time-based retention delete historical results at once.
          outputs.write(
            0,
            NO_TIMESTAMP,
            result.key === null ? null : encoder.encode(result.key),
            this.#resultValue(result),
          );
        } catch (error) {
          dead.push({
            key: result.key === null ? null : encoder.encode(result.key),
            value: null,
            headers: [
              ...this.#errorHeaders('SLUICE_USER_CODE_FAILED', describeError(error)),
              ['sluice-window-start', String(result.windowStart)],
              ['sluice-window-end', String(result.windowEnd)],
            ],
          });
        }
      }
      stats.openWindows = this.#windows.openWindows;
      const st = this.#windows.streamTime;
      stats.streamTime = Number.isFinite(st) ? st : null;
    }
    if (this.#reportsWatermark && Number.isFinite(this.#sourceStreamTime)) stats.streamTime = this.#sourceStreamTime;
    stats.recordsOut = outputs.count;
    stats.dead = dead.length;

    return {
      topic: this.topic,
      partition: this.partition,
      outputs: outputs.finish(),
      outputCount: outputs.count,
      repartition: repartition?.finish() ?? [],
      repartitionCount: repartition?.count ?? 0,
      dead,
      watermark: this.#reportsWatermark ? this.#watermarkReport(wallNow) : null,
      commit: this.#commit(),
      stats,
    };
  }

  /** Stage 1: this partition's stream time for the aggregating stage, when it changed. */
  #watermarkReport(wallNow: number): SourceWatermark | null {
    const idleTimeout = this.#plan.window?.idleTimeoutMs ?? 0;
    const idle = idleTimeout > 0 && wallNow - this.#lastBusyWall >= idleTimeout;
    const report: SourceWatermark = {
      streamTime: Number.isFinite(this.#sourceStreamTime) ? this.#sourceStreamTime : null,
      idle,
    };
    const last = this.#lastReported;
    if (last && last.streamTime === report.streamTime && last.idle === report.idle) return null;
    this.#lastReported = report;
    return report;
  }

  /**
   * Stage 2: an upstream partition reached `streamTime`. The stage's stream time is the smallest
   * stream time of the upstream partitions that are not idle (all idle: the largest), like a
   * watermark: one upstream partition read ahead of the others (a backlog read partition by
   * partition, a skewed key space) does not make the others' records late.
   */
  #allSourcesIdle(): boolean {
    return this.#expectedSources.every((s) => this.#sources.get(s)?.idle === true);
  }

  #noteSource(source: string, streamTime: number | null, idle: boolean, wallNow: number): void {
    const entry = this.#sources.get(source);
    const t = Math.max(entry?.streamTime ?? -Infinity, streamTime ?? -Infinity);
    this.#sources.set(source, { streamTime: t, idle });
    let min = Infinity;
    let max = -Infinity;
    let active = 0;
    for (const s of this.#expectedSources) {
      const e = this.#sources.get(s);
      const st = e?.streamTime ?? -Infinity;
      if (st > max) max = st;
      if (e?.idle) continue;
      active++;
      if (st < min) min = st;
    }
    const watermark = active > 0 ? min : max;
    if (Number.isFinite(watermark)) this.#windows?.advanceTo(watermark, wallNow);
  }

  #upstream(record: CodecRecord): Upstream {
    const out: Upstream = { idle: false, encoding: 'json', block: false };
    for (const [name, value] of record.headers) {
      if (name === SOURCE_HEADER) out.source = utf8Lenient.decode(value);
      else if (name === POSITION_HEADER) {
        const [o, s] = utf8Lenient.decode(value).split(':');
        out.position = [Number(o), Number(s)];
      } else if (name === WATERMARK_HEADER) {
        const text = utf8Lenient.decode(value);
        out.watermark = text === '' ? null : Number(text);
      } else if (name === IDLE_HEADER) out.idle = utf8Lenient.decode(value) === '1';
      else if (name === BLOCK_HEADER) out.block = true;
      else if (name === ENCODING_HEADER) {
        const encoding = utf8Lenient.decode(value);
        if (encoding === 'string' || encoding === 'bytes' || encoding === 'null') out.encoding = encoding;
      }
    }
    if (out.watermark !== undefined && out.source === undefined) delete out.watermark;
    return out;
  }

  #commit(): { offset: number; metadata: string | null } | null {
    let next: { offset: number; metadata: string | null };
    if (this.#windows) {
      const end = Math.max(this.#end, this.#replayUntil);
      const minOpen = this.#windows.minOpenOffset();
      const st = this.#windows.streamTime;
      next = {
        offset: Math.min(minOpen ?? this.#end, this.#end),
        metadata: encodeCheckpoint(
          {
            end,
            streamTime: Number.isFinite(st) ? st : null,
            dedupe: this.#dedupe,
            sources: this.#sources,
          },
          this.#expectedSources,
        ),
      };
    } else {
      next = { offset: this.#end, metadata: null };
    }
    if (this.#lastCommit && this.#lastCommit.offset === next.offset && this.#lastCommit.metadata === next.metadata)
      return null;
    this.#lastCommit = next;
    return next;
  }

  #isDuplicate(source: string | undefined, position: [number, number] | undefined, replay: boolean): boolean {
    if (source === undefined || position === undefined) return false;
    const marks = replay ? this.#replayDedupe : this.#dedupe;
    const seen = marks.get(source);
    if (seen && comparePosition(position, seen) <= 0) return true;
    marks.set(source, position);
    return false;
  }

  #deserialize(record: CodecRecord, format: JobPlan['format']): unknown {
    if (format === 'bytes')
      return record.value === null
        ? null
        : Buffer.from(record.value.buffer, record.value.byteOffset, record.value.length);
    if (record.value === null) throw new RecordFailure('SLUICE_DESERIALIZE_FAILED', 'record has no value');
    let text: string;
    try {
      text = utf8.decode(record.value);
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

  #eventTime(record: CodecRecord, value: unknown): number {
    const extract = this.#plan.eventTime;
    if (!extract) return record.timestamp;
    // Most extractors take a field of the value and never declare `meta`: theirs decodes only what is read.
    const lazy = new LazyMeta(this.topic, this.partition, record);
    const meta: RecordMeta =
      extract.length >= 2
        ? {
            topic: lazy.topic,
            partition: lazy.partition,
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
  }

  /** Adds an element to its windows; true when it is late and must be dead-lettered. */
  #toWindow(
    el: Element,
    eventTime: number,
    offset: number,
    wallNow: number,
    replay: boolean,
    stats: PartitionStats,
  ): boolean {
    let outcome: 'added' | 'late';
    try {
      outcome = this.#windows!.add(el.key, eventTime, el.value, offset, wallNow, replay);
    } catch (error) {
      throw new RecordFailure('SLUICE_USER_CODE_FAILED', `aggregate threw ${describeError(error)}`);
    }
    if (outcome !== 'late' || replay) return false;
    stats.late++;
    return true;
  }

  #lateLetter(record: CodecRecord, eventTime: number): DeadLetter {
    return this.#deadLetter(
      record,
      'SLUICE_LATE_RECORD',
      `event time ${eventTime} is behind stream time ${this.#windows!.streamTime} by more than the allowed lateness`,
      [['sluice-event-time', String(eventTime)]],
    );
  }

  #failureLetter(record: CodecRecord, error: unknown): DeadLetter {
    if (error instanceof BlockFormatError) {
      return this.#deadLetter(record, 'SLUICE_DESERIALIZE_FAILED', `repartition block: ${error.message}`);
    }
    const code = error instanceof RecordFailure ? error.errorCode : 'SLUICE_USER_CODE_FAILED';
    return this.#deadLetter(record, code, error instanceof RecordFailure ? error.message : describeError(error));
  }

  #checkSize(key: Uint8Array | null, value: Uint8Array | null): void {
    const size = (key?.length ?? 0) + (value?.length ?? 0);
    if (size > this.#maxRecordBytes) {
      throw new RecordFailure(
        'SLUICE_RECORD_TOO_LARGE',
        `record of ${size} bytes exceeds SLUICE_MAX_RECORD_BYTES (${this.#maxRecordBytes})`,
      );
    }
  }

  /**
   * Stage 2: the entries of one block, each handled like a record of its own (de-duplication, late
   * and failed entries dead-lettered with their upstream position). The source's stream time moves
   * once, after the block: a block is one upstream partition's batch, so lateness is judged against
   * the stream time the stage had before it.
   */
  #processBlock(
    record: CodecRecord,
    source: string | undefined,
    replay: boolean,
    processingTime: number | undefined,
    wallNow: number,
    into: { dead: DeadLetter[]; stats: PartitionStats },
  ): void {
    const { dead, stats } = into;
    let maxEventTime = -Infinity;
    for (const entry of readBlock(record.value)) {
      stats.recordsIn++;
      if (replay) stats.replayed++;
      if (this.#isDuplicate(source, [entry.offset, entry.sequence], replay)) {
        stats.duplicates++;
        continue;
      }
      const eventTime = processingTime ?? entry.eventTime;
      try {
        this.#checkSize(entry.key, entry.value);
        // Values are decoded only when something reads them (not for a bare count()).
        const value = this.#skipStage2Values ? undefined : this.#decodeEntry(entry);
        const key = entry.key === null ? null : utf8Lenient.decode(entry.key);
        const elements = this.#runStage2({ key, value });
        for (const el of elements) {
          if (this.#toWindow(el, eventTime, record.offset, wallNow, replay, stats)) {
            dead.push(this.#lateLetter(entryRecord(record, source, entry), eventTime));
          }
        }
        if (eventTime > maxEventTime) maxEventTime = eventTime;
      } catch (error) {
        if (!replay) dead.push(this.#failureLetter(entryRecord(record, source, entry), error));
      }
    }
    if (source !== undefined && maxEventTime > -Infinity) this.#noteSource(source, maxEventTime, false, wallNow);
  }

  #decodeEntry(entry: BlockEntry): unknown {
    switch (entry.encoding) {
      case 'null':
        return null;
      case 'bytes':
        return entry.value === null
          ? null
          : Buffer.from(entry.value.buffer, entry.value.byteOffset, entry.value.length);
      case 'string':
      case 'json': {
        if (entry.value === null) throw new RecordFailure('SLUICE_DESERIALIZE_FAILED', 'record has no value');
        let text: string;
        try {
          text = utf8.decode(entry.value);
        } catch {
          throw new RecordFailure('SLUICE_DESERIALIZE_FAILED', 'value is not valid UTF-8');
        }
        if (entry.encoding === 'string') return text;
        try {
          return JSON.parse(text);
        } catch (error) {
          throw new RecordFailure('SLUICE_DESERIALIZE_FAILED', `value is not valid JSON: ${(error as Error).message}`);
        }
      }
    }
  }

  #resultValue(result: WindowResult): Uint8Array {
    return encoder.encode(
      JSON.stringify({
        key: result.key,
        windowStart: result.windowStart,
        windowEnd: result.windowEnd,
        value: result.value,
      }),
    );
  }

  #errorHeaders(code: ErrorCode, message: string): Array<[string, string]> {
    return [
      ['sluice-error-code', code],
      ['sluice-error-message', message.slice(0, 1000)],
      ['sluice-job', this.#plan.name],
    ];
  }

  #deadLetter(record: CodecRecord, code: ErrorCode, message: string, extra: Array<[string, string]> = []): DeadLetter {
    const headers: Array<[string, string | Uint8Array]> = [
      ...this.#errorHeaders(code, message),
      ['sluice-source-topic', this.topic],
      ['sluice-source-partition', String(this.partition)],
      ['sluice-source-offset', String(record.offset)],
      ['sluice-source-timestamp', String(record.timestamp)],
      ...extra,
    ];
    // Copies: the views point into the whole batch buffer, which must not be cloned back per letter.
    // A re-driven dead letter carries only its new error and origin: Sluice's own headers are replaced.
    for (const [name, value] of record.headers) {
      if (!OWN_DLQ_HEADER.test(name)) headers.push([name, value.slice()]);
    }
    return { key: record.key?.slice() ?? null, value: record.value?.slice() ?? null, headers };
  }
}
