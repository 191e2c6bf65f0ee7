/**
 * The scheduler: every batch interval it runs batch n (batch-run.ts), records it, and decides when
 * the next is due (batch-clock.ts). Batches run one at a time and in order; when one outlasts the
 * interval the next starts at once and the scheduling delay shows it (Spark Streaming's semantics).
 *
 * Every newly assigned partition is *prepared* before it takes part in a batch
 * (partition-preparer.ts: opened, its commit read, its state restored). After a failed batch the
 * failed partitions are prepared again and rewound to their committed offsets, so nothing is lost. A rewind that cannot reach the broker is retried until it succeeds, and its
 * partitions take part in no batch meanwhile — never does a partition go on from where a failed
 * batch left it. Anything unexpected in the loop itself is fatal: reported once through `onFatal`
 * (the process exits for the orchestrator to restart it), never a loop that died while the state
 * says `running`.
 */
import { type Admin } from 'kafkajs';
import type pino from 'pino';
import {
  describeError,
  FatalError,
  findErrorBy,
  ProducerFencedError,
  StateError,
  UserCodeTimeoutError,
} from '../errors.ts';
import { type JobPlan } from '../job/plan.ts';
import { type Metrics } from '../metrics/registry.ts';
import { type WorkerPool } from '../pool/worker-pool.ts';
import { type BufferQueue } from '../queue/buffer-queue.ts';
import { type Assignment, type Receiver } from '../receiver/receiver.ts';
import { nextDue, Sleeper } from './batch-clock.ts';
import { type BatchHistory, type BatchInfo } from './batch-history.ts';
import { BatchRun, type BatchOutcome } from './batch-run.ts';
import { PartitionPreparer } from './partition-preparer.ts';
import { backoff, FENCED_REWIND_DELAY_MS, Rewinder } from './rewinder.ts';
import { lagOf, PartitionTable, type PartitionEntry, type PartitionStatus } from './partition-table.ts';
import { PoisonPills, STRIKES } from './poison-pills.ts';
import { RepartitionPurger } from './repartition-purger.ts';

export { nextDue } from './batch-clock.ts';
export type { PartitionStatus } from './partition-table.ts';

export interface SchedulerOptions {
  plan: JobPlan;
  groupId: string;
  startFrom: 'earliest' | 'latest';
  batchIntervalMs: number;
  maxBatchRecords: number;
  queue: BufferQueue;
  receiver: Receiver;
  pool: WorkerPool;
  admin: Admin;
  metrics: Metrics;
  history: BatchHistory;
  logger: pino.Logger;
  /** The loop met an error it cannot recover from; the service must stop. */
  onFatal: (error: FatalError) => void;
}

export type SchedulerState = 'idle' | 'running' | 'stopping' | 'stopped' | 'failed';

export class Scheduler {
  readonly #options: SchedulerOptions;
  readonly #table: PartitionTable;
  readonly #preparer: PartitionPreparer;
  readonly #rewinder: Rewinder;
  readonly #poison = new PoisonPills();
  readonly #batches: BatchRun;
  readonly #purger: RepartitionPurger | undefined;
  readonly #clock = new Sleeper();
  #state: SchedulerState = 'idle';
  #loop: Promise<void> | undefined;
  #preparing: Promise<void> | undefined;
  #lastBusy: number[] = [];
  #lastCompletedAt = Date.now();
  #consecutiveFailures = 0;

