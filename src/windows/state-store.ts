/**
 * The state-store surface of a window store (Kafka Streams' `WindowStore` / `SessionStore` with change
 * logging, as the task sees it): adding records, stream time and idle advancement, collecting the
 * results due at the end of a batch, restoring entries and stream time from the changelog, draining
 * what changed for the next changelog write, and reading a key's open entries. `WindowStore` (tumbling
 * and sliding windows) and `SessionStore` (session windows) keep it in memory; a store larger than
 * memory would implement the same surface over a disk-backed map. And the order results are emitted in.
 */
import type { Aggregator } from './aggregators.ts';

/** One result of a (key, window): the aggregate as of its window's close (`final`) or as of now. */
export interface WindowResult {
  key: string | null;
  windowStart: number;
  windowEnd: number;
  value: unknown;
  final: boolean;
  /** The aggregator's `result()` threw: no value; the caller dead-letters the window. */
  error?: unknown;
  /**
   * A retraction (session windows, `update` mode): the session `[windowStart, windowEnd)` that was
   * emitted before is gone, merged into this one; `value` is `null`.
   */
  mergedInto?: { windowStart: number; windowEnd: number };
}

/** What changed in the store since the last drain: entries to write, and entries no longer held. */
export interface StoreChanges {
  /** `end`: a session's end (session stores only; a window's end follows from its start). */
  puts: Array<{ start: number; key: string | null; acc: unknown; end?: number }>;
  deletes: Array<{ start: number; key: string | null }>;
}

/** One open entry of a key: its range and accumulator. */
export interface StoreEntry {
  start: number;
  end: number;
  acc: unknown;
}

/** What a store is built with: its assigner (resolved), and the rules every store shares. */
export interface StoreOptions<A> {
  assigner: A;
  /** Allowed lateness in ms, >= 0. */
  latenessMs: number;
  emit: 'final' | 'update';
  aggregator: Aggregator<unknown, unknown, unknown>;
  /** Wall-clock ms without records after which stream time follows wall-clock time; 0 = never. */
  idleTimeoutMs: number;
  /** Restored stream time (default -Infinity). */
  initialStreamTime?: number;
  /** Stream time is driven by the caller through `advanceTo()`, not by the records added. */
  externalClock?: boolean;
}

export type AddOutcome = 'added' | 'late';

/** The state-store surface a task uses (see the module comment). */
export interface WindowStateStore {
  /** Number of (key, window) entries held. */
  readonly openWindows: number;
  readonly streamTime: number;
  /** Adds a record; `'late'` when it can go into no open window (it then changes only stream time). */
  add(key: string | null, eventTime: number, value: unknown, wallNow: number, replay?: boolean): AddOutcome;
  /** Idle advancement: stream time follows the wall clock after the idle timeout without records. */
  advanceIdle(wallNow: number): void;
  /** The partition is behind (records waiting): it is not idle. */
  holdIdle(wallNow: number): void;
  /** End of batch: the results due, in `compareResults` order; forgets closed windows. */
  collect(): WindowResult[];
  drainChanges(): StoreChanges;
  /** Puts an entry back as the changelog holds it (`end`: a session's end). */
  restoreEntry(start: number, key: string | null, acc: unknown, end?: number): void;
  restoreDelete(start: number, key: string | null): void;
  restoreStreamTime(streamTime: number): void;
  /** External clock: stream time moves only here. Never backwards. */
  advanceTo(streamTime: number, wallNow?: number): void;
  /** The key's open entries whose range intersects `[from, to)`, by start (queryable state). */
  entriesOf(key: string | null, from: number, to: number): StoreEntry[];
}

/** Null first, then string order (UTF-16 code units, like `Array.prototype.sort`). */
function compareKeys(a: string | null, b: string | null): number {
  if (a === b) return 0;
  if (a === null) return -1;
  if (b === null) return 1;
  return a < b ? -1 : 1;
}

export function compareResults(a: WindowResult, b: WindowResult): number {
  return a.windowStart - b.windowStart || compareKeys(a.key, b.key);
}
