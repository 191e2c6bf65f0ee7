/**
 * What the two aggregating tasks (windowed, shuffle reader) share: the partition's windows and their
 * state store (`WindowStore` for tumbling and sliding windows, `SessionStore` for sessions: picked by
 * the assigner, used through their common surface), restored from the changelog before the first
 * batch; emitting closed or changed windows at the end of a batch (and, for sessions in update mode,
 * the retractions of sessions merged away); and the batch's changelog records — every window entry it
 * changed, a tombstone for every entry the store no longer holds, and the task's progress (the input
 * position the state reflects, stream time, de-duplication marks, upstream stream times;
 * wire/changelog.ts). The commit is the end of what was processed.
 *
 * Records below the restored position are skipped: their effects are in the state (an at-least-once
 * batch whose changelog was written but whose offsets were not committed). A task upgraded from a
 * version that kept its checkpoint in the commit metadata (wire/checkpoint.ts) and has no changelog
 * yet rebuilds its windows the old way once: records from the committed offset up to the
 * checkpoint's end are *replayed* — they rebuild windows but are neither emitted as updates nor
 * dead-lettered again.
 */
import { describeError, StateError } from '../errors.ts';
import { type DeadLetter, type PartitionResult, type PartitionStart, type PartitionStats } from '../pool/protocol.ts';
import {
  decodeAccumulator,
  decodeProgress,
  decodeSession,
  encodeAccumulator,
  encodeProgress,
  encodeSession,
  type Progress,
  PROGRESS_KEY,
  readChangelogKey,
  sessionKey,
  windowKey,
} from '../wire/changelog.ts';
import { decodeCheckpoint, type SourceMark } from '../wire/checkpoint.ts';
import { type CodecRecord, RecordWriter } from '../wire/record-codec.ts';
import { createStateStore } from '../windows/create-store.ts';
import { type WindowResult, type WindowStateStore } from '../windows/state-store.ts';
import { DeadLetters, type Headers, type Origin } from './dead-letters.ts';
import { type Element, RecordFailure } from './record-functions.ts';
import { changelogPartitionFor, resultOf, type StoredRecord, type TaskContext } from './task.ts';

const encoder = new TextEncoder();

/** Timestamp of an output record that the producer sets (publish time). */
const NO_TIMESTAMP = -1;

export abstract class AggregatingTask {
  readonly topic: string;
  readonly partition: number;
  readonly changelogPartition: number;
  protected readonly ctx: TaskContext;
  protected readonly windows: WindowStateStore;
  /** Session windows: entries with their end (`sessionKey`), and retractions in update mode. */
  readonly #sessions: boolean;
  protected readonly letters: DeadLetters;
  /** Records below this offset were processed before an upgrade: rebuild state only. */
  protected replayUntil = 0;
  /** Records below this offset are in the restored state: skipped. */
  #from: number;
  /** Next offset after the last record processed. */
  #end: number;
  readonly #start: PartitionStart;
  /** Shuffle reader: per upstream partition, the last (offset, sequence) seen. */
  protected dedupe = new Map<string, readonly [number, number]>();
  /** Shuffle reader, while replaying after an upgrade: the same for the replayed records. */
  protected replayDedupe = new Map<string, readonly [number, number]>();
  /** Shuffle reader: what each upstream partition last reported. */
  protected sources = new Map<string, SourceMark>();
  /** The last progress record read while restoring, then the last one written. */
  #progress: Progress | undefined;
  #lastProgress: string | undefined;
  #lastCommit: number | undefined;

