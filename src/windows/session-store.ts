/**
 * Event-time session windows of one partition of an aggregating stage (pure: no I/O, no clock of its
 * own; the caller passes wall-clock time in). The same surface and rules as `WindowStore` (stream
 * time, lateness, idle advancement, `final`/`update` emission, change logging; `state-store.ts`), for
 * windows whose ranges come from the records (Spark's `session_window`, Kafka Streams' `SessionWindows`):
 *
 * - a record at event time t alone is the session `[t, t + gap)`; the sessions of one key whose ranges
 *   overlap merge, so a session runs from its earliest record to its latest record + gap (two records
 *   exactly `gap` apart are two sessions). A record that bridges two sessions merges them: the record
 *   goes into the earlier one's accumulator (`add`), the later ones follow with `merge(earlier, later)`;
 * - a session closes when `streamTime >= end + latenessMs`. A record is *late* when it touches a closed
 *   session (that session's result is out: reopening it would change a published result), or when its
 *   own window `[t, t + gap)` is closed and t falls inside no open session (a closed own window may still
 *   join or bridge open sessions, but not stretch a session back into what has closed). So the sessions
 *   of a key are always what cutting its accepted records, sorted, at every gap of `gap` or more gives;
 * - a closed session is kept, without its accumulator, until `streamTime >= end + gap + latenessMs`, so
 *   that a record touching it is known to be late; after that no record can touch it without being late
 *   on its own: a record whose own window is open starts after it, and an open session (one a record may
 *   fall into) ends after it and never overlaps it, so starts after it too. Only then is it tombstoned;
 * - `collect()`: `final` — one result per session when it closes; `update` — the sessions changed by live
 *   records since the last collect, and, for a session a reader saw that is gone (merged into another, or
 *   moved to an earlier start by a late record), a *retraction*: value `null` and `mergedInto`, the range
 *   of the session that holds its records now.
 *
 * The changelog holds one entry per session held, open or closed (`start`, key → `end`, accumulator):
 * restored with the stream time, the sessions whose end + lateness it has passed are the closed ones.
 */
import { IllegalStateError, UserCodeError } from '../errors.ts';
import type { Aggregator } from './aggregators.ts';
import type { ResolvedSessionAssigner } from './assigners.ts';
import {
  type AddOutcome,
  compareResults,
  type StoreChanges,
  type StoreEntry,
  type WindowResult,
  type WindowStateStore,
  type StoreOptions,
} from './state-store.ts';
import { insertByStart, newSession, overlapping, retraction, type Session } from './session-list.ts';
import { checkClockOptions, StreamClock } from './stream-clock.ts';

export type SessionStoreOptions = StoreOptions<ResolvedSessionAssigner>;

export class SessionStore implements WindowStateStore {
  readonly #gapMs: number;
  readonly #latenessMs: number;
  readonly #update: boolean;
  readonly #aggregator: Aggregator<unknown, unknown, unknown>;
  readonly #clock: StreamClock;

  /** Per key, its sessions sorted by start; they never overlap. `null` is a key of its own. */
  readonly #sessions = new Map<string | null, Session[]>();
  #open = 0;
  /** Lower bounds of the smallest end of the open and of the closed sessions: collect() sweeps past them only. */
  #minOpenEnd = Infinity;
  #minClosedEnd = Infinity;
  #dirty: Session[] = [];
  #logged: Session[] = [];
  #deletes: StoreChanges['deletes'] = [];
  /** Sessions a reader saw that were merged away since the last collect (update mode). */
  #retracted: Session[] = [];

  constructor(options: SessionStoreOptions) {
    const { gapMs } = options.assigner;
    if (!(gapMs > 0) || !Number.isFinite(gapMs))
      throw new IllegalStateError(`session gap must be positive, got ${gapMs}`);
    const initial = options.initialStreamTime ?? -Infinity;
    checkClockOptions(options.latenessMs, options.idleTimeoutMs, initial);
    this.#gapMs = gapMs;
    this.#latenessMs = options.latenessMs;
    this.#update = options.emit === 'update';
    this.#aggregator = options.aggregator;
    this.#clock = new StreamClock(options.idleTimeoutMs, initial, options.externalClock ?? false);
  }

  get streamTime(): number {
    return this.#clock.time;
  }

  /** Number of open sessions (a closed one kept to recognise late records does not count). */
  get openWindows(): number {
    return this.#open;
  }

