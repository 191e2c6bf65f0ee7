/**
 * A key's open windows in a window store, for queryable state (`WindowStateStore.entriesOf`). The
 * store keeps its windows by start, each with its entries by key; a query looks the key up in every
 * open window: O(open windows), not O(entries). A store holds few window starts at a time (about
 * (size + lateness) / slide), so no per-key index is kept: it would cost memory for every entry of
 * every task, queried or not.
 */
import { type StoreEntry } from './state-store.ts';

/** What a window store keeps per window start, as this reader needs it. */
export interface WindowSlotView {
  readonly start: number;
  readonly end: number;
  readonly entries: ReadonlyMap<string | null, { readonly acc: unknown }>;
}

/** The windows of `slots` that hold `key` and intersect `[from, to)`, by start (accumulators not copied). */
export function entriesIn(
  slots: ReadonlyMap<number, WindowSlotView>,
  key: string | null,
  from: number,
  to: number,
): StoreEntry[] {
  const found: StoreEntry[] = [];
  if (!(from < to)) return found; // an empty range intersects nothing
  for (const slot of slots.values()) {
    if (slot.start >= to || slot.end <= from) continue;
    const entry = slot.entries.get(key);
    if (entry !== undefined) found.push({ start: slot.start, end: slot.end, acc: entry.acc });
  }
  return found.sort((a, b) => a.start - b.start);
}
