/**
 * A partition of a windowed job without re-keying: the group key is the Kafka key, the input
 * partition aggregates, and its stream time is the largest event time it has seen.
 */
import { originOf } from './dead-letters.ts';
import { type DeadLetter, type PartitionResult, type PartitionStart, type Poison } from '../pool/protocol.ts';
import { readRecords } from '../wire/record-codec.ts';
import { AggregatingTask } from './aggregating-task.ts';
import {
  decodeText,
  deserialize,
  eventTimeFor,
  type EventTimeOf,
  openRecord,
  type Runner,
  runnerFor,
} from './record-functions.ts';
import { emptyStats, poisonIndex, type Task, type TaskContext } from './task.ts';

export class WindowedTask extends AggregatingTask implements Task {
  readonly kind = 'windowed';
  readonly #run: Runner;
  readonly #eventTime: EventTimeOf;

  constructor(ctx: TaskContext, topic: string, partition: number, start: PartitionStart) {
    super(ctx, topic, partition, start, false);
    this.#run = runnerFor(ctx.plan.stage1, { access: ctx.tables, partition });
    this.#eventTime = eventTimeFor(ctx.plan, topic, partition);
  }

  process(
    records: ArrayBuffer,
    batchTime: number,
    wallNow: number,
    caughtUp: boolean,
    poison?: readonly Poison[],
    through?: number,
  ): PartitionResult {
    const { plan } = this.ctx;
    const pills = poisonIndex(poison);
    const dead: DeadLetter[] = [];
    const stats = emptyStats();
    for (const record of readRecords(records)) {
      const seen = this.saw(record.offset);
      if (seen === 'skip') {
        stats.skipped++;
        continue;
      }
      stats.recordsIn++;
      const replay = seen === 'replay';
      if (replay) stats.replayed++;
      const origin = originOf(this, record);
      try {
        openRecord(this.ctx, pills, record.offset, -1, record.key, record.value);
        const value = deserialize(record.value, plan.format);
        const eventTime = this.#eventTime(record, value, batchTime);
        for (const el of this.#run({ key: decodeText(record.key), value, rawKey: record.key })) {
          const late = this.addToWindows(el, eventTime, record, origin, wallNow, replay, stats);
          if (late) dead.push(late);
        }
      } catch (error) {
        if (!replay) dead.push(this.letters.failure(record, origin, error)); // else: dead-lettered before the restart
      }
    }
    this.readThrough(through);
    return this.finish(dead, stats, wallNow, caughtUp, true);
  }
}
