/**
 * Window assigners: which `[start, end)` windows an event time belongs to. Windows are aligned to the
 * epoch (like Spark and Kafka Streams): a tumbling window of size S starts at multiples of S; a
 * sliding window of size S and slide D starts at multiples of D and an event belongs to every window
 * whose range contains it (S / D of them when D divides S). Session windows are not aligned: a record
 * at event time t opens the session `[t, t + gap)`, and the sessions of one key whose ranges overlap
 * merge (Spark's `session_window`, Kafka Streams' `SessionWindows`; `session-store.ts`).
 */
import { type Duration, parseDuration } from '../util/duration.ts';

export interface TumblingAssigner {
  readonly kind: 'tumbling';
  readonly size: Duration;
}
export interface SlidingAssigner {
  readonly kind: 'sliding';
  readonly size: Duration;
  readonly slide: Duration;
}
export interface SessionAssigner {
  readonly kind: 'session';
  readonly gap: Duration;
}
export type WindowAssigner = TumblingAssigner | SlidingAssigner | SessionAssigner;

/** Tumbling (fixed, non-overlapping) windows of `size`. */
export function tumbling(size: Duration): TumblingAssigner {
  return { kind: 'tumbling', size };
}

/** Sliding (hopping) windows of `size`, one starting every `slide`. */
export function sliding(size: Duration, slide: Duration): SlidingAssigner {
  return { kind: 'sliding', size, slide };
}

/**
 * Session windows: a key's session grows while its records come within `gap` of each other. A
 * record at event time t alone is the session `[t, t + gap)`; sessions of one key whose ranges
 * overlap merge into one from the earliest record to the latest record + `gap` (two records exactly
 * `gap` apart are two sessions). A late record (within the window's `lateness`) that bridges two
 * sessions merges them, with the aggregator's `merge`: custom aggregators used with sessions must
 * merge correctly.
 */
export function session(gap: Duration): SessionAssigner {
  return { kind: 'session', gap };
}

/** Tumbling or sliding windows with their durations resolved to milliseconds (validated by the job plan). */
export interface ResolvedAssigner {
  readonly kind: 'tumbling' | 'sliding';
  readonly sizeMs: number;
  readonly slideMs: number;
}

/** Session windows with their gap resolved to milliseconds. */
export interface ResolvedSessionAssigner {
  readonly kind: 'session';
  readonly gapMs: number;
}

/** Any assigner, resolved: what a job's window plan holds. */
export type ResolvedWindowAssigner = ResolvedAssigner | ResolvedSessionAssigner;

export function resolveAssigner(assigner: WindowAssigner): ResolvedWindowAssigner | undefined {
  if (assigner.kind === 'session') {
    const gapMs = parseDuration(assigner.gap);
    return gapMs === undefined || gapMs <= 0 ? undefined : { kind: 'session', gapMs };
  }
  const sizeMs = parseDuration(assigner.size);
  const slideMs = assigner.kind === 'sliding' ? parseDuration(assigner.slide) : sizeMs;
  if (sizeMs === undefined || slideMs === undefined || sizeMs <= 0 || slideMs <= 0) return undefined;
  return { kind: assigner.kind, sizeMs, slideMs };
}
