/**
 * The main-thread side of the worker threads: spawns them, waits for READY, sends requests and
 * matches answers by `requestId`. A worker that exits or fails rejects its pending requests with
 * WorkerCrashedError and is replaced under the same index (the caller replays its partitions).
 *
 * A watchdog reads each worker's shared progress (progress.ts): a worker that stays on one record
 * in user code for longer than `recordTimeoutMs` is hung — it is terminated and replaced, and its
 * batch fails with UserCodeTimeoutError. Publishing is never timed here: a slow publish is Kafka's
 * to retry. Either failure names the record that was in user code (`suspectOf`), so the scheduler
 * can tell a poison pill from bad luck.
 */
import { type HeapInfo } from 'node:v8';
import { IllegalStateError, JobLoadError, UserCodeTimeoutError, WorkerCrashedError } from '../errors.ts';
import { deserializeError } from '../error-serialization.ts';
import {
  type BatchRequest,
  type HeldTask,
  type PartitionResult,
  type QueriedWindow,
  type RestoredTask,
  type RestoreRequest,
  type StateQueryRequest,
  type WorkerInit,
  type WorkerKafka,
  type WorkerRequest,
  type WorkerResponse,
} from './protocol.ts';
import { stickyRouter, type Router } from './router.ts';
import { type Slot, stalledMs, startSlot, type Suspect, suspectIn } from './worker-slot.ts';

export type { Suspect } from './worker-slot.ts';

const MIB = 1024 * 1024;

export interface WorkerPoolOptions {
  size: number;
  jobPath: string;
  maxRecordBytes: number;
  /** Each worker's heap limit (V8 old generation), in bytes. */
  heapBytes: number;
  batchIntervalMs: number | undefined;
  /** Every input partition (`topic:partition`). */
  sources: string[];
  /** How workers reach Kafka to publish their results. */
  kafka: WorkerKafka;
  /** User code on one record longer than this: the worker is hung. */
  recordTimeoutMs: number;
  router?: Router;
  onCrash?: (workerIndex: number, error: Error) => void;
}

/** How far a partition's restore has read its changelog partition. */
export interface RestoreProgress {
  topic: string;
  partition: number;
  records: number;
  end: number;
}

export interface BatchAnswer {
  partitions: PartitionResult[];
  processingMs: number;
  publishMs: number;
}

export type PoolState = 'starting' | 'running' | 'closing' | 'closed';

export class WorkerPool {
  readonly #options: WorkerPoolOptions;
  readonly #router: Router;
  readonly #slots: Slot[] = [];
  #nextRequestId = 1;
  #state: PoolState = 'starting';
  #restarts = 0;
  readonly #suspects = new WeakMap<Error, Suspect>();
  readonly #restoreListeners = new Map<number, (progress: RestoreProgress) => void>();
  #watchdog: NodeJS.Timeout | undefined;

  private constructor(options: WorkerPoolOptions) {
    this.#options = options;
    this.#router = options.router ?? stickyRouter;
  }