  /**
   * Adds one record (closed and late as in the module comment, stream time as before this record);
   * then stream time becomes `max(streamTime, eventTime)`. `replay` adds rebuild state without marking
   * sessions changed for update emission. If the aggregator throws, nothing changes (stream time
   * included) and the error is re-thrown.
   */
  add(key: string | null, eventTime: number, value: unknown, wallNow: number, replay = false): AddOutcome {
    if (!Number.isFinite(eventTime)) {
      throw new UserCodeError(`event time is not a finite number: ${String(eventTime)}`);
    }
    const closedUpTo = this.#clock.time - this.#latenessMs;
    const from = eventTime;
    const to = eventTime + this.#gapMs;
    const list = this.#sessions.get(key);
    // The sessions overlapped: the first has the smallest end (one of them is closed iff the first is).
    const [first, last] = overlapping(list, from, to);
    const earliest = first <= last ? (list![first] as Session) : undefined;
    const late =
      earliest === undefined
        ? to <= closedUpTo
        : earliest.end <= closedUpTo || (to <= closedUpTo && from < earliest.start);
    if (late) {
      this.#clock.noteRecord(eventTime, wallNow);
      return 'late';
    }

    // First compute the new accumulator (user code may throw), then change the sessions.
    const aggregator = this.#aggregator;
    let acc = aggregator.add(earliest === undefined ? aggregator.init() : earliest.acc, value);
    for (let i = first + 1; i <= last; i++) acc = aggregator.merge(acc, (list![i] as Session).acc);

    let session: Session;
    if (earliest === undefined) {
      session = this.#create(key, from, to, acc);
      if (list) list.splice(first, 0, session);
      else this.#sessions.set(key, [session]);
    } else {
      session = earliest;
      const end = Math.max(to, (list![last] as Session).end);
      for (let i = first + 1; i <= last; i++) this.#mergeAway(list![i] as Session, session, replay);
      if (last > first) list!.splice(first + 1, last - first);
      if (from < session.start) {
        this.#unlog(session);
        session.start = from;
      }
      session.end = end;
      session.acc = acc;
    }
    if (!session.logged) {
      session.logged = true;
      this.#logged.push(session);
    }
    if (this.#update && replay) {
      // Replayed records were emitted before the restart: the reader saw the session as it is now.
      session.shownStart = session.start;
      session.shownEnd = session.end;
    } else if (this.#update && !session.dirty) {
      session.dirty = true;
      this.#dirty.push(session);
    }
    this.#clock.noteRecord(eventTime, wallNow);
    return 'added';
  }

  advanceIdle(wallNow: number): void {
    this.#clock.advanceIdle(wallNow);
  }

  holdIdle(wallNow: number): void {
    this.#clock.holdIdle(wallNow);
  }

  /**
   * End of batch: the retractions and results due per the emit mode, sorted by start then key; closes
   * the sessions stream time has passed and forgets the closed ones no record can reach any more. A
   * session whose aggregator `result()` throws comes back with `error` set.
   */
  collect(): WindowResult[] {
    const results: WindowResult[] = [];
    for (const session of this.#retracted) {
      let into = session.mergedInto as Session;
      while (into.state === 'gone' && into.mergedInto) into = into.mergedInto;
      results.push(retraction(session, into));
    }
    this.#retracted = [];
    const closedUpTo = this.#clock.time - this.#latenessMs;
    if (closedUpTo >= this.#minOpenEnd || closedUpTo >= this.#minClosedEnd + this.#gapMs) {
      this.#sweep(closedUpTo, results);
    }
    for (const session of this.#dirty) {
      session.dirty = false;
      if (session.state === 'open') this.#emit(session, false, results);
    }
    this.#dirty = [];
    results.sort(compareResults);
    return results;
  }

  /**
   * The changes since the last call, for the changelog: every session changed (open, or closed since —
   * kept, without accumulator, until forgotten) and the entries no longer held — merged away, moved to
   * another start, or forgotten.
   */
  drainChanges(): StoreChanges {
    const puts: StoreChanges['puts'] = [];
    for (const session of this.#logged) {
      session.logged = false;
      if (session.state === 'gone') continue;
      puts.push({ start: session.start, key: session.key, acc: session.acc, end: session.end });
      session.loggedStart = session.start;
    }
    const deletes = this.#deletes;
    this.#logged = [];
    this.#deletes = [];
    return { puts, deletes };
  }

