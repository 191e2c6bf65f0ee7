/**
 * A partition of a job without a window: each record is decoded, run through the operators and its
 * results are written out at once. The commit is the end of what was processed.
 */
import { type PartitionResult, type PartitionStart, type Poison } from '../pool/protocol.ts';
import { readRecords, RecordWriter } from '../wire/record-codec.ts';
import { DeadLetters, originOf } from './dead-letters.ts';
import {
  decodeText,
  deserialize,
  encodeValue,
  eventTimeFor,
  type EventTimeOf,
  joinsOnKey,
  keyBytes,
  openRecord,
  type Runner,
  runnerFor,
} from './record-functions.ts';
import { emptyStats, EndOffset, poisonIndex, resultOf, type Task, type TaskContext } from './task.ts';

export class StatelessTask implements Task {
  readonly kind = 'stateless';
  readonly topic: string;
  readonly partition: number;
  readonly openWindows = 0;
  readonly changelogPartition = null;
  readonly #ctx: TaskContext;
  readonly #run: Runner;
  readonly #letters: DeadLetters;
  readonly #end: EndOffset;
  /** A keyBy replaces the key (and no join looks it up first): the input's key is never read as text. */
  readonly #keyReplaced: boolean;
  /**
   * The job's event-time extractor, run although no window needs the time: a record it refuses
   * (throws, no time) is dead-lettered as in a windowed job, so the extractor validates the input.
   */
  readonly #eventTime: EventTimeOf | undefined;

  constructor(ctx: TaskContext, topic: string, partition: number, start: PartitionStart) {
    this.#ctx = ctx;
    this.topic = topic;
    this.partition = partition;
    this.#run = runnerFor(ctx.plan.stage1, { access: ctx.tables, partition });
    this.#letters = new DeadLetters(ctx.plan.name);
    this.#end = new EndOffset(start);
    this.#keyReplaced = ctx.plan.stage1.some((op) => op.kind === 'keyBy') && !joinsOnKey(ctx.plan.stage1);
    this.#eventTime = ctx.plan.eventTime ? eventTimeFor(ctx.plan, topic, partition) : undefined;
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
    _wallNow: number,
    _caughtUp: boolean,
    poison?: readonly Poison[],
    through?: number,
  ): PartitionResult {
    const { plan } = this.#ctx;
    const pills = poisonIndex(poison);
    // About one output per input record, of about its size: room for that at once, the rest released.
    const outputs = new RecordWriter(records.byteLength + 1024);
    const dead = [];
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
        this.#eventTime?.(record, value, batchTime);
        const key = this.#keyReplaced ? null : decodeText(record.key);
        for (const el of this.#run({ key, value, rawKey: record.key })) {
          // The input's Kafka timestamp, not an event time: an old event time would make the
          // output's time-based retention delete the record at once.
          outputs.write(0, record.timestamp, keyBytes(el), encodeValue(el.value));
        }
      } catch (error) {
        const origin = originOf(this, record);
        dead.push(this.#letters.failure(record, origin, error));
      }
    }
    this.#end.readThrough(through);
    return resultOf(this, { stats, dead, outputs, commit: this.#end.commit() });
  }
}
