/**
 * Stage 2 of a re-keyed windowed job, on a repartition partition (Spark's shuffle read): each block
 * entry is a record of its own — de-duplicated by its upstream position (stage 1 may write a batch
 * twice when it crashed between publishing and committing), run through the remaining operators and
 * aggregated. Control records carry the upstream partitions' stream times: the stage's stream time
 * is the smallest of the non-idle ones (all idle: the largest), like a Flink watermark, so one
 * upstream partition read ahead of the others does not make their records late.
 */
import {
  type DeadLetter,
  type PartitionResult,
  type PartitionStart,
  type PartitionStats,
  type Poison,
} from '../pool/protocol.ts';
import {
  BLOCK_HEADER,
  ENCODING_HEADER,
  IDLE_HEADER,
  POSITION_HEADER,
  SOURCE_HEADER,
  WATERMARK_HEADER,
} from '../wire/headers.ts';
import { readRecords, type CodecRecord } from '../wire/record-codec.ts';
import { readBlock, type BlockEntry } from '../wire/repartition-block.ts';
import { AggregatingTask } from './aggregating-task.ts';
import { type Headers, type Origin, originOf } from './dead-letters.ts';
import { decodeText, deserialize, openRecord, RecordFailure, type Runner, runnerFor } from './record-functions.ts';
import { emptyStats, type PoisonIndex, poisonIndex, type Task, type TaskContext } from './task.ts';

/** What a repartition-topic record is. */
type Control =
  | { kind: 'block'; source: string | undefined }
  | { kind: 'watermark'; source: string; streamTime: number | null; idle: boolean }
  | { kind: 'unknown' };

function readControl(record: CodecRecord): Control {
  let source: string | undefined;
  let watermark: string | undefined;
  let idle = false;
  let block = false;
  for (const [name, value] of record.headers) {
    if (name === SOURCE_HEADER) source = decodeText(value) ?? undefined;
    else if (name === WATERMARK_HEADER) watermark = decodeText(value) ?? '';
    else if (name === IDLE_HEADER) idle = decodeText(value) === '1';
    else if (name === BLOCK_HEADER) block = true;
  }
  if (block) return { kind: 'block', source };
  if (watermark !== undefined && source !== undefined) {
    return { kind: 'watermark', source, streamTime: watermark === '' ? null : Number(watermark), idle };
  }
  return { kind: 'unknown' };
}

/** `topic:partition` → its parts (the partition after the last colon). */
function parseSource(source: string | undefined): { topic: string; partition: number } | undefined {
  if (source === undefined) return undefined;
  const cut = source.lastIndexOf(':');
  const partition = Number(source.slice(cut + 1));
  return cut > 0 && Number.isInteger(partition) ? { topic: source.slice(0, cut), partition } : undefined;
}

export class ShuffleReaderTask extends AggregatingTask implements Task {
  readonly kind = 'shuffle-reader';
  readonly #run: Runner;
  /** A bare count(): nothing reads the values. */
  readonly #skipValues: boolean;

  constructor(ctx: TaskContext, topic: string, partition: number, start: PartitionStart) {
    super(ctx, topic, partition, start, true);
    this.#run = runnerFor(ctx.plan.stage2, { access: ctx.tables, partition });
    this.#skipValues = ctx.plan.stage2.length === 0 && ctx.plan.window?.aggregator.ignoresValue === true;
  }

