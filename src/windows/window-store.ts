/**
 * Event-time window state of one partition of an aggregating stage (pure: no I/O, no clock of its
 * own; the caller passes wall-clock time in).
 *
 * Semantics (design §2): the store keeps a *stream time*, the largest event time seen. A window
 * `[start, end)` is closed when `streamTime >= end + latenessMs`. A record goes into each of its
 * windows that is still open; a record whose windows are all closed is *late* and changes nothing
 * but stream time. `collect()` runs at the end of each batch and emits per the emit mode:
 * - `final`: one result per (key, window) when the window has closed, then the window is forgotten;
 * - `update`: the (key, window)s changed by live (non-replay) records since the last collect;
 *   closed windows are forgotten (and a closed window changed in this batch is emitted once, final).
 *
 * Layout for the hot path: windows are kept by start in a `Map<start, Slot>` plus an ascending array
 * of starts (few distinct starts, new ones almost always appended at the end, closed ones removed
 * from the front since every window has the same size).
 *
 * The store is also the task's state store (Kafka Streams' in-memory window store with change
 * logging): every entry changed since the last `drainChanges()` (live or replayed) and every entry
 * forgotten because its window closed is reported once, for the changelog; `restoreEntry()` puts an
 * entry back from the changelog without reporting it (the surface: `state-store.ts`).
 */
import { IllegalStateError, UserCodeError } from '../errors.ts';
import type { Aggregator } from './aggregators.ts';
import type { ResolvedAssigner } from './assigners.ts';
import {
  compareResults,
  type StoreChanges,
  type StoreOptions,
  type WindowResult,
  type WindowStateStore,
} from './state-store.ts';
import { checkClockOptions, StreamClock } from './stream-clock.ts';
import { entriesIn } from './window-entries.ts';

export type { StoreChanges, WindowResult, WindowStateStore } from './state-store.ts';

export type EmitMode = 'final' | 'update';

export type WindowStoreOptions = StoreOptions<ResolvedAssigner>;

export type AddOutcome = 'added' | 'late';

interface Entry {
  readonly key: string | null;
  acc: unknown;
  /** Changed by a live add since the last collect (update mode only). */
  dirty: boolean;
  /** Changed since the last drainChanges() (the changelog). */
  logged: boolean;
}

interface Slot {
  readonly start: number;
  readonly end: number;
  /** `null` is a key of its own: `Map` tells `null` and `'null'` apart. */
  readonly entries: Map<string | null, Entry>;
}

export class WindowStore implements WindowStateStore {
  private readonly sizeMs: number;
  private readonly slideMs: number;
  private readonly tumblingWindows: boolean;
  private readonly latenessMs: number;
  private readonly emit: EmitMode;
  private readonly aggregator: Aggregator<unknown, unknown, unknown>;

  private readonly slots = new Map<number, Slot>();
  /** Starts of `slots`, ascending. */
  private starts: number[] = [];
  /** Entries changed by live adds since the last collect (update mode only). */
  private dirtyEntries: Array<{ slot: Slot; entry: Entry }> = [];
  /** Entries changed since the last drainChanges(), and entries of windows closed since then. */
  private loggedEntries: Array<{ slot: Slot; entry: Entry }> = [];
  private closedEntries: Array<{ start: number; key: string | null }> = [];
  private entryCount = 0;
  readonly entriesOf: WindowStateStore['entriesOf'] = (key, from, to) => entriesIn(this.slots, key, from, to);

  /** Stream time and the idle clock (`stream-clock.ts`). */
  private readonly clock: StreamClock;

  /** Scratch for add(): the open windows of the record and their new accumulators. */
  private readonly scratchStarts: number[] = [];
  private readonly scratchAccs: unknown[] = [];

