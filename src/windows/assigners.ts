/**
 * Window assigners: which `[start, end)` windows an event time belongs to. Windows are aligned to the
 * epoch (like Spark and Kafka Streams): a tumbling window of size S starts at multiples of S; a
 * sliding window of size S and slide D starts at multiples of D and an event belongs to every window
 * whose range contains it (S / D of them when D divides S).
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
export type WindowAssigner = TumblingAssigner | SlidingAssigner;

/** Tumbling (fixed, non-overlapping) windows of `size`. */
export function tumbling(size: Duration): TumblingAssigner {
  return { kind: 'tumbling', size };
}

/** Sliding (hopping) windows of `size`, one starting every `slide`. */
export function sliding(size: Duration, slide: Duration): SlidingAssigner {
  return { kind: 'sliding', size, slide };
}

/** An assigner with its durations resolved to milliseconds (validated by the job plan). */
export interface ResolvedAssigner {
  readonly kind: 'tumbling' | 'sliding';
  readonly sizeMs: number;
  readonly slideMs: number;
}

export function resolveAssigner(assigner: WindowAssigner): ResolvedAssigner | undefined {
  const sizeMs = parseDuration(assigner.size);
  const slideMs = assigner.kind === 'sliding' ? parseDuration(assigner.slide) : sizeMs;
  if (sizeMs === undefined || slideMs === undefined || sizeMs <= 0 || slideMs <= 0) return undefined;
  return { kind: assigner.kind, sizeMs, slideMs };
}
