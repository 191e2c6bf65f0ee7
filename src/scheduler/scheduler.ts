/**
 * The scheduler: every batch interval it cuts batch n from the buffer, fans the partitions out to
 * their workers, publishes what they return, and commits offsets once Kafka has acknowledged the
 * writes. Batches run one at a time and in order; when one outlasts the interval the next starts at
 * once and the scheduling delay shows it (Spark Streaming's semantics).
 *
 * Partition state is rebuilt from committed positions at every new epoch (group rejoin) and after a
 * failed batch (worker crash, publish or commit failure): the partitions are rewound to their
 * committed offsets and replayed, so nothing is lost.
 */
import { type Admin } from 'kafkajs';
import type pino from 'pino';
import { describeError } from '../errors.ts';
import { type JobPlan } from '../job/plan.ts';
import { type Metrics } from '../metrics/registry.ts';
import { partitionId, type PartitionResult, type PartitionStart, type PartitionWork } from '../pool/protocol.ts';
import { RecordWriter } from '../pool/record-codec.ts';
import { repartitionRecords } from '../pool/repartition-block.ts';
import { type WorkerPool } from '../pool/worker-pool.ts';
import { type BufferQueue } from '../queue/buffer-queue.ts';
import { type Assignment, type Receiver } from '../receiver/receiver.ts';
import { type BatchHistory, type BatchInfo } from './batch-history.ts';

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
}

export type SchedulerState = 'idle' | 'running' | 'stopping' | 'stopped';

interface PartitionInfo {
  topic: string;
  partition: number;
  /**
   * Included in every batch, records or not: windowed partitions (idle advancement closes windows
   * when traffic stops) once their state is rebuilt, and the input partitions of a re-keyed windowed
   * job (they report their stream time downstream).
   */
  tick: 'never' | 'after-start' | 'always';
  /** Committed position, once read for this epoch. */
  start: PartitionStart | undefined;
  /** The worker must rebuild state from `start` with the next batch. */
  needsStart: boolean;
  /** Next offset to process (last cut record + 1). */
  position: number | undefined;
  highWatermark: number | undefined;
  streamTime: number | null;
}

export interface PartitionStatus {
  topic: string;
  partition: number;
  position: number | null;
  highWatermark: number | null;
  lag: number | null;
  streamTime: number | null;
  buffered: number;
}

/** Some workers failed their part of a batch (the others' parts were published and committed). */
class WorkerBatchError extends Error {
  readonly workers: number[];
  readonly reason: unknown;
  constructor(workers: number[], reason: unknown) {
    super(`worker(s) ${workers.join(', ')} failed: ${describeError(reason)}`);
    this.workers = workers;
    this.reason = reason;
  }
}

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

export class Scheduler {
  readonly #o: SchedulerOptions;
  #state: SchedulerState = 'idle';
  #epoch = -1;
  #partitions = new Map<string, PartitionInfo>();
  #startsReady = false;
  #loadingStarts: Promise<void> | undefined;
  #batchId = 0;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;
  #loop: Promise<void> | undefined;
  #lastBusy: number[] = [];
  #lastCompletedAt = Date.now();
  readonly #purgeable = new Map<number, number>();
  readonly #purged = new Map<number, number>();
  #lastPurge = 0;
  #purging = false;
  #consecutiveFailures = 0;

  constructor(options: SchedulerOptions) {
    this.#o = options;
  }

  get state(): SchedulerState {
    return this.#state;
  }
  /** Committed positions read for the current assignment (state can be rebuilt). */
  get ready(): boolean {
    return this.#startsReady;
  }
  get lastCompletedAt(): number {
    return this.#lastCompletedAt;
  }

