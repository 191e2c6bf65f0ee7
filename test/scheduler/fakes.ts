/**
 * Small stand-ins for what the scheduler depends on: a pool whose batches, opens and restores answer
 * as a test scripts them, a receiver over an in-memory log per partition (it fills a real
 * BufferQueue), and an admin that keeps the group's committed offsets. Each records what it was
 * asked, for assertions; the pool and the admin also note the order of their calls in a shared log.
 */
import { type Admin } from 'kafkajs';
import pino from 'pino';
import { compileJob, type JobPlan } from '../../src/job/plan.ts';
import { count, defineJob, tumbling } from '../../src/index.ts';
import {
  type BatchRequest,
  type PartitionResult,
  type PartitionStart,
  type PartitionWork,
  type RestoredTask,
} from '../../src/pool/protocol.ts';
import { partitionId } from '../../src/pool/protocol.ts';
import { type BatchAnswer, type RestoreProgress, type Suspect, type WorkerPool } from '../../src/pool/worker-pool.ts';
import { type BufferQueue } from '../../src/queue/buffer-queue.ts';
import { type Receiver } from '../../src/receiver/receiver.ts';
import { packMessages, readRecords, type FetchedMessage, type PackedRecords } from '../../src/wire/record-codec.ts';

export const silent = pino({ level: 'silent' });

export const TOPIC = 'in';

/** Plans of each task kind: stateless (never in a batch without records), windowed (once rebuilt), re-keyed (writers always). */
export const plans = {
  stateless: (): JobPlan =>
    compileJob(defineJob({ name: 'j', input: { topics: [TOPIC] }, pipeline: (s) => s, output: { topic: 'out' } })),
  windowed: (): JobPlan =>
    compileJob(
      defineJob({
        name: 'j',
        input: { topics: [TOPIC] },
        pipeline: (s) => s.window(tumbling('10s')).aggregate(count()),
        output: { topic: 'out' },
      }),
    ),
  rekeyed: (): JobPlan =>
    compileJob(
      defineJob<{ k: string }>({
        name: 'j',
        input: { topics: [TOPIC] },
        pipeline: (s) =>
          s
            .keyBy((e) => e.k)
            .window(tumbling('10s'))
            .aggregate(count()),
        output: { topic: 'out' },
      }),
    ),
};

export type TP = { topic: string; partition: number };
export const tp = (partition: number, topic = TOPIC): TP => ({ topic, partition });
export const ids = (list: ReadonlyArray<TP>): string[] => list.map((p) => partitionId(p.topic, p.partition)).sort();

/** A fetched record as kafkajs delivers it. */
export function fetched(offset: number, value = `v${offset}`): FetchedMessage {
  return { offset: String(offset), timestamp: String(1_000 + offset), key: null, value: Buffer.from(value) };
}

/** Records at these offsets, packed as the receiver packs a fetch. */
export function packed(offsets: readonly number[]): PackedRecords {
  return packMessages(offsets.map((o) => fetched(o)));
}

/** Offsets packed into a partition's work. */
export function offsetsOf(work: PartitionWork): number[] {
  return [...readRecords(work.records)].map((r) => r.offset);
}

/** What a worker answers for one partition: it processed everything and commits past the last record. */
export function resultFor(work: PartitionWork, extra: Partial<PartitionResult> = {}): PartitionResult {
  const offsets = offsetsOf(work);
  const last = offsets[offsets.length - 1];
  return {
    topic: work.topic,
    partition: work.partition,
    outputs: new ArrayBuffer(0),
    outputCount: offsets.length,
    repartition: [],
    repartitionCount: 0,
    dead: [],
    watermark: null,
    changelog: new ArrayBuffer(0),
    changelogPartition: null,
    commit: last === undefined ? null : { offset: last + 1, metadata: null },
    committed: false,
    stats: {
      recordsIn: offsets.length,
      recordsOut: offsets.length,
      late: 0,
      dead: 0,
      duplicates: 0,
      replayed: 0,
      skipped: 0,
      changelog: 0,
      openWindows: 0,
      streamTime: null,
    },
    ...extra,
  };
}

export function answerFor(batch: Omit<BatchRequest, 'type' | 'requestId'>): BatchAnswer {
  return { partitions: batch.partitions.map((w) => resultFor(w)), processingMs: 1, publishMs: 1 };
}

export interface RunCall {
  worker: number;
  batch: Omit<BatchRequest, 'type' | 'requestId'>;
}

type Behaviour = (call: RunCall) => Promise<BatchAnswer>;

export interface OpenCall {
  worker: number;
  partitions: TP[];
}

export interface RestoreCall {
  worker: number;
  partitions: Array<TP & { start: PartitionStart }>;
  onProgress: ((progress: RestoreProgress) => void) | undefined;
}