  /** Puts a session back as the changelog holds it (not reported as a change). */
  restoreEntry(start: number, key: string | null, acc: unknown, end?: number): void {
    if (end === undefined || !(end > start)) {
      throw new IllegalStateError(`a session entry needs an end after its start (${start}), got ${end}`);
    }
    const list = this.#sessions.get(key);
    const held = list?.find((s) => s.start === start);
    const session = held ?? this.#create(key, start, end, acc);
    if (end < this.#minOpenEnd) this.#minOpenEnd = end;
    session.end = end;
    session.acc = acc;
    session.loggedStart = start;
    session.shownStart = start;
    session.shownEnd = end;
    if (held) return;
    if (list) insertByStart(list, session);
    else this.#sessions.set(key, [session]);
  }

  /** Forgets a restored session (a tombstone read after it), or one whose entry could not be written. */
  restoreDelete(start: number, key: string | null): void {
    const list = this.#sessions.get(key);
    const at = list ? list.findIndex((s) => s.start === start) : -1;
    if (at < 0) return;
    const session = list![at] as Session;
    if (session.state === 'open') this.#open--;
    session.state = 'gone';
    list!.splice(at, 1);
    if (list!.length === 0) this.#sessions.delete(key);
  }

  /**
   * The stream time the restored state had; it never moves backwards. The restored sessions it has
   * closed were emitted before the state was written: they are the closed ones kept.
   */
  restoreStreamTime(streamTime: number): void {
    this.#clock.restore(streamTime);
    const closedUpTo = this.#clock.time - this.#latenessMs;
    for (const list of this.#sessions.values()) {
      for (const session of list) {
        if (session.state !== 'open' || session.end > closedUpTo) continue;
        session.state = 'closed';
        session.acc = undefined;
        this.#open--;
        if (session.end < this.#minClosedEnd) this.#minClosedEnd = session.end;
      }
    }
  }

  /** With `externalClock`, stream time moves only here (see `WindowStore.advanceTo`). */
  advanceTo(streamTime: number, wallNow?: number): void {
    this.#clock.advanceTo(streamTime, wallNow);
  }

  /** The key's open sessions whose range intersects `[from, to)`, by start. */
  entriesOf(key: string | null, from: number, to: number): StoreEntry[] {
    const entries: StoreEntry[] = [];
    for (const s of this.#sessions.get(key) ?? []) {
      if (s.state === 'open' && s.start < to && s.end > from) entries.push({ start: s.start, end: s.end, acc: s.acc });
    }
    return entries;
  }

  #create(key: string | null, start: number, end: number, acc: unknown): Session {
    this.#open++;
    if (end < this.#minOpenEnd) this.#minOpenEnd = end;
    return newSession(key, start, end, acc);
  }

  /** Its changelog entry (under the start it had) is to be deleted. */
  #unlog(session: Session): void {
    if (session.loggedStart === undefined) return;
    this.#deletes.push({ start: session.loggedStart, key: session.key });
    session.loggedStart = undefined;
  }

  #mergeAway(session: Session, into: Session, replay: boolean): void {
    session.state = 'gone';
    session.mergedInto = into;
    session.acc = undefined;
    this.#open--;
    this.#unlog(session);
    if (this.#update && !replay && session.shownStart !== undefined) this.#retracted.push(session);
  }

  /** Closes the sessions stream time has passed (emitting them) and forgets the closed ones out of reach. */
  #sweep(closedUpTo: number, results: WindowResult[]): void {
    const forgetUpTo = closedUpTo - this.#gapMs;
    let minOpen = Infinity;
    let minClosed = Infinity;
    for (const [key, list] of this.#sessions) {
      let kept = 0;
      for (const session of list) {
        if (session.state === 'open' && session.end <= closedUpTo) {
          if (!this.#update || session.dirty) this.#emit(session, true, results);
          session.state = 'closed';
          session.acc = undefined;
          this.#open--;
        }
        if (session.state === 'closed' && session.end <= forgetUpTo) {
          session.state = 'gone';
          this.#unlog(session);
          continue;
        }
        list[kept++] = session;
        if (session.state === 'open') minOpen = Math.min(minOpen, session.end);
        else minClosed = Math.min(minClosed, session.end);
      }
      list.length = kept;
      if (kept === 0) this.#sessions.delete(key);
    }
    this.#minOpenEnd = minOpen;
    this.#minClosedEnd = minClosed;
  }

  /**
   * A session's result. In update mode a reader that saw it under another start (a late record moved
   * its start) is told first that the old one is gone. A throwing `result()` (user code) fails that
   * session alone: it comes back with `error`, for the caller to dead-letter.
   */
  #emit(session: Session, final: boolean, results: WindowResult[]): void {
    if (this.#update) {
      if (session.shownStart !== undefined && session.shownStart !== session.start) {
        results.push(retraction(session, session));
      }
      session.shownStart = session.start;
      session.shownEnd = session.end;
    }
    const base = { key: session.key, windowStart: session.start, windowEnd: session.end, final };
    try {
      results.push({ ...base, value: this.#aggregator.result(session.acc) });
    } catch (error) {
      results.push({ ...base, value: undefined, error });
    }
  }
}
