/**
 * The latency runs' bookkeeping, apart from Kafka: what the input held (windows, when each became
 * closable, the records the stateless job keeps) and what each system's output gave, compared.
 */
import { WINDOW_MS, windowKey } from './data.ts';

/** The page-views job's allowed lateness: a window [s, s + W) may close once event time reaches s + W + 5 s. */
export const LATENESS_MS = 5_000;

/** What the input topic holds, recomputed after the run. */
export interface Expected {
  /** (page|windowStart) → records. */
  windows: Map<string, number>;
  /** Window index k ([k·W, (k+1)·W)) → produce time of the first record with event time ≥ its end + lateness. */
  closableAt: Map<number, number>;
  /** seq → produce time, for the records the stateless job keeps (NaN: not kept or not produced). */
  keptSentAt: Float64Array;
  kept: number;
}

const field = (text: string, name: string): number => {
  const at = text.indexOf(`"${name}":`);
  if (at < 0) return NaN;
  return Number.parseInt(text.slice(at + name.length + 3, at + name.length + 20), 10);
};

/** Builds {@link Expected} from the input records, in any order (as read back from the input topic). */
export class InputRecap {
  readonly #windows = new Map<string, number>();
  readonly #firstByBucket = new Map<number, number>();
  readonly #keptSentAt: Float64Array;
  #kept = 0;

  constructor(capacity: number) {
    this.#keptSentAt = new Float64Array(capacity).fill(NaN);
  }

  /** One input value (the generator's JSON) and its produce time. */
  add(value: string, producedAt: number): void {
    const e = JSON.parse(value) as { page: string; user: string; ts: number; seq: number };
    const key = windowKey(e.page, Math.floor(e.ts / WINDOW_MS) * WINDOW_MS);
    this.#windows.set(key, (this.#windows.get(key) ?? 0) + 1);
    // This record makes closable every window k with (k + 1)·W + lateness ≤ ts: bucket = the largest such k.
    const bucket = Math.floor((e.ts - LATENESS_MS) / WINDOW_MS) - 1;
    if (!(this.#firstByBucket.get(bucket)! <= producedAt)) this.#firstByBucket.set(bucket, producedAt);
    if (!e.user.startsWith('bot-') && e.seq < this.#keptSentAt.length) {
      this.#keptSentAt[e.seq] = producedAt;
      this.#kept++;
    }
  }

  expected(): Expected {
    // closableAt(k) = the earliest produce time over every bucket ≥ k (a suffix minimum).
    const closableAt = new Map<number, number>();
    let earliest = Infinity;
    for (const bucket of [...this.#firstByBucket.keys()].sort((a, b) => b - a)) {
      earliest = Math.min(earliest, this.#firstByBucket.get(bucket)!);
      closableAt.set(bucket, earliest);
    }
    return { windows: this.#windows, closableAt, keptSentAt: this.#keptSentAt, kept: this.#kept };
  }
}

export interface Outcome {
  samples: number[];
  expected: number;
  missing: number;
  wrong: string[];
}

/** Window results as read: first arrival, value, and any second result for the same window. */
export class WindowedOutput {
  readonly #seen = new Map<string, { at: number; value: number; extra: number }>();

  add(value: string, at: number): void {
    const v = JSON.parse(value) as { key: string; windowStart: number; value: number };
    const key = windowKey(v.key, v.windowStart);
    const prior = this.#seen.get(key);
    if (prior) prior.extra++;
    else this.#seen.set(key, { at, value: v.value, extra: 0 });
  }

  #measured(e: Expected, from: number, until: number): string[] {
    return [...e.windows.keys()].filter((k) => {
      const start = Number(k.slice(k.lastIndexOf('|') + 1));
      return start >= from && start + WINDOW_MS <= until;
    });
  }

  /** Every measured window has its result (the run's last windows may never close: not waited for). */
  complete(e: Expected, from: number, until: number): boolean {
    return this.#measured(e, from, until).every((k) => this.#seen.has(k));
  }

  result(e: Expected, from: number, until: number): Outcome {
    const measured = this.#measured(e, from, until);
    const samples: number[] = [];
    let missing = 0;
    for (const k of measured) {
      const got = this.#seen.get(k);
      const closable = e.closableAt.get(Number(k.slice(k.lastIndexOf('|') + 1)) / WINDOW_MS);
      if (!got) missing++;
      else if (closable !== undefined) samples.push(got.at - closable);
    }
    let differ = 0;
    let twice = 0;
    let unexpected = 0;
    for (const [k, got] of this.#seen) {
      const n = e.windows.get(k);
      if (n === undefined) unexpected++;
      else if (n !== got.value) differ++;
      if (got.extra > 0) twice++;
    }
    const wrong = [
      ...(differ > 0 ? [`${differ} windows differ`] : []),
      ...(twice > 0 ? [`${twice} windows written more than once`] : []),
      ...(unexpected > 0 ? [`${unexpected} unexpected windows`] : []),
    ];
    return { samples, expected: measured.length, missing, wrong };
  }
}

/** Stateless outputs by `seq`: first arrival and how many times each came. */
export class StatelessOutput {
  readonly #at: Float64Array;
  readonly #times: Uint8Array;
  #received = 0;
  #outOfRange = 0;

  constructor(capacity: number) {
    this.#at = new Float64Array(capacity);
    this.#times = new Uint8Array(capacity);
  }

  add(value: string, at: number): void {
    const seq = field(value, 'seq');
    if (!(seq >= 0 && seq < this.#times.length)) {
      this.#outOfRange++;
      return;
    }
    if (this.#times[seq] === 0) {
      this.#at[seq] = at;
      this.#received++;
    }
    if (this.#times[seq]! < 255) this.#times[seq]!++;
  }

  complete(e: Expected, _from: number, _until: number): boolean {
    return this.#received >= e.kept;
  }

  result(e: Expected, from: number, until: number): Outcome {
    const samples: number[] = [];
    let missing = 0;
    let twice = 0;
    let unexpected = this.#outOfRange;
    let expected = 0;
    for (let seq = 0; seq < this.#times.length; seq++) {
      const sent = e.keptSentAt[seq]!;
      const times = this.#times[seq]!;
      if (Number.isNaN(sent)) {
        if (times > 0) unexpected++;
        continue;
      }
      if (times === 0) missing++;
      if (times > 1) twice++;
      if (sent >= from && sent < until) {
        expected++;
        if (times > 0) samples.push(this.#at[seq]! - sent);
      }
    }
    const wrong = [
      ...(twice > 0 ? [`${twice} records written more than once`] : []),
      ...(unexpected > 0 ? [`${unexpected} records that should have been dropped`] : []),
    ];
    return { samples, expected, missing, wrong };
  }
}
