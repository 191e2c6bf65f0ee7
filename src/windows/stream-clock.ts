/**
 * The stream time of one partition of an aggregating stage and its idle clock, and the checks of the
 * options every store shares (pure: the caller passes wall-clock time in), for `WindowStore` and
 * `SessionStore` alike. The rules (design §2):
 *
 * - stream time is the largest event time seen (`noteRecord`), or, with an external clock, only what
 *   the caller sets (`advanceTo`: a re-keyed stage's watermark); it never moves backwards;
 * - idle advancement: when no record came for `idleTimeoutMs` of wall time (and, with an external
 *   clock, stream time was not advanced either), stream time follows wall-clock time from the last
 *   record on. It needs a first record, or a finite restored stream time (then the first call starts
 *   the idle clock). A partition that is behind (records waiting) is not idle (`holdIdle`).
 */
import { IllegalStateError } from '../errors.ts';

/** Throws for a lateness, idle timeout or initial stream time no store can run with. */
export function checkClockOptions(latenessMs: number, idleTimeoutMs: number, initialStreamTime: number): void {
  if (!(latenessMs >= 0) || !Number.isFinite(latenessMs)) {
    throw new IllegalStateError(`window lateness must be a finite number >= 0, got ${latenessMs}`);
  }
  if (!(idleTimeoutMs >= 0) || !Number.isFinite(idleTimeoutMs)) {
    throw new IllegalStateError(`idle timeout must be a finite number >= 0, got ${idleTimeoutMs}`);
  }
  if (Number.isNaN(initialStreamTime) || initialStreamTime === Infinity) {
    throw new IllegalStateError(`initial stream time must be finite or -Infinity, got ${initialStreamTime}`);
  }
}

export class StreamClock {
  readonly #idleTimeoutMs: number;
  readonly #externalClock: boolean;
  #time: number;
  /** Stream time after the last record, and the wall time it arrived: the idle clock. */
  #anchorStreamTime: number;
  #anchorWallTime: number | undefined;

  constructor(idleTimeoutMs: number, initialStreamTime: number, externalClock: boolean) {
    this.#idleTimeoutMs = idleTimeoutMs;
    this.#externalClock = externalClock;
    this.#time = initialStreamTime;
    this.#anchorStreamTime = initialStreamTime;
  }

  get time(): number {
    return this.#time;
  }

  /** A record at `eventTime` was taken (added or late). */
  noteRecord(eventTime: number, wallNow: number): void {
    if (!this.#externalClock && eventTime > this.#time) this.#time = eventTime;
    this.#anchorStreamTime = this.#time;
    this.#anchorWallTime = wallNow;
  }

  advanceIdle(wallNow: number): void {
    if (this.#idleTimeoutMs <= 0) return;
    if (this.#anchorWallTime === undefined) {
      if (Number.isFinite(this.#anchorStreamTime)) this.#anchorWallTime = wallNow;
      return;
    }
    const idleFor = wallNow - this.#anchorWallTime;
    if (idleFor < this.#idleTimeoutMs) return;
    const advanced = this.#anchorStreamTime + idleFor;
    if (advanced > this.#time) this.#time = advanced;
  }

  holdIdle(wallNow: number): void {
    if (this.#anchorWallTime !== undefined) {
      this.#anchorWallTime = wallNow;
      this.#anchorStreamTime = this.#time;
    }
  }

  /** The stream time the restored state had; it never moves backwards. */
  restore(streamTime: number): void {
    if (streamTime > this.#time) this.#time = this.#anchorStreamTime = streamTime;
  }

  advanceTo(streamTime: number, wallNow?: number): void {
    if (streamTime > this.#time) {
      this.#time = streamTime;
      // The idle clock restarts here only when told when "here" is; otherwise it keeps counting from
      // the last record, at the stream time of the last record (never the same wall time twice).
      if (wallNow !== undefined) {
        this.#anchorStreamTime = streamTime;
        this.#anchorWallTime = wallNow;
      }
    }
  }
}
