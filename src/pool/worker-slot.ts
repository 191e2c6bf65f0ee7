/**
 * One worker thread as the pool sees it: the thread, its requests waiting for an answer, and what the
 * watchdog reads of its shared progress (progress.ts) — whether it is stalled on a record in user
 * code, and which record that is.
 */
import { Worker } from 'node:worker_threads';
import { Progress } from './progress.ts';
import { type HeldTask, type WorkerInit, type WorkerResponse } from './protocol.ts';

/** The record a failed worker was running user code on. */
export interface Suspect {
  topic: string;
  partition: number;
  offset: number;
  /** Entry of a repartition block, -1 for a record of its own. */
  sub: number;
}

export type Pending = { resolve: (r: WorkerResponse) => void; reject: (e: Error) => void };

export interface Slot {
  worker: Worker;
  pending: Map<number, Pending>;
  busyMs: number;
  progress: Progress;
  /** The batch in flight: its partitions by index, to name a suspect. */
  batch: { requestId: number; partitions: Array<{ topic: string; partition: number }> } | undefined;
  /** Watchdog: the progress counter last seen, and since when it has not moved while processing. */
  lastCounter: number;
  stalledSince: number | undefined;
  /** The tasks the worker reported holding. */
  held: HeldTask[];
  /** Why the worker could not start (a replacement that failed): requests to it fail at once. */
  startError: Error | undefined;
}

const fromSources = import.meta.url.endsWith('.ts');

/**
 * Each worker's young generation (V8's nursery, two semi-spaces of a third each), in MiB. V8's default
 * follows the machine's memory (48 MiB here, for every thread); chosen by measurement
 * (docs/benchmarks.md): smaller costs throughput in scavenges, larger costs resident memory.
 */
export const WORKER_YOUNG_GENERATION_MB = 12;

function spawn(init: WorkerInit, heapBytes: number): Worker {
  const entry = new URL(fromSources ? '../worker/worker-entry.ts' : '../worker/worker-entry.js', import.meta.url);
  const resourceLimits = {
    maxOldGenerationSizeMb: Math.max(16, Math.round(heapBytes / (1024 * 1024))),
    maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB,
  };
  if (!fromSources) return new Worker(entry, { workerData: init, resourceLimits });
  // Running from TypeScript sources (tests, development): Node strips the types of worker-entry.ts
  // itself; the condition makes `sluice` (imported by the job) resolve to its sources too.
  return new Worker(entry, { workerData: init, resourceLimits, execArgv: ['--conditions=sluice-source'] });
}

/** A new worker thread for `init` (its `progress` buffer shared with it), its heap limited to `heapBytes`. */
export function startSlot(init: WorkerInit, heapBytes: number): Slot {
  return {
    worker: spawn(init, heapBytes),
    pending: new Map(),
    busyMs: 0,
    progress: new Progress(init.progress),
    batch: undefined,
    lastCounter: 0,
    stalledSince: undefined,
    held: [],
    startError: undefined,
  };
}

/**
 * How long the slot has been processing without its progress counter moving (0 when it moved, or
 * it is not processing a batch), as of `now`.
 */
export function stalledMs(slot: Slot, now: number): number {
  const counter = slot.progress.counter;
  if (slot.batch === undefined || slot.progress.current !== 'processing' || counter !== slot.lastCounter) {
    slot.lastCounter = counter;
    slot.stalledSince = undefined;
    return 0;
  }
  slot.stalledSince ??= now;
  return now - slot.stalledSince;
}

/** The record the slot's worker is (or was last) in user code on. */
export function suspectIn(slot: Slot): Suspect | undefined {
  const position = slot.progress.position;
  const batch = slot.batch;
  if (!position || !batch) return undefined;
  const p = batch.partitions[position.partitionIndex];
  return p ? { topic: p.topic, partition: p.partition, offset: position.offset, sub: position.sub } : undefined;
}