/** What a worker answers for a restore: no changelog records, each task at its committed offset. */
export function restoredFor(call: RestoreCall): RestoredTask[] {
  return call.partitions.map((p) => ({
    topic: p.topic,
    partition: p.partition,
    records: 0,
    ms: 1,
    position: p.start.committedOffset,
  }));
}

export class FakePool {
  readonly calls: RunCall[] = [];
  readonly opens: OpenCall[] = [];
  readonly restores: RestoreCall[] = [];
  readonly dropped: TP[][] = [];
  /** The order of opens, restores and batches (and of the admin's reads, when it shares this log). */
  readonly log: string[];
  readonly #suspects = new Map<unknown, Suspect>();
  /** Which worker each partition goes to (default: partition number modulo `workers`). */
  router: (topic: string, partition: number) => number;
  /** How the next batches answer (default: every partition processed and committed). */
  behaviour: Behaviour = (call) => Promise.resolve(answerFor(call.batch));
  /** How opens answer (default: at once). */
  openBehaviour: (call: OpenCall) => Promise<void> = () => Promise.resolve();
  /** How restores answer (default: every task restored at its committed offset). */
  restoreBehaviour: (call: RestoreCall) => Promise<RestoredTask[]> = (call) => Promise.resolve(restoredFor(call));

  readonly workers: number;

  constructor(workers = 2, log: string[] = []) {
    this.workers = workers;
    this.log = log;
    this.router = (_topic, partition) => partition % workers;
  }

  route(topic: string, partition: number): number {
    return this.router(topic, partition);
  }
  runBatch(worker: number, batch: Omit<BatchRequest, 'type' | 'requestId'>): Promise<BatchAnswer> {
    const call = { worker, batch };
    this.calls.push(call);
    this.log.push(`batch ${ids(batch.partitions).join(',')}`);
    return this.behaviour(call);
  }
  open(worker: number, partitions: TP[]): Promise<void> {
    const call = { worker, partitions: partitions.map((p) => ({ topic: p.topic, partition: p.partition })) };
    this.opens.push(call);
    this.log.push(`open ${ids(partitions).join(',')}`);
    return this.openBehaviour(call);
  }
  restore(
    worker: number,
    partitions: Array<TP & { start: PartitionStart }>,
    onProgress?: (progress: RestoreProgress) => void,
  ): Promise<RestoredTask[]> {
    const call = { worker, partitions: partitions.map((p) => ({ ...p })), onProgress };
    this.restores.push(call);
    this.log.push(`restore ${ids(partitions).join(',')}`);
    return this.restoreBehaviour(call);
  }
  /** The starts each restore of a partition was given, oldest first. */
  startsOf(partition: number, topic = TOPIC): PartitionStart[] {
    return this.restores.flatMap((c) =>
      c.partitions.filter((p) => p.topic === topic && p.partition === partition).map((p) => p.start),
    );
  }
  /** Makes `error` a failure whose worker was in user code on `suspect`. */
  suspect(error: Error, suspect: Suspect): Error {
    this.#suspects.set(error, suspect);
    return error;
  }
  suspectOf(error: unknown): Suspect | undefined {
    return this.#suspects.get(error);
  }
  dropAll(partitions: TP[]): Promise<void> {
    this.dropped.push(partitions);
    return Promise.resolve();
  }
  busyMs(): number[] {
    return Array.from({ length: this.workers }, () => 0);
  }
  /** Every partition work sent so far, in order, with the worker it went to. */
  works(): Array<PartitionWork & { worker: number; batchId: number }> {
    return this.calls.flatMap((c) =>
      c.batch.partitions.map((w) => ({ ...w, worker: c.worker, batchId: c.batch.batchId })),
    );
  }
  asPool(): WorkerPool {
    return this as unknown as WorkerPool;
  }
}

type Offsets = Array<{ topic: string; partition: number; offset: number; metadata: string | null }>;

/**
 * A receiver over an in-memory log per partition. `deliver` appends to the log and buffers the
 * records (unless the partition is held); `seek` re-buffers the log from the offset, as a consumer
 * fetching again from there would.
 */
export class FakeReceiver {
  epoch = 1;
  healthy = true;
  readonly commits: Offsets[] = [];
  readonly holds: TP[][] = [];
  readonly seeks: Array<Array<TP & { offset: number }>> = [];
  readonly held = new Set<string>();
  /** How commits answer (default: they succeed and are stored by the admin, when one is attached). */
  commitBehaviour: (offsets: Offsets) => Promise<void> = () => Promise.resolve();
  readonly #log = new Map<string, FetchedMessage[]>();
  readonly queue: BufferQueue;
  readonly admin: FakeAdmin | undefined;

  constructor(queue: BufferQueue, admin?: FakeAdmin) {
    this.queue = queue;
    this.admin = admin;
  }