  constructor(options: SchedulerOptions) {
    this.#options = options;
    this.#table = new PartitionTable(options.plan, options.groupId, options.admin, options.startFrom);
    this.#preparer = new PartitionPreparer(this.#table, options.pool, options.metrics, options.logger);
    this.#rewinder = new Rewinder({
      table: this.#table,
      preparer: this.#preparer,
      receiver: options.receiver,
      admin: options.admin,
      startFrom: options.startFrom,
      logger: options.logger,
      running: () => this.#state === 'running',
    });
    const repartition = options.plan.repartitionTopic;
    this.#purger = repartition ? new RepartitionPurger(options.admin, repartition, options.logger) : undefined;
    this.#batches = new BatchRun({
      maxBatchRecords: options.maxBatchRecords,
      queue: options.queue,
      receiver: options.receiver,
      pool: options.pool,
      table: this.#table,
      poison: this.#poison,
      purger: this.#purger,
      metrics: options.metrics,
    });
  }

  get state(): SchedulerState {
    return this.#state;
  }
  /** Every assigned partition restored and none being rewound. */
  get ready(): boolean {
    return this.#table.ready;
  }

  /** Partitions whose state is being restored, and how far their changelogs have been read. */
  restoring(): { partitions: number; records: number; end: number } {
    return this.#preparer.restoring();
  }

  get lastCompletedAt(): number {
    return this.#lastCompletedAt;
  }

  /** Called by the receiver on every group (re)join. Revoked partitions' tasks are dropped. */
  onAssignment(assignment: Assignment): void {
    const { metrics, pool } = this.#options;
    const revoked = this.#table.assign(assignment);
    for (const entry of revoked) {
      metrics.consumerLag.remove(entry.topic, String(entry.partition));
      metrics.watermarkLag.remove(entry.topic, String(entry.partition));
      metrics.stateEntries.remove(entry.topic, String(entry.partition));
      this.#poison.forget(entry.id);
    }
    metrics.assignedPartitions.set(this.#table.size);
    metrics.rebalances.inc();
    if (revoked.length > 0) void pool.dropAll(revoked.map((e) => ({ topic: e.topic, partition: e.partition })));
  }

  onHighWatermark(topic: string, partition: number, highWatermark: number): void {
    const entry = this.#table.get(topic, partition);
    if (entry) entry.highWatermark = highWatermark;
  }

  /** The receiver read past offsets without records (transaction markers) up to `nextOffset`. */
  onSkippedRecords(topic: string, partition: number, nextOffset: number, highWatermark: number): void {
    const entry = this.#table.get(topic, partition);
    if (!entry || entry.rewinding) return;
    entry.highWatermark = Math.max(entry.highWatermark ?? highWatermark, highWatermark);
    entry.fetchedTo = Math.max(entry.fetchedTo ?? nextOffset, nextOffset);
  }

  start(): void {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    this.#loop = this.#run().catch((error: unknown) => {
      this.#state = 'failed';
      const fatal = new FatalError(`batch loop failed: ${describeError(error)}`, error);
      this.#options.logger.error({ err: error, code: fatal.code }, 'batch loop failed; the service must restart');
      this.#options.onFatal(fatal);
    });
  }

  /**
   * The batch found a backlog: its cut was full (maxBatchRecords), or a partition it read was still
   * behind its high watermark. The next batch then starts at once.
   */
  async #run(): Promise<void> {
    const interval = this.#options.batchIntervalMs;
    let due = Date.now() + interval;
    let previousBacklogged = false;
    while (this.#state === 'running') {
      await this.#clock.sleep(due - Date.now());
      if (this.#state !== 'running') break;
      const startedAt = Date.now();
      const outcome = await this.#runBatch(due, startedAt);
      // Catching up, the batch after the last behind one also starts at once when it has the
      // aggregating stage's share of that backlog to do (a re-keyed job's repartition records).
      const atOnce = outcome.backlogged || (previousBacklogged && outcome.wroteRepartition);
      previousBacklogged = outcome.backlogged;
      due = nextDue(due, interval, startedAt, Date.now(), atOnce);
      if (outcome.failure && this.#consecutiveFailures > 1 && this.#state === 'running') {
        await this.#clock.sleep(backoff(this.#consecutiveFailures));
      }
    }
  }

  async #runBatch(scheduledAt: number, startedAt: number): Promise<BatchOutcome> {
    const nothing: BatchOutcome = { info: undefined, backlogged: false, wroteRepartition: false };
    if (this.#table.size === 0) return nothing;
    if (!(await this.#prepared())) return nothing;
    const outcome = await this.#batches.run(scheduledAt, startedAt);
    if (!outcome.info) {
      this.#idleTick();
      return outcome;
    }
    const info = outcome.info;
    if (outcome.failure) this.#failed(info, outcome.failure);
    else this.#consecutiveFailures = 0;
    this.#record(info, startedAt);
    return outcome;
  }

  /** Newly assigned partitions prepared (retried each batch until it succeeds). */
  async #prepared(): Promise<boolean> {
    const pending = (): PartitionEntry[] => [...this.#table.entries()].filter((e) => e.needsStart && !e.rewinding);
    if (pending().length === 0) return true;
    this.#preparing ??= this.#preparer
      .prepare(pending())
      .then(() => undefined)
      .catch((error: unknown) => {
        // State that belongs to another task cannot be fixed by retrying: the service stops.
        if (error instanceof StateError) throw error;
        this.#options.logger.warn({ err: error }, 'could not prepare the assigned partitions; will retry');
      })
      .finally(() => (this.#preparing = undefined));
    await this.#preparing;
    return pending().length === 0;
  }

  #failed(info: BatchInfo, failure: NonNullable<BatchOutcome['failure']>): void {
    const { logger, metrics } = this.#options;
    info.outcome = 'failed';
    info.error = describeError(failure.error);
    this.#consecutiveFailures++;
    for (const { suspect, error } of failure.suspects) {
      const code = error instanceof UserCodeTimeoutError ? 'SLUICE_USER_CODE_TIMEOUT' : 'SLUICE_WORKER_CRASHED';
      const message = `${describeError(error)} (${STRIKES} times on this record; not run again)`;
      const strikes = this.#poison.failed(suspect, code, message);
      logger.warn(
        { ...suspect, strikes, code },
        strikes >= STRIKES
          ? 'record failed its worker again: dead-lettering it'
          : 'record in user code when its worker failed',
      );
    }
    logger.warn(
      { err: failure.error, batch: info.id, partitions: failure.rewind.map((e) => e.id) },
      'batch failed; rewinding its partitions to their committed offsets',
    );
    metrics.resets.inc();
    // Fenced: another replica took the partitions over while this one was paused. Its consumer learns
    // of the rebalance at its next heartbeat; opening them again before that would fence the new owner
    // back (harmless to the output — each owner restores what was committed — but wasted work).
    const fenced = findErrorBy(failure.error, (e) => e instanceof ProducerFencedError) !== undefined;
    this.#rewinder.rewind(failure.rewind, fenced ? FENCED_REWIND_DELAY_MS : 0);
  }

  #record(info: BatchInfo, startedAt: number): void {
    const { metrics, history, logger, batchIntervalMs } = this.#options;
    const finished = Date.now();
    info.processingMs = finished - startedAt;
    info.totalDelayMs = info.processingMs + info.schedulingDelayMs;
    history.add(info);
    metrics.batches.inc({ outcome: info.outcome });
    metrics.batchRecords.observe(info.records);
    metrics.batchProcessing.observe(info.processingMs / 1000);
    metrics.schedulingDelay.observe(info.schedulingDelayMs / 1000);
    metrics.lastSchedulingDelay.set(info.schedulingDelayMs / 1000);
    metrics.totalDelay.observe(info.totalDelayMs / 1000);
    if (info.outcome === 'ok') {
      this.#lastCompletedAt = finished;
      metrics.lastBatchTime.set(finished / 1000);
    }
    this.#gauges(finished - info.scheduledAt + batchIntervalMs);
    logger.debug(
      {
        batch: info.id,
        records: info.records,
        outputs: info.outputs,
        ms: info.processingMs,
        delayMs: info.schedulingDelayMs,
      },
      'batch',
    );
  }

  /** Nothing to process: the loop is alive and idle, which health checks must see. */
  #idleTick(): void {
    this.#lastCompletedAt = Date.now();
    this.#options.metrics.lastBatchTime.set(this.#lastCompletedAt / 1000);
    this.#gauges(this.#options.batchIntervalMs);
  }

  #gauges(windowMs: number): void {
    const { metrics, queue, pool } = this.#options;
    metrics.bufferRecords.set(queue.records);
    metrics.bufferBytes.set(queue.bytes);
    metrics.pausedPartitions.set(queue.pausedPartitions.length);
    const now = Date.now();
    for (const entry of this.#table.entries()) {
      const labels = { topic: entry.topic, partition: String(entry.partition) };
      const lag = lagOf(entry);
      if (lag !== null) metrics.consumerLag.set(labels, lag);
      if (entry.streamTime !== null) metrics.watermarkLag.set(labels, Math.max(0, (now - entry.streamTime) / 1000));
    }
    const busy = pool.busyMs();
    busy.forEach((ms, i) => {
      const delta = ms - (this.#lastBusy[i] ?? 0);
      metrics.workerBusy.set({ worker: String(i) }, Math.min(1, Math.max(0, delta / Math.max(1, windowMs))));
    });
    this.#lastBusy = busy;
  }

  /** What `/api/status` shows per partition. */
  partitions(): PartitionStatus[] {
    return this.#table.status((id) => this.#options.queue.sizeOf(id).records);
  }

  /** Stops after the running batch (which publishes and commits) and runs no other. */
  async stop(): Promise<void> {
    if (this.#state === 'idle' || this.#state === 'failed') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    this.#clock.wake();
    this.#rewinder.wake();
    await this.#loop;
    await this.#rewinder.idle();
    await this.#purger?.idle();
    this.#state = 'stopped';
  }
}