  /** Called by the receiver on every group (re)join. */
  onAssignment(assignment: Assignment): void {
    const plan = this.#o.plan;
    this.#epoch = assignment.epoch;
    const next = new Map<string, PartitionInfo>();
    for (const { topic, partition } of assignment.partitions) {
      const windowed =
        plan.window !== undefined && (plan.repartitionTopic === undefined || topic === plan.repartitionTopic);
      const reportsWatermark = plan.window !== undefined && plan.repartitionTopic !== undefined && !windowed;
      next.set(partitionId(topic, partition), {
        topic,
        partition,
        tick: windowed ? 'after-start' : reportsWatermark ? 'always' : 'never',
        start: undefined,
        needsStart: true,
        position: undefined,
        highWatermark: this.#partitions.get(partitionId(topic, partition))?.highWatermark,
        streamTime: null,
      });
    }
    for (const [id, info] of this.#partitions) {
      if (!next.has(id)) {
        this.#o.metrics.consumerLag.remove(info.topic, String(info.partition));
        this.#o.metrics.watermarkLag.remove(info.topic, String(info.partition));
      }
    }
    this.#partitions = next;
    this.#o.metrics.assignedPartitions.set(next.size);
    this.#o.metrics.rebalances.inc();
    this.#startsReady = false;
    this.#loadingStarts = undefined;
    void this.#pool().dropAll(assignment.partitions.slice());
  }

