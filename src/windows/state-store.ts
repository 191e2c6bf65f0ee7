/**
 * The state-store surface of a window store (Kafka Streams' `WindowStore` with change logging, as the
 * task sees it): restoring entries and stream time from the changelog, draining what changed for the
 * next changelog write. `WindowStore` keeps it in memory; a store larger than memory would implement
 * the same surface over a disk-backed map. And the order results are emitted in.
 */

/** One result of a (key, window): the aggregate as of its window's close (`final`) or as of now. */
export interface WindowResult {
  key: string | null;
  windowStart: number;
  windowEnd: number;
  value: unknown;
  final: boolean;
  /** The aggregator's `result()` threw: no value; the caller dead-letters the window. */
  error?: unknown;
}

/** What changed in the store since the last drain: entries to write, and entries of closed windows. */
export interface StoreChanges {
  puts: Array<{ start: number; key: string | null; acc: unknown }>;
  deletes: Array<{ start: number; key: string | null }>;
}

/** The state-store surface a task uses besides adding records (see the module comment). */
export interface WindowStateStore {
  readonly openWindows: number;
  readonly streamTime: number;
  restoreEntry(start: number, key: string | null, acc: unknown): void;
  restoreDelete(start: number, key: string | null): void;
  restoreStreamTime(streamTime: number): void;
  drainChanges(): StoreChanges;
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