  /** Spawns every worker and resolves once all have loaded the job (or rejects with why not). */
  static async create(options: WorkerPoolOptions): Promise<WorkerPool> {
    const pool = new WorkerPool(options);
    try {
      await Promise.all(Array.from({ length: options.size }, (_, i) => pool.#start(i)));
    } catch (error) {
      await pool.close();
      throw error;
    }
    pool.#state = 'running';
    const every = Math.max(20, Math.min(1000, Math.floor(options.recordTimeoutMs / 4)));
    pool.#watchdog = setInterval(() => pool.#watch(), every);
    pool.#watchdog.unref();
    return pool;
  }

  /** The record a failed batch's worker was in user code on, when it hung or died there. */
  suspectOf(error: unknown): Suspect | undefined {
    return error instanceof Error ? this.#suspects.get(error) : undefined;
  }

  /** Per worker, the partitions it holds tasks for (as last reported). */
  held(): HeldTask[][] {
    return this.#slots.map((s) => s.held);
  }

  #watch(): void {
    const now = Date.now();
    this.#slots.forEach((slot, index) => {
      if (stalledMs(slot, now) < this.#options.recordTimeoutMs) return;
      const at = suspectIn(slot);
      const where = at
        ? ` on ${at.topic}:${at.partition} offset ${at.offset}${at.sub >= 0 ? ` entry ${at.sub}` : ''}`
        : '';
      this.#crashed(
        index,
        slot,
        new UserCodeTimeoutError(`user code ran for more than ${this.#options.recordTimeoutMs} ms${where}`),
      );
    });
  }

  get state(): PoolState {
    return this.#state;
  }
  get size(): number {
    return this.#options.size;
  }
  get restarts(): number {
    return this.#restarts;
  }
  /** Each worker thread's V8 heap statistics (undefined for one that is not running). */
  heapStatistics(): Promise<Array<HeapInfo | undefined>> {
    return Promise.all(this.#slots.map((s) => s.worker.getHeapStatistics().catch(() => undefined)));
  }

  /** Milliseconds each worker spent processing since start. */
  busyMs(): number[] {
    return this.#slots.map((s) => s.busyMs);
  }

  route(topic: string, partition: number): number {
    return this.#router(topic, partition, this.#options.size);
  }

  #start(index: number): Promise<void> {
    const init: WorkerInit = {
      jobPath: this.#options.jobPath,
      workerIndex: index,
      maxRecordBytes: this.#options.maxRecordBytes,
      batchIntervalMs: this.#options.batchIntervalMs,
      sources: this.#options.sources,
      kafka: this.#options.kafka,
      progress: new SharedArrayBuffer(64),
    };
    const slot = startSlot(init, this.#options.heapBytes);
    const { worker } = slot;
    this.#slots[index] = slot;
    return new Promise<void>((resolve, reject) => {
      let ready = false;
      worker.on('message', (message: WorkerResponse) => {
        if (message.type === 'ready') {
          ready = true;
          resolve();
          return;
        }
        if (message.type === 'init-error') {
          const cause = deserializeError(message.error);
          slot.startError = cause;
          reject(cause instanceof JobLoadError || message.error.code ? cause : new JobLoadError(cause.message, cause));
          void worker.terminate();
          return;
        }
        if (message.type === 'restore-progress') {
          this.#restoreListeners.get(message.requestId)?.(message);
          return;
        }
        if (message.type === 'result' || message.type === 'dropped' || message.type === 'restored')
          slot.held = message.held;
        const pending = slot.pending.get(message.requestId);
        if (!pending) return;
        slot.pending.delete(message.requestId);
        if (message.type === 'error') pending.reject(deserializeError(message.error));
        else pending.resolve(message);
      });
      const fail = (error: Error): void => {
        if (!ready) {
          // A replacement that cannot start: requests already queued for it must not hang.
          for (const pending of slot.pending.values())
            pending.reject(new WorkerCrashedError(`worker ${index} failed to start: ${error.message}`, error));
          slot.pending.clear();
          slot.startError ??= error;
          reject(
            error instanceof JobLoadError
              ? error
              : new JobLoadError(`worker ${index} failed to start: ${error.message}`, error),
          );
          return;
        }
        this.#crashed(index, slot, error);
      };
      worker.on('error', fail);
      worker.on('exit', (code) => {
        if (this.#state === 'closing' || this.#state === 'closed') return;
        fail(new WorkerCrashedError(`worker ${index} exited with code ${code}`));
      });
    });
  }

  #crashed(index: number, slot: Slot, error: Error): void {
    if (this.#slots[index] !== slot) return; // already replaced ('error' then 'exit')
    const crash =
      error instanceof WorkerCrashedError || error instanceof UserCodeTimeoutError
        ? error
        : (error as { code?: unknown }).code === 'ERR_WORKER_OUT_OF_MEMORY'
          ? new WorkerCrashedError(
              `worker ${index} ran out of memory: its heap reached SLUICE_WORKER_HEAP (${Math.round(this.#options.heapBytes / MIB)} MiB); ` +
                'raise it, or hold less per worker (more workers or replicas, a smaller maxBatchRecords)',
              error,
            )
          : new WorkerCrashedError(`worker ${index} failed: ${error.message}`, error);
    const suspect = suspectIn(slot);
    if (suspect) this.#suspects.set(crash, suspect);
    slot.batch = undefined;
    for (const pending of slot.pending.values()) pending.reject(crash);
    slot.pending.clear();
    void slot.worker.terminate();
    if (this.#state !== 'running') return;
    this.#restarts++;
    this.#options.onCrash?.(index, crash);
    this.#start(index).catch((startError: unknown) => {
      this.#options.onCrash?.(index, startError as Error);
    });
  }

  #request(index: number, request: WorkerRequest, transfer: ArrayBuffer[]): Promise<WorkerResponse> {
    if (this.#state !== 'running') return Promise.reject(new IllegalStateError(`worker pool is ${this.#state}`));
    const slot = this.#slots[index];
    if (!slot) return Promise.reject(new IllegalStateError(`no worker ${index}`));
    if (slot.startError) {
      const why = slot.startError;
      return Promise.reject(new WorkerCrashedError(`worker ${index} is not running: ${why.message}`, why));
    }
    return new Promise((resolve, reject) => {
      slot.pending.set(request.requestId, { resolve, reject });
      slot.worker.postMessage(request, transfer);
    });
  }

  async runBatch(index: number, batch: Omit<BatchRequest, 'type' | 'requestId'>): Promise<BatchAnswer> {
    const request: BatchRequest = { type: 'batch', requestId: this.#nextRequestId++, ...batch };
    const slot = this.#slots[index];
    const partitions = batch.partitions.map((p) => ({ topic: p.topic, partition: p.partition }));
    if (slot) slot.batch = { requestId: request.requestId, partitions };
    let response: WorkerResponse;
    try {
      response = await this.#request(
        index,
        request,
        batch.partitions.map((p) => p.records),
      );
    } finally {
      if (slot?.batch?.requestId === request.requestId) slot.batch = undefined;
    }
    if (response.type !== 'result') throw new IllegalStateError(`unexpected answer ${response.type}`);
    if (slot) slot.busyMs += response.processingMs;
    return { partitions: response.partitions, processingMs: response.processingMs, publishMs: response.publishMs };
  }

  /**
   * Exactly-once: opens the partitions' transactional producers on their worker, fencing any previous
   * owner. Must complete before their committed offsets are read.
   */
  async open(index: number, partitions: Array<{ topic: string; partition: number }>): Promise<void> {
    const response = await this.#request(index, { type: 'open', requestId: this.#nextRequestId++, partitions }, []);
    if (response.type !== 'opened') throw new IllegalStateError(`unexpected answer ${response.type}`);
  }

  /** Builds the partitions' tasks on their worker and restores their state from the changelog. */
  async restore(
    index: number,
    partitions: RestoreRequest['partitions'],
    onProgress?: (progress: RestoreProgress) => void,
  ): Promise<RestoredTask[]> {
    const requestId = this.#nextRequestId++;
    if (onProgress) this.#restoreListeners.set(requestId, onProgress);
    try {
      const response = await this.#request(index, { type: 'restore', requestId, partitions }, []);
      if (response.type !== 'restored') throw new IllegalStateError(`unexpected answer ${response.type}`);
      return response.partitions;
    } finally {
      this.#restoreListeners.delete(requestId);
    }
  }

  /**
   * Queryable state: the key's open windows in the partition's task, on the worker it is routed to.
   * `held` is false while that worker holds no restored task for it.
   */
  async queryState(
    query: Omit<StateQueryRequest, 'type' | 'requestId'>,
  ): Promise<{ held: boolean; windows: QueriedWindow[] }> {
    const index = this.route(query.topic, query.partition);
    const response = await this.#request(
      index,
      { type: 'state-query', requestId: this.#nextRequestId++, ...query },
      [],
    );
    if (response.type !== 'state') throw new IllegalStateError(`unexpected answer ${response.type}`);
    return { held: response.held, windows: response.windows };
  }

  /** Forgets the state of partitions on every worker (revoked, or about to be replayed). */
  async dropAll(partitions: Array<{ topic: string; partition: number }>): Promise<void> {
    await Promise.all(
      this.#slots.map((_, index) =>
        this.#request(index, { type: 'drop', requestId: this.#nextRequestId++, partitions }, []).catch(() => undefined),
      ),
    );
  }

  #closing: Promise<void> | undefined;
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearInterval(this.#watchdog);
      // Workers disconnect their producers first (nothing is in flight between batches), then stop.
      await Promise.all(
        this.#slots.map((_, index) =>
          Promise.race([
            this.#request(index, { type: 'close', requestId: this.#nextRequestId++ }, []).catch(() => undefined),
            new Promise((resolve) => setTimeout(resolve, 5_000).unref()),
          ]),
        ),
      );
      this.#state = 'closing';
      await Promise.all(
        this.#slots.map(async (slot) => {
          for (const pending of slot.pending.values()) pending.reject(new IllegalStateError('worker pool closed'));
          slot.pending.clear();
          await slot.worker.terminate();
        }),
      );
      this.#state = 'closed';
    })();
    return this.#closing;
  }
}