  #pool(): WorkerPool {
    return this.#o.pool;
  }

  onHighWatermark(topic: string, partition: number, highWatermark: number): void {
    const info = this.#partitions.get(partitionId(topic, partition));
    if (info) info.highWatermark = highWatermark;
  }

  async #loadStarts(): Promise<void> {
    const epoch = this.#epoch;
    const infos = [...this.#partitions.values()];
    const topics = [...new Set(infos.map((i) => i.topic))];
    const fetched = topics.length === 0 ? [] : await this.#o.admin.fetchOffsets({ groupId: this.#o.groupId, topics });
    if (epoch !== this.#epoch) return;
    for (const { topic, partitions } of fetched) {
      for (const p of partitions) {
        const info = this.#partitions.get(partitionId(topic, p.partition));
        if (!info) continue;
        const offset = Number(p.offset);
        info.start = {
          committedOffset: offset >= 0 ? offset : null,
          metadata: offset >= 0 ? (p.metadata ?? null) : null,
        };
      }
    }
    for (const info of infos) info.start ??= { committedOffset: null, metadata: null };
    this.#startsReady = true;
  }

  start(): void {
    if (this.#state !== 'idle') return;
    this.#state = 'running';
    this.#loop = this.#run();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      this.#wake = resolve;
      this.#timer = setTimeout(resolve, Math.max(0, ms));
    });
  }

  /**
   * The batch found a backlog: its cut was full (maxBatchRecords), or a partition it read was still
   * behind its high watermark. The next batch then starts at once.
   */
  #backlogged = false;
  /** The batch wrote repartition records: the aggregating stage has work from it. */
  #wroteRepartition = false;

  async #run(): Promise<void> {
    const interval = this.#o.batchIntervalMs;
    let due = Date.now() + interval;
    while (this.#state === 'running') {
      await this.#sleep(due - Date.now());
      if (this.#state !== 'running') break;
      const startedAt = Date.now();
      const previousBacklogged = this.#backlogged;
      this.#backlogged = false;
      this.#wroteRepartition = false;
      await this.#runBatch(due, startedAt);
      // Catching up, the batch after the last behind one also starts at once when it has the
      // aggregating stage's share of that backlog to do (a re-keyed job's repartition records).
      const atOnce = this.#backlogged || (previousBacklogged && this.#wroteRepartition);
      due = nextDue(due, interval, startedAt, Date.now(), atOnce);
    }
  }

  async #runBatch(scheduledAt: number, startedAt: number): Promise<void> {
    const { queue, receiver, metrics, logger } = this.#o;
    if (!this.#startsReady) {
      if (this.#partitions.size === 0) return;
      this.#loadingStarts ??= this.#loadStarts().catch((error: unknown) => {
        this.#loadingStarts = undefined;
        logger.warn({ err: error }, 'could not read committed offsets; will retry');
      });
      await this.#loadingStarts;
      if (!this.#startsReady) return;
    }
    const epoch = this.#epoch;
    const cut = queue.cut(this.#o.maxBatchRecords);
    let cutRecords = 0;
    for (const raw of cut.values()) cutRecords += raw.length;
    this.#backlogged = cutRecords >= this.#o.maxBatchRecords;
    receiver.resumeDrained();
    const id = ++this.#batchId;
    const byWorker = new Map<number, PartitionWork[]>();
    let records = 0;
    let inputRecords = 0;
    const included: PartitionInfo[] = [];
    const paused = new Set(queue.pausedPartitions);
    for (const info of this.#partitions.values()) {
      const pid = partitionId(info.topic, info.partition);
      const raw = cut.get(pid);
      const hasRecords = raw !== undefined && raw.length > 0;
      if (!hasRecords && !(info.tick === 'always' || (info.tick === 'after-start' && !info.needsStart))) continue;
      const writer = new RecordWriter(hasRecords ? 4096 + raw.reduce((n, r) => n + r.size + 32, 0) : 16);
      if (hasRecords) {
        for (const r of raw) {
          writer.write(Number(r.offset), r.timestamp, r.key, r.value, r.headers);
        }
        // A repartition block holds many records, a control record none.
        const n = info.topic === this.#o.plan.repartitionTopic ? repartitionRecords(raw) : raw.length;
        records += n;
        if (info.topic !== this.#o.plan.repartitionTopic) inputRecords += n;
        metrics.recordsIn.inc({ topic: info.topic, partition: String(info.partition) }, n);
        info.position = Number(raw[raw.length - 1]!.offset) + 1;
      }
      const caughtUp =
        queue.sizeOf(pid).records === 0 &&
        !paused.has(pid) &&
        info.highWatermark !== undefined &&
        info.position !== undefined &&
        info.position >= info.highWatermark;
      if (hasRecords && !caughtUp) this.#backlogged = true;
      const work: PartitionWork = {
        caughtUp,
        topic: info.topic,
        partition: info.partition,
        records: writer.finish(),
        count: writer.count,
      };
      if (info.needsStart && info.start) work.start = info.start;
      const worker = this.#o.pool.route(info.topic, info.partition);
      let list = byWorker.get(worker);
      if (!list) byWorker.set(worker, (list = []));
      list.push(work);
      included.push(info);
    }
    if (byWorker.size === 0) {
      this.#idleTick();
      return;
    }

    const info: BatchInfo = {
      id,
      scheduledAt,
      startedAt,
      records,
      inputRecords,
      outputs: 0,
      late: 0,
      deadLettered: 0,
      processingMs: 0,
      schedulingDelayMs: Math.max(0, startedAt - scheduledAt),
      totalDelayMs: 0,
      outcome: 'ok',
    };
    try {
      // Workers publish their own partitions: a worker that fails must not cost the others their
      // commit (they have published; rewinding them too would only emit their results again).
      const settled = await Promise.allSettled(
        [...byWorker].map(([worker, partitions]) =>
          this.#o.pool.runBatch(worker, { batchId: id, batchTime: startedAt, partitions }),
        ),
      );
      const answers = settled.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : []));
      const failedWorkers = [...byWorker.keys()].filter((_, i) => settled[i]?.status === 'rejected');
      const results = answers.flatMap((a) => a.partitions);
      const succeeded = new Set(results.map((r) => partitionId(r.topic, r.partition)));
      for (const p of included) if (succeeded.has(partitionId(p.topic, p.partition))) p.needsStart = false;
      if (answers.length > 0) metrics.publishLatency.observe(Math.max(...answers.map((a) => a.publishMs)) / 1000);
      await this.#commit(epoch, results);
      this.#account(results, info);
      if (results.some((r) => r.repartitionCount > 0)) this.#wroteRepartition = true;
      if (failedWorkers.length > 0) {
        const failure = settled.find((s) => s.status === 'rejected') as PromiseRejectedResult;
        throw new WorkerBatchError(failedWorkers, failure.reason);
      }
      this.#consecutiveFailures = 0;
    } catch (error) {
      info.outcome = 'failed';
      info.error = describeError(error);
      this.#consecutiveFailures++;
      // A worker failed: only its partitions rewind. Anything else (publish, commit): all of them.
      const workers = error instanceof WorkerBatchError ? new Set(error.workers) : undefined;
      logger.warn(
        { err: error instanceof WorkerBatchError ? error.reason : error, batch: id, workers: workers && [...workers] },
        'batch failed; rewinding partitions to their committed offsets',
      );
      const rewind = (p: PartitionInfo): boolean => !workers || workers.has(this.#o.pool.route(p.topic, p.partition));
      await this.#reset(rewind).catch((resetError: unknown) => logger.error({ err: resetError }, 'rewind failed'));
      if (this.#consecutiveFailures > 1) await this.#sleep(Math.min(30_000, 250 * 2 ** this.#consecutiveFailures));
    }
    const finished = Date.now();
    info.processingMs = finished - startedAt;
    info.totalDelayMs = info.processingMs + info.schedulingDelayMs;
    this.#o.history.add(info);
    metrics.batches.inc({ outcome: info.outcome });
    metrics.batchRecords.observe(records);
    metrics.batchProcessing.observe(info.processingMs / 1000);
    metrics.schedulingDelay.observe(info.schedulingDelayMs / 1000);
    metrics.lastSchedulingDelay.set(info.schedulingDelayMs / 1000);
    metrics.totalDelay.observe(info.totalDelayMs / 1000);
    if (info.outcome === 'ok') {
      this.#lastCompletedAt = finished;
      metrics.lastBatchTime.set(finished / 1000);
    }
    this.#gauges(finished - scheduledAt + this.#o.batchIntervalMs);
    logger.debug(
      { batch: id, records, outputs: info.outputs, ms: info.processingMs, delayMs: info.schedulingDelayMs },
      'batch',
    );
  }

  /** Nothing to process: the loop is alive and idle, which health checks must see. */
  #idleTick(): void {
    this.#lastCompletedAt = Date.now();
    this.#o.metrics.lastBatchTime.set(this.#lastCompletedAt / 1000);
    this.#gauges(this.#o.batchIntervalMs);
  }

  async #commit(epoch: number, results: PartitionResult[]): Promise<void> {
    const offsets = results.flatMap((r) => (r.commit ? [{ topic: r.topic, partition: r.partition, ...r.commit }] : []));
    if (offsets.length === 0) return;
    // A rebalance while this batch ran: the partitions are being rebuilt elsewhere; do not commit.
    if (epoch !== this.#epoch || epoch !== this.#o.receiver.epoch) return;
    const started = performance.now();
    await this.#o.receiver.commit(offsets);
    this.#o.metrics.commitLatency.observe((performance.now() - started) / 1000);
    const repartition = this.#o.plan.repartitionTopic;
    if (repartition !== undefined) {
      for (const o of offsets) if (o.topic === repartition) this.#purgeable.set(o.partition, o.offset);
      this.#purge(repartition);
    }
  }

  /**
   * Deletes repartition records below the committed offsets (at most every 10 s): the topic keeps
   * records forever (their timestamps are event times), so what is no longer needed is purged here.
   */
  #purge(topic: string): void {
    const now = Date.now();
    if (this.#purging || now - this.#lastPurge < 10_000) return;
    const partitions = [...this.#purgeable]
      .filter(([partition, offset]) => offset > (this.#purged.get(partition) ?? 0))
      .map(([partition, offset]) => ({ partition, offset: String(offset) }));
    if (partitions.length === 0) return;
    this.#lastPurge = now;
    this.#purging = true;
    this.#o.admin
      .deleteTopicRecords({ topic, partitions })
      .then(() => {
        for (const p of partitions) this.#purged.set(p.partition, Number(p.offset));
      })
      .catch((error: unknown) =>
        this.#o.logger.debug({ err: error, topic }, 'purging repartition records failed; will retry'),
      )
      .finally(() => (this.#purging = false));
  }

  #account(results: PartitionResult[], info: BatchInfo): void {
    const m = this.#o.metrics;
    let open = 0;
    for (const r of results) {
      const s = r.stats;
      info.outputs += r.outputCount;
      info.late += s.late;
      info.deadLettered += r.dead.length;
      m.recordsProcessed.inc({ topic: r.topic }, s.recordsIn);
      if (s.late > 0) m.recordsLate.inc({ topic: r.topic }, s.late);
      if (s.duplicates > 0) m.recordsDuplicate.inc(s.duplicates);
      if (s.replayed > 0) m.recordsReplayed.inc(s.replayed);
      if (r.repartitionCount > 0) m.recordsRepartitioned.inc(r.repartitionCount);
      for (const d of r.dead) {
        const code = d.headers.find(([n]) => n === 'sluice-error-code')?.[1];
        m.recordsDeadLettered.inc({ code: typeof code === 'string' ? code : 'unknown' });
      }
      const p = this.#partitions.get(partitionId(r.topic, r.partition));
      if (p) p.streamTime = s.streamTime;
      open += s.openWindows;
    }
    m.recordsOut.inc(info.outputs);
    // Windowed partitions report every batch; others hold no windows.
    m.openWindows.set(open);
  }

  #gauges(windowMs: number): void {
    const { metrics, queue, pool } = this.#o;
    metrics.bufferRecords.set(queue.records);
    metrics.bufferBytes.set(queue.bytes);
    metrics.pausedPartitions.set(queue.pausedPartitions.length);
    const now = Date.now();
    for (const info of this.#partitions.values()) {
      const labels = { topic: info.topic, partition: String(info.partition) };
      if (info.highWatermark !== undefined && info.position !== undefined) {
        metrics.consumerLag.set(labels, Math.max(0, info.highWatermark - info.position));
      }
      if (info.streamTime !== null) metrics.watermarkLag.set(labels, Math.max(0, (now - info.streamTime) / 1000));
    }
    const busy = pool.busyMs();
    busy.forEach((ms, i) => {
      const delta = ms - (this.#lastBusy[i] ?? 0);
      metrics.workerBusy.set({ worker: String(i) }, Math.min(1, Math.max(0, delta / Math.max(1, windowMs))));
    });
    this.#lastBusy = busy;
  }

  /** Rewinds every assigned partition to its committed offset and rebuilds its state by replay. */
  async #reset(which: (p: PartitionInfo) => boolean = () => true): Promise<void> {
    const { admin, receiver, metrics } = this.#o;
    metrics.resets.inc();
    const epoch = this.#epoch;
    this.#startsReady = false;
    this.#loadingStarts = undefined;
    await this.#loadStarts();
    if (epoch !== this.#epoch) return;
    const positions: Array<{ topic: string; partition: number; offset: number }> = [];
    const rewound = [...this.#partitions.values()].filter(which);
    const withoutCommit = rewound.filter((i) => i.start?.committedOffset == null);
    const ends = new Map<string, number>();
    for (const topic of new Set(withoutCommit.map((i) => i.topic))) {
      for (const o of await admin.fetchTopicOffsets(topic)) {
        ends.set(partitionId(topic, o.partition), Number(this.#o.startFrom === 'earliest' ? o.low : o.high));
      }
    }
    for (const info of rewound) {
      const offset = info.start?.committedOffset ?? ends.get(partitionId(info.topic, info.partition)) ?? 0;
      positions.push({ topic: info.topic, partition: info.partition, offset });
      info.needsStart = true;
      info.position = undefined;
    }
    receiver.seek(positions);
  }

  /** What `/api/status` shows per partition. */
  partitions(): PartitionStatus[] {
    return [...this.#partitions.values()].map((info) => {
      const lag =
        info.highWatermark !== undefined && info.position !== undefined
          ? Math.max(0, info.highWatermark - info.position)
          : null;
      return {
        topic: info.topic,
        partition: info.partition,
        position: info.position ?? null,
        highWatermark: info.highWatermark ?? null,
        lag,
        streamTime: info.streamTime,
        buffered: this.#o.queue.sizeOf(partitionId(info.topic, info.partition)).records,
      };
    });
  }

  /** Stops after the running batch (which publishes and commits) and runs no other. */
  async stop(): Promise<void> {
    if (this.#state === 'idle') {
      this.#state = 'stopped';
      return;
    }
    this.#state = 'stopping';
    clearTimeout(this.#timer);
    this.#wake?.();
    await this.#loop;
    this.#state = 'stopped';
  }
}