  constructor(options: WindowStoreOptions) {
    const { assigner, latenessMs, idleTimeoutMs } = options;
    if (!(assigner.sizeMs > 0) || !(assigner.slideMs > 0) || !Number.isFinite(assigner.sizeMs + assigner.slideMs)) {
      throw new IllegalStateError(`window size and slide must be positive, got ${assigner.sizeMs}/${assigner.slideMs}`);
    }
    const initial = options.initialStreamTime ?? -Infinity;
    checkClockOptions(latenessMs, idleTimeoutMs, initial);
    this.sizeMs = assigner.sizeMs;
    this.slideMs = assigner.slideMs;
    this.tumblingWindows = assigner.kind === 'tumbling' || assigner.slideMs === assigner.sizeMs;
    this.latenessMs = latenessMs;
    this.emit = options.emit;
    this.aggregator = options.aggregator;
    this.clock = new StreamClock(idleTimeoutMs, initial, options.externalClock ?? false);
  }

  get streamTime(): number {
    return this.clock.time;
  }

  /** Number of distinct (key, window) pairs held. */
  get openWindows(): number {
    return this.entryCount;
  }

  /**
   * Adds one record to each of its windows that is open (closed = `streamTime >= end + latenessMs`,
   * stream time as before this record). Returns `'late'` when all its windows are closed. Then
   * stream time becomes `max(streamTime, eventTime)`. `replay` adds rebuild state without marking
   * windows changed for update emission. If the aggregator throws, nothing changes (stream time
   * included) and the error is re-thrown.
   */
  add(key: string | null, eventTime: number, value: unknown, wallNow: number, replay = false): AddOutcome {
    if (!Number.isFinite(eventTime)) {
      throw new UserCodeError(`event time is not a finite number: ${String(eventTime)}`);
    }
    const starts = this.scratchStarts;
    const accs = this.scratchAccs;
    starts.length = 0;
    accs.length = 0;
    // A window is open iff end + lateness > streamTime, i.e. start > streamTime - size - lateness.
    const closedUpTo = this.clock.time - this.sizeMs - this.latenessMs;
    if (this.tumblingWindows) {
      const start = Math.floor(eventTime / this.sizeMs) * this.sizeMs;
      if (start > closedUpTo) starts.push(start);
    } else {
      // Newest start first, stepping back by the slide.
      const lowest = eventTime - this.sizeMs;
      for (let start = Math.floor(eventTime / this.slideMs) * this.slideMs; start > lowest; start -= this.slideMs) {
        if (start > closedUpTo) starts.push(start);
      }
    }

    if (starts.length === 0) {
      this.clock.noteRecord(eventTime, wallNow);
      return 'late';
    }

    // First compute every new accumulator (user code may throw), then commit them all.
    const aggregator = this.aggregator;
    for (const start of starts) {
      const entry = this.slots.get(start)?.entries.get(key);
      accs.push(aggregator.add(entry === undefined ? aggregator.init() : entry.acc, value));
    }

    for (let i = 0; i < starts.length; i++) {
      const start = starts[i] as number;
      let slot = this.slots.get(start);
      if (slot === undefined) slot = this.newSlot(start);
      let entry = slot.entries.get(key);
      if (entry === undefined) {
        entry = { key, acc: accs[i], dirty: false, logged: false };
        slot.entries.set(key, entry);
        this.entryCount++;
      } else {
        entry.acc = accs[i];
      }
      if (!entry.logged) {
        entry.logged = true;
        this.loggedEntries.push({ slot, entry });
      }
      if (!replay && !entry.dirty && this.emit === 'update') {
        entry.dirty = true;
        this.dirtyEntries.push({ slot, entry });
      }
    }
    accs.length = 0;
    this.clock.noteRecord(eventTime, wallNow);
    return 'added';
  }

  /**
   * Idle advancement: when no record came for `idleTimeoutMs` of wall time (and, with an external
   * clock, stream time was not advanced either), stream time follows
   * wall-clock time from the last record on. Needs a first record, or a finite restored stream time
   * (then the first call starts the idle clock).
   */
  advanceIdle(wallNow: number): void {
    this.clock.advanceIdle(wallNow);
  }

  /** The partition is behind (records waiting): it is not idle, whatever the last record's time. */
  holdIdle(wallNow: number): void {
    this.clock.holdIdle(wallNow);
  }