  deliver(partition: TP, offsets: number[]): void {
    const id = partitionId(partition.topic, partition.partition);
    const records = offsets.map((o) => fetched(o));
    this.#log.set(id, [...(this.#log.get(id) ?? []), ...records]);
    if (!this.held.has(id)) this.queue.push(id, packMessages(records));
  }

  async commit(offsets: Offsets): Promise<void> {
    this.commits.push(offsets);
    await this.commitBehaviour(offsets);
    for (const o of offsets) this.admin?.committed.set(partitionId(o.topic, o.partition), o.offset);
  }
  hold(partitions: readonly TP[]): void {
    this.holds.push([...partitions]);
    for (const p of partitions) {
      const id = partitionId(p.topic, p.partition);
      this.held.add(id);
      this.queue.clear(id);
    }
  }
  seek(positions: ReadonlyArray<TP & { offset: number }>): void {
    this.seeks.push([...positions]);
    for (const p of positions) this.held.delete(partitionId(p.topic, p.partition));
    this.refetch(positions);
  }
  /**
   * Buffers the log again from these offsets (what a seek, or a rejoin from the commits, leads to);
   * a held partition gets nothing, as the receiver drops what is fetched for it.
   */
  refetch(positions: ReadonlyArray<TP & { offset: number }>): void {
    for (const p of positions) {
      const id = partitionId(p.topic, p.partition);
      if (this.held.has(id)) continue;
      this.queue.clear(id);
      const again = (this.#log.get(id) ?? []).filter((r) => Number(r.offset) >= p.offset);
      if (again.length > 0) this.queue.push(id, packMessages(again));
    }
  }
  fetchHealthy(): boolean {
    return this.healthy;
  }
  resumeDrained(): void {
    this.queue.resumable();
  }
  /** Every partition committed so far with its last committed offset. */
  lastCommitted(): Map<string, number> {
    const last = new Map<string, number>();
    for (const o of this.commits.flat()) last.set(partitionId(o.topic, o.partition), o.offset);
    return last;
  }
  asReceiver(): Receiver {
    return this as unknown as Receiver;
  }
}

/** The group's committed offsets, the topics' low/high offsets, and a script for failures. */
export class FakeAdmin {
  readonly committed = new Map<string, number>();
  readonly ends = new Map<string, { low: number; high: number }>();
  fetchOffsetsCalls = 0;
  /** Where each read of the committed offsets is noted (a log shared with the pool shows the order). */
  log: string[] = [];
  readonly deleted: Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }> = [];
  /** Called before each fetchOffsets answers; throw (or reject) to make it fail. */
  beforeFetchOffsets: () => Promise<void> | void = () => undefined;
  beforeDelete: () => Promise<void> | void = () => undefined;

  readonly partitions: number;

  constructor(partitions = 4) {
    this.partitions = partitions;
  }

  async fetchOffsets({
    topics,
  }: {
    groupId: string;
    topics: string[];
  }): Promise<
    Array<{ topic: string; partitions: Array<{ partition: number; offset: string; metadata: string | null }> }>
  > {
    this.fetchOffsetsCalls++;
    this.log.push(`fetchOffsets ${topics.join(',')}`);
    await this.beforeFetchOffsets();
    return topics.map((topic) => ({
      topic,
      partitions: Array.from({ length: this.partitions }, (_, partition) => ({
        partition,
        offset: String(this.committed.get(partitionId(topic, partition)) ?? -1),
        metadata: this.committed.has(partitionId(topic, partition)) ? `m${partition}` : null,
      })),
    }));
  }
  fetchTopicOffsets(topic: string): Promise<Array<{ partition: number; offset: string; low: string; high: string }>> {
    return Promise.resolve(
      Array.from({ length: this.partitions }, (_, partition) => {
        const { low, high } = this.ends.get(partitionId(topic, partition)) ?? { low: 0, high: 0 };
        return { partition, offset: String(high), low: String(low), high: String(high) };
      }),
    );
  }
  async deleteTopicRecords(request: {
    topic: string;
    partitions: Array<{ partition: number; offset: string }>;
  }): Promise<void> {
    this.deleted.push(request);
    await this.beforeDelete();
  }
  asAdmin(): Admin {
    return this as unknown as Admin;
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `probe` until it is true (or fails the test after `timeoutMs`). */
export async function until(what: string, probe: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!probe()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(5);
  }
}

/** A promise with its resolve/reject at hand. */
export function deferred<T = void>(): { promise: Promise<T>; resolve: (v: T) => void; reject: (e: unknown) => void } {
  let resolve!: (v: T) => void;
  let reject!: (e: unknown) => void;
  const promise = new Promise<T>((res, rej) => {
    resolve = res;
    reject = rej;
  });
  return { promise, resolve, reject };
}