  constructor(ctx: TaskContext, topic: string, partition: number, start: PartitionStart, externalClock: boolean) {
    const window = ctx.plan.window;
    if (!window) throw new RangeError('an aggregating task needs a window');
    const changelogPartition = changelogPartitionFor(ctx.plan, ctx.sources, topic, partition);
    if (changelogPartition === null) throw new RangeError(`${topic}:${partition} has no changelog partition`);
    this.ctx = ctx;
    this.topic = topic;
    this.partition = partition;
    this.changelogPartition = changelogPartition;
    this.letters = new DeadLetters(ctx.plan.name);
    this.#start = start;
    this.#from = start.committedOffset ?? 0;
    this.#end = this.#from;
    this.#sessions = window.assigner.kind === 'session';
    this.windows = createStateStore({
      assigner: window.assigner,
      latenessMs: window.latenessMs,
      emit: window.emit,
      aggregator: window.aggregator,
      idleTimeoutMs: window.idleTimeoutMs,
      externalClock,
    });
  }

  get openWindows(): number {
    return this.windows.openWindows;
  }

  /** The task's state store, read by queryable state (`state-query.ts`). */
  get store(): WindowStateStore {
    return this.windows;
  }

  get #id(): string {
    return `${this.topic}:${this.partition}`;
  }

  /** Applies changelog records in offset order: window entries, tombstones and progress. */
  restore(records: readonly StoredRecord[]): void {
    for (const record of records) {
      const key = readChangelogKey(record.key);
      if (key === undefined) continue; // not written by this format: ignored
      if (key.kind === 'progress') {
        const progress = record.value ? decodeProgress(record.value) : undefined;
        if (progress && progress.task !== this.#id) {
          throw new StateError(
            `changelog partition ${this.changelogPartition} holds the state of ${progress.task}, not ${this.#id}: the input partitions changed since it was written; delete the changelog topic to start the state afresh`,
          );
        }
        if (progress) this.#progress = progress;
      } else if ((key.kind === 'session') !== this.#sessions) {
        const [held, job] = this.#sessions ? ['windows', 'session windows'] : ['sessions', 'windows'];
        throw new StateError(
          `changelog partition ${this.changelogPartition} holds ${held} but the job has ${job}: the job's window changed since it was written; delete the changelog topic to start the state afresh`,
        );
      } else if (record.value === null) {
        this.windows.restoreDelete(key.start, key.key);
      } else {
        let entry: { acc: unknown; end?: number };
        try {
          entry = key.kind === 'session' ? decodeSession(record.value) : { acc: decodeAccumulator(record.value) };
        } catch (error) {
          throw new StateError(
            `changelog partition ${this.changelogPartition} holds an accumulator that cannot be read (${describeError(error)}): delete the changelog topic to start the state afresh`,
            error,
          );
        }
        this.windows.restoreEntry(key.start, key.key, entry.acc, entry.end);
      }
    }
  }

  /**
   * The changelog was read: the state is that of its last progress record. Without one, a checkpoint
   * in the commit metadata (an upgrade) rebuilds the windows by replay from the committed offset.
   */
  restored(): number | null {
    const progress = this.#progress;
    if (progress) {
      this.#from = Math.max(this.#from, progress.end);
      this.#end = this.#from;
      this.replayUntil = progress.replayUntil ?? 0;
      this.replayDedupe = new Map(progress.replayDedupe ?? []);
      this.dedupe = new Map(progress.dedupe);
      this.sources = new Map(progress.sources);
      if (progress.streamTime !== null) this.windows.restoreStreamTime(progress.streamTime);
      this.#lastProgress = new TextDecoder().decode(encodeProgress(progress));
      return this.#from;
    }
    const checkpoint = decodeCheckpoint(this.#start.metadata, this.ctx.sources);
    if (checkpoint && this.#start.committedOffset !== null) {
      this.replayUntil = checkpoint.end;
      this.dedupe = checkpoint.dedupe;
      this.sources = checkpoint.sources;
      if (checkpoint.streamTime !== null) this.windows.restoreStreamTime(checkpoint.streamTime);
    }
    return this.#start.committedOffset;
  }

  /**
   * Notes a record at `offset`: 'skip' when the restored state holds it, 'replay' when it was
   * processed before an upgrade, else 'live'.
   */
  protected saw(offset: number): 'skip' | 'replay' | 'live' {
    if (offset < this.#from) return 'skip';
    if (offset + 1 > this.#end) this.#end = offset + 1;
    return offset < this.replayUntil ? 'replay' : 'live';
  }

  /** The partition was read up to `through` (offsets past the last record hold none: markers). */
  protected readThrough(through: number | undefined): void {
    if (through !== undefined && through > this.#end) this.#end = through;
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
      outcome = this.windows.add(el.key, eventTime, el.value, wallNow, replay);
    } catch (error) {
      throw new RecordFailure('SLUICE_USER_CODE_FAILED', `aggregate threw ${describeError(error)}`);
    }
    if (outcome !== 'late' || replay) return undefined;
    stats.late++;
    return this.letters.late(record, origin, eventTime, this.windows.streamTime, extra);
  }

  /**
   * End of the batch: idle advancement (`mayIdle`: nothing upstream holds the stream time back),
   * the windows due, the changelog records, the statistics and the commit.
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
    const changelog = this.#changelog(dead);
    stats.openWindows = this.windows.openWindows;
    const st = this.windows.streamTime;
    stats.streamTime = Number.isFinite(st) ? st : null;
    const commit = this.#lastCommit === this.#end ? null : { offset: this.#end, metadata: null };
    this.#lastCommit = this.#end;
    return resultOf(this, {
      stats,
      dead,
      outputs,
      commit,
      changelog: { writer: changelog, partition: this.changelogPartition },
    });
  }

  /** The batch's changelog records: changed entries, tombstones of closed windows, then the progress. */
  #changelog(dead: DeadLetter[]): RecordWriter {
    const log = new RecordWriter(4096);
    const { puts, deletes } = this.windows.drainChanges();
    const keyOf = this.#sessions ? sessionKey : windowKey;
    const assigner = this.ctx.plan.window?.assigner;
    for (const { start, key, acc, end } of puts) {
      let value: Uint8Array;
      try {
        value = end === undefined ? encodeAccumulator(acc) : encodeSession(end, acc);
      } catch (error) {
        // An accumulator the changelog cannot hold (a function, a class instance with private state):
        // its window could not be restored, so it is reported and dropped like a failing result().
        const windowEnd = end ?? start + (assigner && assigner.kind !== 'session' ? assigner.sizeMs : 0);
        const failure = new StateError(`the accumulator cannot be stored: ${describeError(error)}`, error);
        dead.push(this.letters.window(key, start, windowEnd, failure));
        this.windows.restoreDelete(start, key);
        log.write(0, NO_TIMESTAMP, keyOf(start, key), null);
        continue;
      }
      log.write(0, NO_TIMESTAMP, keyOf(start, key), value);
    }
    for (const { start, key } of deletes) log.write(0, NO_TIMESTAMP, keyOf(start, key), null);
    const st = this.windows.streamTime;
    const progress = encodeProgress({
      task: this.#id,
      end: this.#end,
      streamTime: Number.isFinite(st) ? st : null,
      dedupe: this.dedupe,
      sources: this.sources,
      ...(this.replayUntil > this.#end ? { replayUntil: this.replayUntil, replayDedupe: this.replayDedupe } : {}),
    });
    const text = new TextDecoder().decode(progress);
    if (text !== this.#lastProgress || log.count > 0) {
      log.write(0, NO_TIMESTAMP, PROGRESS_KEY, progress);
      this.#lastProgress = text;
    }
    return log;
  }
}

/** `{"key","windowStart","windowEnd","value"}`; a session's retraction adds `mergedInto` (value `null`). */
function resultValue(result: WindowResult): Uint8Array {
  const { key, windowStart, windowEnd, value, mergedInto } = result;
  return encoder.encode(
    JSON.stringify(
      mergedInto === undefined
        ? { key, windowStart, windowEnd, value }
        : { key, windowStart, windowEnd, value, mergedInto },
    ),
  );
}