  /**
   * End of batch: the results due per the emit mode, sorted by window start then key; forgets closed
   * windows. A window whose aggregator `result()` throws comes back with `error` set (and is forgotten).
   */
  collect(): WindowResult[] {
    const results: WindowResult[] = [];
    const aggregator = this.aggregator;
    const closedUpTo = this.clock.time - this.sizeMs - this.latenessMs;
    const finalMode = this.emit === 'final';

    // A throwing `result()` (user code) fails that window alone: it is reported and forgotten like
    // any closed window, so one bad aggregate cannot block the partition.
    const build = (entry: Entry, slot: Slot, final: boolean): WindowResult => {
      const base = { key: entry.key, windowStart: slot.start, windowEnd: slot.end, final };
      try {
        return { ...base, value: aggregator.result(entry.acc) };
      } catch (error) {
        return { ...base, value: undefined, error };
      }
    };
    let closedCount = 0;
    while (closedCount < this.starts.length && (this.starts[closedCount] as number) <= closedUpTo) {
      const slot = this.slots.get(this.starts[closedCount] as number) as Slot;
      for (const entry of slot.entries.values()) {
        if (finalMode || entry.dirty) results.push(build(entry, slot, true));
      }
      closedCount++;
    }
    for (const { slot, entry } of this.dirtyEntries) {
      if (slot.start <= closedUpTo) continue; // closed: emitted above, once, as final
      results.push(build(entry, slot, false));
    }

    for (const { entry } of this.dirtyEntries) entry.dirty = false;
    this.dirtyEntries = [];
    for (let i = 0; i < closedCount; i++) {
      const start = this.starts[i] as number;
      const slot = this.slots.get(start) as Slot;
      this.entryCount -= slot.entries.size;
      for (const key of slot.entries.keys()) this.closedEntries.push({ start, key });
      this.slots.delete(start);
    }
    if (closedCount > 0) this.starts.splice(0, closedCount);

    results.sort(compareResults);
    return results;
  }

  /**
   * The changes since the last call, for the changelog: the current accumulator of every entry
   * changed (of windows still open) and every entry forgotten with its closed window.
   */
  drainChanges(): StoreChanges {
    const puts: StoreChanges['puts'] = [];
    for (const { slot, entry } of this.loggedEntries) {
      entry.logged = false;
      // A window closed since the change: its tombstone is among the deletes.
      if (this.slots.get(slot.start) === slot) puts.push({ start: slot.start, key: entry.key, acc: entry.acc });
    }
    const deletes = this.closedEntries;
    this.loggedEntries = [];
    this.closedEntries = [];
    return { puts, deletes };
  }

  /** Puts an entry back as the changelog holds it (not reported as a change). */
  restoreEntry(start: number, key: string | null, acc: unknown): void {
    const slot = this.slots.get(start) ?? this.newSlot(start);
    const entry = slot.entries.get(key);
    if (entry) entry.acc = acc;
    else {
      slot.entries.set(key, { key, acc, dirty: false, logged: false });
      this.entryCount++;
    }
  }

  /** Forgets a restored entry (a tombstone read after it in the changelog). */
  restoreDelete(start: number, key: string | null): void {
    const slot = this.slots.get(start);
    if (!slot || !slot.entries.delete(key)) return;
    this.entryCount--;
    if (slot.entries.size === 0) {
      this.slots.delete(start);
      this.starts.splice(this.starts.indexOf(start), 1);
    }
  }

  /** The stream time the restored state had; it never moves backwards. */
  restoreStreamTime(streamTime: number): void {
    this.clock.restore(streamTime);
  }

  /**
   * With `externalClock`, stream time moves only here: the caller derives it (for a repartitioned
   * stage, the smallest stream time of the upstream partitions). Never moves backwards.
   */
  advanceTo(streamTime: number, wallNow?: number): void {
    this.clock.advanceTo(streamTime, wallNow);
  }

  private newSlot(start: number): Slot {
    const slot: Slot = { start, end: start + this.sizeMs, entries: new Map() };
    this.slots.set(start, slot);
    this.insertStart(start);
    return slot;
  }

  private insertStart(start: number): void {
    const starts = this.starts;
    let i = starts.length;
    while (i > 0 && (starts[i - 1] as number) > start) i--;
    if (i === starts.length) starts.push(start);
    else starts.splice(i, 0, start);
  }
}