  process(
    records: ArrayBuffer,
    batchTime: number,
    wallNow: number,
    caughtUp: boolean,
    poison?: readonly Poison[],
    through?: number,
  ): PartitionResult {
    const pills = poisonIndex(poison);
    const dead: DeadLetter[] = [];
    const stats = emptyStats();
    const processingTime = this.ctx.plan.window?.time === 'processing' ? batchTime : undefined;
    for (const record of readRecords(records)) {
      // Blocks and control records are not records of their own: the statistics count entries.
      const seen = this.saw(record.offset);
      if (seen === 'skip') {
        stats.skipped += 1;
        continue;
      }
      const replay = seen === 'replay';
      const control = readControl(record);
      if (control.kind === 'block')
        this.#block(record, control.source, { replay, processingTime, wallNow, pills }, dead, stats);
      else if (control.kind === 'watermark')
        this.#noteSource(control.source, control.streamTime, control.idle, wallNow);
      else {
        stats.recordsIn++;
        if (replay) {
          stats.replayed++;
          continue;
        }
        const origin = originOf(this, record);
        const reason = 'not a repartition block or control record';
        dead.push(this.letters.record(record, origin, 'SLUICE_DESERIALIZE_FAILED', reason));
      }
    }
    // Stream time follows the upstream partitions; its own idle clock runs only when they are all idle.
    this.readThrough(through);
    return this.finish(dead, stats, wallNow, caughtUp, this.#allSourcesIdle());
  }

  /**
   * The entries of one block. The source's stream time moves once, after the block: a block is one
   * upstream partition's batch, so lateness is judged against the stream time before it.
   */
  #block(
    record: CodecRecord,
    source: string | undefined,
    batch: { replay: boolean; processingTime: number | undefined; wallNow: number; pills: PoisonIndex },
    dead: DeadLetter[],
    stats: PartitionStats,
  ): void {
    const { replay, processingTime, wallNow, pills } = batch;
    const upstream = parseSource(source);
    let maxEventTime = -Infinity;
    let entries: BlockEntry[];
    try {
      entries = [...readBlock(record.value)];
    } catch (error) {
      stats.recordsIn++;
      const origin = originOf(this, record);
      if (!replay) dead.push(this.letters.failure(record, origin, error));
      return;
    }
    let index = -1;
    for (const entry of entries) {
      index++;
      stats.recordsIn++;
      if (replay) stats.replayed++;
      if (this.#isDuplicate(source, entry, replay)) {
        stats.duplicates++;
        continue;
      }
      const eventTime = processingTime ?? entry.eventTime;
      // The dead letter of an entry names its input record, and keeps where it was in the shuffle.
      const entryRecord: CodecRecord = {
        offset: record.offset,
        timestamp: entry.timestamp ?? entry.eventTime,
        key: entry.key,
        value: entry.value,
        headers: [],
      };
      const origin: Origin = upstream
        ? { ...upstream, offset: entry.offset, timestamp: entry.timestamp }
        : originOf(this, record);
      const extra: Headers = [
        ...(source !== undefined ? ([[SOURCE_HEADER, source]] satisfies Headers) : []),
        [POSITION_HEADER, `${entry.offset}:${entry.sequence}`],
        [ENCODING_HEADER, entry.encoding],
      ];
      try {
        openRecord(this.ctx, pills, record.offset, index, entry.key, entry.value);
        // Values are decoded only when something reads them (not for a bare count()).
        const value = this.#skipValues ? undefined : decodeEntry(entry);
        for (const el of this.#run({ key: decodeText(entry.key), value })) {
          const late = this.addToWindows(el, eventTime, entryRecord, origin, wallNow, replay, stats, extra);
          if (late) dead.push(late);
        }
        if (eventTime > maxEventTime) maxEventTime = eventTime;
      } catch (error) {
        if (!replay) dead.push(this.letters.failure(entryRecord, origin, error, extra));
      }
    }
    if (source !== undefined && maxEventTime > -Infinity) this.#noteSource(source, maxEventTime, false, wallNow);
  }

  #isDuplicate(source: string | undefined, entry: BlockEntry, replay: boolean): boolean {
    if (source === undefined) return false;
    // While replaying after an upgrade, the checkpoint's marks are for live records: replayed ones have their own.
    const marks = replay ? this.replayDedupe : this.dedupe;
    const seen = marks.get(source);
    if (seen && (entry.offset !== seen[0] ? entry.offset < seen[0] : entry.sequence <= seen[1])) return true;
    marks.set(source, [entry.offset, entry.sequence]);
    return false;
  }

  #allSourcesIdle(): boolean {
    return this.ctx.sources.every((s) => this.sources.get(s)?.idle === true);
  }

  /** An upstream partition reached `streamTime`: the stage's stream time is the smallest non-idle one. */
  #noteSource(source: string, streamTime: number | null, idle: boolean, wallNow: number): void {
    const entry = this.sources.get(source);
    const t = Math.max(entry?.streamTime ?? -Infinity, streamTime ?? -Infinity);
    this.sources.set(source, { streamTime: t, idle });
    let min = Infinity;
    let max = -Infinity;
    let active = 0;
    for (const s of this.ctx.sources) {
      const e = this.sources.get(s);
      const st = e?.streamTime ?? -Infinity;
      if (st > max) max = st;
      if (e?.idle) continue;
      active++;
      if (st < min) min = st;
    }
    const watermark = active > 0 ? min : max;
    if (Number.isFinite(watermark)) this.windows.advanceTo(watermark, wallNow);
  }
}

function decodeEntry(entry: BlockEntry): unknown {
  switch (entry.encoding) {
    case 'null':
      return null;
    case 'bytes':
      return deserialize(entry.value, 'bytes');
    case 'string':
    case 'json':
      if (entry.value === null) throw new RecordFailure('SLUICE_DESERIALIZE_FAILED', 'record has no value');
      return deserialize(entry.value, entry.encoding);
  }
}
