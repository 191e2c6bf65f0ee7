/**
 * Stage 1 of a re-keyed windowed job, on an input partition: decode, event time, the operators up to
 * the keyBy, then one repartition block per target partition for the batch (Spark's shuffle write).
 * It also reports its stream time (and idleness) to the aggregating stage whenever that changes.
 */
import {
  type DeadLetter,
  type PartitionResult,
  type PartitionStart,
  type Poison,
  type SourceWatermark,
} from '../pool/protocol.ts';
import { readRecords } from '../wire/record-codec.ts';
import { BlockWriter } from '../wire/repartition-block.ts';
import { DeadLetters, originOf } from './dead-letters.ts';
import {
  decodeText,
  deserialize,
  eventTimeFor,
  type EventTimeOf,
  joinsOnKey,
  openRecord,
  type Runner,
  runnerFor,
  toJson,
} from './record-functions.ts';
import { emptyStats, EndOffset, poisonIndex, resultOf, type Task, type TaskContext } from './task.ts';

const EMPTY = new Uint8Array(0);

export class ShuffleWriterTask implements Task {
  readonly kind = 'shuffle-writer';
  readonly topic: string;
  readonly partition: number;
  readonly openWindows = 0;
  readonly changelogPartition = null;
  readonly #ctx: TaskContext;
  readonly #run: Runner;
  readonly #eventTime: EventTimeOf;
  readonly #letters: DeadLetters;
  readonly #end: EndOffset;
  /**
   * Only filter and keyBy on JSON input: a value that reaches the repartition topic is the parsed
   * input value itself (filter and keyBy receive it read-only), so its input bytes are written.
   */
  readonly #passThrough: boolean;
  /** A join before the keyBy looks the Kafka key up: elements carry it as text. */
  readonly #keyed: boolean;
  #streamTime = -Infinity;
  /** Last time this partition had a record or was behind (records waiting): the idle clock. */
  #lastBusyWall: number;
  #lastReported: SourceWatermark | undefined;

  constructor(ctx: TaskContext, topic: string, partition: number, start: PartitionStart, wallNow = Date.now()) {
    this.#ctx = ctx;
    this.topic = topic;
    this.partition = partition;
    this.#run = runnerFor(ctx.plan.stage1, { access: ctx.tables, partition });
    this.#keyed = joinsOnKey(ctx.plan.stage1);
    this.#eventTime = eventTimeFor(ctx.plan, topic, partition);
    this.#letters = new DeadLetters(ctx.plan.name);
    this.#end = new EndOffset(start);
    this.#passThrough =
      ctx.plan.format === 'json' && ctx.plan.stage1.every((op) => op.kind === 'filter' || op.kind === 'keyBy');
    this.#lastBusyWall = wallNow;
  }

  restore(): void {
    // No state.
  }

  restored(): number | null {
    return this.#end.start;
  }

  process(
    records: ArrayBuffer,
    batchTime: number,
    wallNow: number,
    caughtUp: boolean,
    poison?: readonly Poison[],
    through?: number,
  ): PartitionResult {
    if (!caughtUp) this.#lastBusyWall = wallNow;
    const { plan } = this.#ctx;
    const pills = poisonIndex(poison);
    const blocks = new BlockWriter(this.#ctx.repartitionPartitions);
    const dead: DeadLetter[] = [];
    const stats = emptyStats();
    for (const record of readRecords(records)) {
      if (!this.#end.saw(record.offset)) {
        stats.skipped++;
        continue;
      }
      stats.recordsIn++;
      try {
        openRecord(this.#ctx, pills, record.offset, -1, record.key, record.value);
        const value = deserialize(record.value, plan.format);
        const eventTime = this.#eventTime(record, value, batchTime);
        this.#lastBusyWall = wallNow;
        if (eventTime > this.#streamTime) this.#streamTime = eventTime;
        const key = this.#keyed ? decodeText(record.key) : null;
        const elements = this.#run({ key, value, rawKey: record.key });
        for (let seq = 0; seq < elements.length; seq++) {
          const el = elements[seq]!;
          const v = el.value;
          const k = el.rawKey !== undefined ? (el.rawKey ?? EMPTY) : (el.key ?? '');
          const at = { offset: record.offset, sequence: seq, eventTime, timestamp: record.timestamp };
          if (v === value && v !== null && this.#passThrough && record.value !== null) {
            // The value the input record held, unchanged: its bytes, not a re-serialization.
            blocks.add(k, at, 'json', record.value);
          } else if (v === null) blocks.add(k, at, 'null', null);
          else if (typeof v === 'string') blocks.add(k, at, 'string', v);
          else if (v instanceof Uint8Array) blocks.add(k, at, 'bytes', v);
          else blocks.add(k, at, 'json', toJson(v));
        }
      } catch (error) {
        const origin = originOf(this, record);
        dead.push(this.#letters.failure(record, origin, error));
      }
    }
    stats.streamTime = Number.isFinite(this.#streamTime) ? this.#streamTime : null;
    this.#end.readThrough(through);
    return resultOf(this, {
      stats,
      dead,
      repartition: blocks,
      watermark: this.#watermarkReport(wallNow),
      commit: this.#end.commit(),
    });
  }

  /** This partition's stream time for the aggregating stage, when it changed. */
  #watermarkReport(wallNow: number): SourceWatermark | null {
    const idleTimeout = this.#ctx.plan.window?.idleTimeoutMs ?? 0;
    const idle = idleTimeout > 0 && wallNow - this.#lastBusyWall >= idleTimeout;
    const report: SourceWatermark = { streamTime: Number.isFinite(this.#streamTime) ? this.#streamTime : null, idle };
    const last = this.#lastReported;
    if (last && last.streamTime === report.streamTime && last.idle === report.idle) return null;
    this.#lastReported = report;
    return report;
  }
}
