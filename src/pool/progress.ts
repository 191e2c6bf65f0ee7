/**
 * Where a worker thread is in its batch, in memory shared with the main thread: the partition and
 * record it is working on, a counter of records begun and the phase (processing or publishing).
 * Writing it costs a few stores per record, no message. When a worker hangs or dies, the main thread
 * reads it to name the record that was in user code — the suspect of a poison pill — and its
 * watchdog tells a hung record (no progress while processing) from a slow publish (Kafka's own
 * retries, never a reason to kill the worker).
 */

export type Phase = 'idle' | 'processing' | 'publishing';
const PHASES: readonly Phase[] = ['idle', 'processing', 'publishing'];

const PHASE = 0;
const PARTITION = 1;
const OFFSET = 2;
const SUB = 3;
const COUNTER = 4;
const SLOTS = 5;

/** A record being processed: its partition (index into the batch's partitions) and position. */
export interface Position {
  /** Index of the partition in the batch request. */
  partitionIndex: number;
  offset: number;
  /** Entry in a repartition block; -1 for a record of its own. */
  sub: number;
}

export class Progress {
  readonly buffer: SharedArrayBuffer;
  readonly #slots: Float64Array;

  constructor(buffer: SharedArrayBuffer = new SharedArrayBuffer(SLOTS * 8)) {
    this.buffer = buffer;
    this.#slots = new Float64Array(buffer);
  }

  /** Worker side: starts a phase (and, processing, a partition of the batch). */
  phase(phase: Phase, partitionIndex = -1): void {
    this.#slots[PARTITION] = partitionIndex;
    this.#slots[OFFSET] = -1;
    this.#slots[SUB] = -1;
    this.#slots[PHASE] = PHASES.indexOf(phase);
  }

  /** Worker side: user code is about to run for this record (or block entry). */
  at(offset: number, sub = -1): void {
    const slots = this.#slots;
    slots[OFFSET] = offset;
    slots[SUB] = sub;
    slots[COUNTER] = (slots[COUNTER] ?? 0) + 1;
  }

  /** Main side. */
  get current(): Phase {
    return PHASES[this.#slots[PHASE] ?? 0] ?? 'idle';
  }
  get counter(): number {
    return this.#slots[COUNTER] ?? 0;
  }
  /** The record in hand, when processing one. */
  get position(): Position | undefined {
    const [phase, partitionIndex, offset, sub] = [
      this.#slots[PHASE],
      this.#slots[PARTITION],
      this.#slots[OFFSET],
      this.#slots[SUB],
    ];
    if (phase !== 1 || partitionIndex === undefined || partitionIndex < 0 || offset === undefined || offset < 0)
      return undefined;
    return { partitionIndex, offset, sub: sub ?? -1 };
  }
}

/** For tasks run outside a worker (tests): records nothing anyone reads. */
export const NO_PROGRESS = new Progress();
