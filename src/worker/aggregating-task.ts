/**
 * What the two aggregating tasks (windowed, shuffle reader) share: the partition's windows, the
 * restart rule (records below the checkpoint's end are replayed: they rebuild windows but are neither
 * emitted as updates nor dead-lettered again), emitting closed or changed windows at the end of a
 * batch, and the commit — the earliest offset an open window still needs, with the checkpoint in the
 * commit metadata (wire/checkpoint.ts).
 */
import { describeError } from '../errors.ts';
import { type DeadLetter, type PartitionResult, type PartitionStart, type PartitionStats } from '../pool/protocol.ts';
import { decodeCheckpoint, encodeCheckpoint, type SourceMark } from '../wire/checkpoint.ts';
import { type CodecRecord, RecordWriter } from '../wire/record-codec.ts';
import { WindowStore, type WindowResult } from '../windows/window-store.ts';
import { DeadLetters, type Headers, type Origin } from './dead-letters.ts';
import { type Element, RecordFailure } from './record-functions.ts';
import { resultOf, type TaskContext } from './task.ts';

const encoder = new TextEncoder();

/** Timestamp of an output record that the producer sets (publish time). */
const NO_TIMESTAMP = -1;

export abstract class AggregatingTask {
  readonly topic: string;
  readonly partition: number;
  protected readonly ctx: TaskContext;
  protected readonly windows: WindowStore;
  protected readonly letters: DeadLetters;
  /** Records below this offset were processed before the last restart: rebuild state only. */
  protected readonly replayUntil: number;
  /** Next offset after the last record processed. */
  #end: number;
  /** Shuffle reader: per upstream partition, the last (offset, sequence) seen. */
  protected readonly dedupe: Map<string, readonly [number, number]>;
  /** Shuffle reader: what each upstream partition last reported. */
  protected readonly sources: Map<string, SourceMark>;
  #lastCommit: { offset: number; metadata: string | null } | undefined;

  constructor(ctx: TaskContext, topic: string, partition: number, start: PartitionStart, externalClock: boolean) {
    const window = ctx.plan.window;
    if (!window) throw new RangeError('an aggregating task needs a window');
    this.ctx = ctx;
    this.topic = topic;
    this.partition = partition;
    this.letters = new DeadLetters(ctx.plan.name);
    const checkpoint = decodeCheckpoint(start.metadata, ctx.sources);
    this.#end = start.committedOffset ?? 0;
    this.replayUntil = checkpoint && start.committedOffset !== null ? checkpoint.end : 0;
    this.dedupe = checkpoint?.dedupe ?? new Map();
    this.sources = checkpoint?.sources ?? new Map();
    this.windows = new WindowStore({
      assigner: window.assigner,
      latenessMs: window.latenessMs,
      emit: window.emit,
      aggregator: window.aggregator,
      idleTimeoutMs: window.idleTimeoutMs,
      ...(checkpoint?.streamTime != null ? { initialStreamTime: checkpoint.streamTime } : {}),
      externalClock,
    });
  }

  get openWindows(): number {
    return this.windows.openWindows;
  }

  /** Notes a record at `offset`; true when it was processed before the restart (replay). */
  protected saw(offset: number): boolean {
    if (offset + 1 > this.#end) this.#end = offset + 1;
    return offset < this.replayUntil;
  }

  /** Adds an element to its windows; a dead letter when it is late (and live). */
  protected addToWindows(
    el: Element,
    eventTime: number,
    record: CodecRecord,
    origin: Origin,
    wallNow: number,
    replay: boolean,
    stats: PartitionStats,
    extra: Headers = [],
  ): DeadLetter | undefined {
    let outcome: 'added' | 'late';
    try {
      outcome = this.windows.add(el.key, eventTime, el.value, record.offset, wallNow, replay);
    } catch (error) {
      throw new RecordFailure('SLUICE_USER_CODE_FAILED', `aggregate threw ${describeError(error)}`);
    }
    if (outcome !== 'late' || replay) return undefined;
    stats.late++;
    return this.letters.late(record, origin, eventTime, this.windows.streamTime, extra);
  }

  /**
   * End of the batch: idle advancement (`mayIdle`: nothing upstream holds the stream time back),
   * the windows due, the statistics and the commit.
   */
  protected finish(
    dead: DeadLetter[],
    stats: PartitionStats,
    wallNow: number,
    caughtUp: boolean,
    mayIdle: boolean,
  ): PartitionResult {
    const outputs = new RecordWriter();
    if (caughtUp && mayIdle) this.windows.advanceIdle(wallNow);
    else if (!caughtUp) this.windows.holdIdle(wallNow);
    for (const result of this.windows.collect()) {
      try {
        if (result.error !== undefined) throw result.error;
        // No timestamp: the producer's (publish time). The window's end is in the value; an event-time
        // timestamp would make the output's time-based retention delete historical results at once.
        outputs.write(0, NO_TIMESTAMP, result.key === null ? null : encoder.encode(result.key), resultValue(result));
      } catch (error) {
        dead.push(this.letters.window(result.key, result.windowStart, result.windowEnd, error));
      }
    }
    stats.openWindows = this.windows.openWindows;
    const st = this.windows.streamTime;
    stats.streamTime = Number.isFinite(st) ? st : null;
    return resultOf(this, { stats, dead, outputs, commit: this.#commit() });
  }

  #commit(): { offset: number; metadata: string | null } | null {
    const end = Math.max(this.#end, this.replayUntil);
    const minOpen = this.windows.minOpenOffset();
    const st = this.windows.streamTime;
    const metadata = encodeCheckpoint(
      { end, streamTime: Number.isFinite(st) ? st : null, dedupe: this.dedupe, sources: this.sources },
      this.ctx.sources,
    );
    const next = { offset: Math.min(minOpen ?? this.#end, this.#end), metadata };
    const last = this.#lastCommit;
    if (last && last.offset === next.offset && last.metadata === next.metadata) return null;
    this.#lastCommit = next;
    return next;
  }
}

function resultValue(result: WindowResult): Uint8Array {
  return encoder.encode(
    JSON.stringify({
      key: result.key,
      windowStart: result.windowStart,
      windowEnd: result.windowEnd,
      value: result.value,
    }),
  );
}
