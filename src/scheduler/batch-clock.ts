/**
 * When batches are due, and a sleep the scheduler can cut short (stop, or work that cannot wait).
 */

/**
 * When the batch after one that was due at `due` (started at `startedAt`, done at `now`) is due.
 * Spark's rule: one interval after this one was due; if that time has passed, it starts at once and
 * its scheduling delay grows. One refinement: behind a backlog (`atOnce`), the next starts at once —
 * `batchInterval` sets how often a caught-up job emits, it does not throttle catching up (Spark's
 * DStreams would wait; Structured Streaming's default trigger does not).
 */
export function nextDue(due: number, interval: number, startedAt: number, now: number, atOnce: boolean): number {
  let next = due + interval;
  if (atOnce) next = Math.min(next, now);
  if (next < startedAt - 10 * interval) next = startedAt; // after a long stall, do not replay a storm of ticks
  return next;
}

export class Sleeper {
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(resolve, Math.max(0, ms));
    });
  }

  /** Ends the current sleep now. */
  wake(): void {
    clearTimeout(this.#timer);
    this.#wake?.();
  }
}
