/**
 * The composition root: builds every component in dependency order from the resolved configuration
 * and the job, starts them forward and closes them in reverse (readiness off, stop fetching, finish
 * the running batch — publish and commit — leave the group, stop the workers, close HTTP).
 */
// First, as in the worker threads: the kafkajs fixes (the receiver's and admin's connections need the
// third; the first applies only if it loads before kafkajs).
import { abortedFilterFixActive } from './kafka/kafkajs-fixes.ts';
import { type FastifyInstance } from 'fastify';
import { Kafka, type Admin } from 'kafkajs';
import pino from 'pino';
import { type ResolvedConfig, redactConfig } from './config/resolve.ts';
import { type FatalError, IllegalStateError } from './errors.ts';
import { buildHttpServer, type Check } from './http/server.ts';
import { BrokerProbe } from './kafka/broker-probe.ts';
import { type StateBackend, stateBackend } from './query/state-backend.ts';
import { retryStartup } from './kafka/startup.ts';
import { loadJobPlan } from './job/loader.ts';
import { type JobPlan } from './job/plan.ts';
import { Metrics } from './metrics/registry.ts';
import { WorkerPool } from './pool/worker-pool.ts';
import { BufferQueue } from './queue/buffer-queue.ts';
import { Receiver } from './receiver/receiver.ts';
import { kafkaClientConfig } from './kafka/client.ts';
import { BatchHistory } from './scheduler/batch-history.ts';
import { Scheduler } from './scheduler/scheduler.ts';
import { TableStatsListener } from './state/table-stats.ts';
import { ensureTopics } from './kafka/topics.ts';
import { before, DEADLINE_PASSED } from './util/deadline.ts';

export type AppState = 'created' | 'starting' | 'running' | 'stopping' | 'stopped';

export class App {
  readonly config: ResolvedConfig;
  readonly plan: JobPlan;
  readonly logger: pino.Logger;
  readonly metrics = new Metrics();
  readonly history: BatchHistory;
  readonly groupId: string;
  readonly #jobPath: string;
  #state: AppState = 'created';
  #kafka: Kafka;
  #admin: Admin | undefined;
  #queue: BufferQueue;
  #pool: WorkerPool | undefined;
  #receiver: Receiver | undefined;
  #scheduler: Scheduler | undefined;
  #tableStats: TableStatsListener | undefined;
  #stateBackend: StateBackend | undefined;
  #http: FastifyInstance;
  readonly #probe: BrokerProbe;
  #loopLag = 0;
  #loopProbe: NodeJS.Timeout | undefined;

  private constructor(config: ResolvedConfig, plan: JobPlan, jobPath: string, logger: pino.Logger) {
    this.config = config;
    this.plan = {
      ...plan,
      ...(config.batchIntervalMs !== undefined ? { batchIntervalMs: config.batchIntervalMs } : {}),
      ...(config.maxBatchRecords !== undefined ? { maxBatchRecords: config.maxBatchRecords } : {}),
      ...(config.delivery !== undefined ? { delivery: config.delivery } : {}),
    };
    this.#jobPath = jobPath;
    this.logger = logger;
    this.groupId = config.groupId ?? plan.name;
    this.history = new BatchHistory(config.batchHistory);
    this.#kafka = new Kafka(kafkaClientConfig(config.kafka, logger));
    this.#probe = new BrokerProbe(config.kafka, logger);
    this.#queue = new BufferQueue({ maxRecords: config.buffer.maxRecords, maxBytes: config.buffer.maxBytes });
    this.#http = buildHttpServer({
      logger: logger.child({ component: 'http' }),
      registry: this.metrics.registry,
      history: this.history,
      liveness: () => this.liveness(),
      readiness: () => this.readiness(),
      auth: { token: config.http.token, metricsRequireToken: config.http.metricsRequireToken },
      state: { job: this.plan.name, windowed: this.plan.window !== undefined, backend: () => this.#stateBackend },
      status: () => ({
        job: this.plan.name,
        groupId: this.groupId,
        state: this.#state,
        batchIntervalMs: this.plan.batchIntervalMs,
        inputTopics: this.plan.inputTopics,
        outputTopic: this.plan.outputTopic,
        dlqTopic: this.plan.dlqTopic,
        repartitionTopic: this.plan.repartitionTopic ?? null,
        changelogTopic: this.plan.changelogTopic ?? null,
        delivery: this.plan.delivery,
        restoring: this.#scheduler?.restoring() ?? { partitions: 0, records: 0, end: 0 },
        workers: this.#pool?.size ?? 0,
        workerRestarts: this.#pool?.restarts ?? 0,
        tasks: (this.#pool?.held() ?? []).map((held, worker) => ({
          worker,
          partitions: held.map((t) => ({ topic: t.topic, partition: t.partition, kind: t.kind })),
          openWindows: held.reduce((n, t) => n + t.openWindows, 0),
        })),
        buffer: { records: this.#queue.records, bytes: this.#queue.bytes, paused: this.#queue.pausedPartitions.length },
        partitions: this.#scheduler?.partitions() ?? [],
      }),
    });
  }

  /** Loads and validates the job in the main thread, so an invalid job stops start-up with one message. */
  static async create(config: ResolvedConfig, jobPath: string, logger?: pino.Logger): Promise<App> {
    const log = logger ?? pino({ level: config.logLevel, base: { service: 'sluice' } });
    const plan = await loadJobPlan(jobPath);
    return new App(config, plan, jobPath, log.child({ job: plan.name }));
  }

  /**
   * Called once when a component fails beyond repair (the batch loop, a consumer kafkajs will not
   * restart): liveness fails from then on, and the process owner (main.ts) stops the service and
   * exits non-zero so the orchestrator restarts it.
   */
  onFatal: (error: FatalError) => void = () => undefined;
  #fatal: FatalError | undefined;

  #failFatally(error: FatalError): void {
    if (this.#fatal) return;
    this.#fatal = error;
    this.onFatal(error);
  }

  get state(): AppState {
    return this.#state;
  }
  get http(): FastifyInstance {
    return this.#http;
  }

  /** True once close() has begun: start() stops where it is (close releases what was built). */
  #closingStarted(): boolean {
    return this.#state !== 'starting';
  }

  async start(): Promise<void> {
    this.#state = 'starting';
    const { config, plan, logger } = this;
    logger.info(
      {
        config: redactConfig(config),
        plan: {
          ...plan,
          stage1: plan.stage1.map((o) => o.label),
          stage2: plan.stage2.map((o) => o.label),
          window: plan.window && { ...plan.window, aggregator: plan.window.aggregator.name },
          eventTime: Boolean(plan.eventTime),
        },
      },
      'starting',
    );
    if (!abortedFilterFixActive()) {
      // Without it the receiver would take records of aborted transactions for committed ones.
      throw new IllegalStateError(
        'kafkajs was loaded before src/kafka/kafkajs-fixes.ts: its aborted-record filter is not corrected',
      );
    }
    await this.#http.listen({ host: config.http.host, port: config.http.port });
    this.#startLoopProbe();

    const retry = {
      brokers: config.kafka.brokers,
      deadline: Date.now() + config.startupTimeoutMs,
      logger,
      cancelled: () => this.#closingStarted(),
    };
    // A probe that does not retry first: a TLS or SASL mistake stops start-up in a second.
    await retryStartup('reach the brokers', () => this.#probe.check(), retry);
    const admin = this.#kafka.admin();
    this.#admin = admin;
    await retryStartup('connect the admin client', () => admin.connect(), retry);
    if (this.#closingStarted()) return;
    const layout = await retryStartup(
      'check the topics',
      () => ensureTopics(admin, plan, config.createTopics, logger),
      retry,
    );
    // In the job's order of input topics: a windowed task's changelog partition is its position here.
    const sources = plan.inputTopics.flatMap((topic) =>
      Array.from({ length: layout.inputPartitions.get(topic) ?? 0 }, (_, p) => `${topic}:${p}`),
    );
    this.#probe.start();

    this.#tableStats = new TableStatsListener(this.groupId, this.metrics);
    this.#pool = await WorkerPool.create({
      size: config.workers,
      jobPath: this.#jobPath,
      maxRecordBytes: config.maxRecordBytes,
      heapBytes: config.workerHeapBytes,
      batchIntervalMs: config.batchIntervalMs,
      sources,
      kafka: {
        connection: config.kafka,
        topics: {
          output: plan.outputTopic,
          dlq: plan.dlqTopic,
          repartition: plan.repartitionTopic,
          repartitionPartitions: layout.repartitionPartitions ?? 0,
          changelog: plan.changelogTopic,
          tables: layout.tablePartitions,
        },
        logLevel: config.logLevel,
        groupId: this.groupId,
        delivery: plan.delivery,
        transactionTimeoutMs: config.transactionTimeoutMs,
      },
      recordTimeoutMs: config.recordTimeoutMs,
      onCrash: (index, error) => {
        this.metrics.workerRestarts.inc();
        logger.warn(
          { worker: index, err: error },
          'worker crashed; replaced, its partitions replay from their committed offsets',
        );
      },
    });
    const pool = this.#pool;
    this.metrics.workerHeapSource = () => pool.heapStatistics();
    if (this.#closingStarted()) return;
    const topics = [...plan.inputTopics, ...(plan.repartitionTopic ? [plan.repartitionTopic] : [])];
    const receiver = new Receiver({
      kafka: this.#kafka,
      groupId: this.groupId,
      topics,
      queue: this.#queue,
      bufferMaxBytes: config.buffer.maxBytes,
      sessionTimeoutMs: config.sessionTimeoutMs,
      fromBeginning: config.startFrom === 'earliest',
      readCommitted: true,
      advertisedUrl: config.http.advertisedUrl,
      logger: logger.child({ component: 'receiver' }),
      onAssignment: (assignment) => this.#scheduler?.onAssignment(assignment),
      onHighWatermark: (topic, partition, hw) => this.#scheduler?.onHighWatermark(topic, partition, hw),
      onSkippedRecords: (topic, partition, next, hw) => this.#scheduler?.onSkippedRecords(topic, partition, next, hw),
      onRecords: (topic, _partition, _count, bytes) => this.metrics.bytesIn.inc({ topic }, bytes),
      onFatal: (error) => this.#failFatally(error),
    });
    this.#receiver = receiver;
    const scheduler = new Scheduler({
      plan,
      groupId: this.groupId,
      startFrom: config.startFrom,
      batchIntervalMs: plan.batchIntervalMs,
      maxBatchRecords: plan.maxBatchRecords,
      queue: this.#queue,
      receiver,
      pool: this.#pool,
      admin,
      metrics: this.metrics,
      history: this.history,
      logger: logger.child({ component: 'scheduler' }),
      onFatal: (error) => this.#failFatally(error),
    });
    this.#scheduler = scheduler;
    this.#stateBackend = stateBackend(this, { layout, admin, receiver, scheduler, pool });
    scheduler.start();
    await retryStartup('join the consumer group', () => receiver.start(), retry);
    if (this.#closingStarted()) return;
    this.#state = 'running';
    logger.info(
      { http: `${config.http.host}:${config.http.port}`, groupId: this.groupId, workers: config.workers },
      'running',
    );
  }

  /** Measures event-loop lag: a blocked loop fails liveness. */
  #startLoopProbe(): void {
    let expected = Date.now() + 500;
    this.#loopProbe = setInterval(() => {
      const now = Date.now();
      this.#loopLag = Math.max(0, now - expected);
      expected = now + 500;
    }, 500);
    this.#loopProbe.unref();
  }

  liveness(): Check {
    if (this.#fatal) return { ok: false, reason: `[${this.#fatal.code}] ${this.#fatal.message}` };
    if (this.#loopLag > 10_000) return { ok: false, reason: `event loop blocked for ${this.#loopLag} ms` };
    const scheduler = this.#scheduler;
    if (scheduler && this.#state === 'running') {
      const stalledFor = Date.now() - scheduler.lastCompletedAt;
      const limit = this.config.stallFactor * this.plan.batchIntervalMs;
      if (stalledFor > limit && this.#queue.records > 0) {
        return {
          ok: false,
          reason: `no batch completed for ${stalledFor} ms while ${this.#queue.records} records wait`,
        };
      }
    }
    return { ok: true };
  }

  readiness(): Check {
    if (this.#state !== 'running') return { ok: false, reason: `service is ${this.#state}` };
    if (!this.#probe.reachable) return { ok: false, reason: 'Kafka brokers unreachable' };
    if (!this.#receiver?.joined) return { ok: false, reason: 'consumer group not joined' };
    // Only partitions that are not paused are fetched: with all of them paused (a full buffer) the
    // brokers have nothing to answer.
    const fetching = this.#receiver.assignment.partitions.length > this.#queue.pausedPartitions.length;
    if (fetching && !this.#receiver.fetchHealthy()) return { ok: false, reason: 'Kafka brokers do not answer fetches' };
    if (this.#receiver.assignment.partitions.length === 0) return { ok: false, reason: 'no partitions assigned' };
    const restoring = this.#scheduler?.restoring();
    if (restoring && restoring.partitions > 0) {
      const { partitions, records, end } = restoring;
      return {
        ok: false,
        reason: `restoring state of ${partitions} partition(s): ${records} of about ${end} changelog records read`,
      };
    }
    if (!this.#scheduler?.ready) return { ok: false, reason: 'partition state not restored yet' };
    if (this.#pool?.state !== 'running') return { ok: false, reason: 'worker pool not running' };
    return { ok: true };
  }

  #closing: Promise<void> | undefined;
  /** Graceful stop; `force` skips waiting for the running batch. Safe to call twice. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      const previous = this.#state;
      this.#state = 'stopping';
      const steps: Array<[string, () => Promise<unknown> | unknown]> = [
        ['stop fetching', () => this.#receiver?.pauseAll()],
        ['finish the running batch', () => this.#scheduler?.stop()],
        ['leave the group', () => this.#receiver?.stop()],
        ['flush the producers and stop the workers', () => this.#pool?.close()],
        ['disconnect admin', () => Promise.all([this.#admin?.disconnect(), this.#probe.close()])],
        ['stop the table statistics', () => this.#tableStats?.close()],
        ['close HTTP', () => this.#http.close()],
      ];
      clearInterval(this.#loopProbe);
      // Every step gets what is left of the shutdown budget (one second is kept for exiting): a step
      // that cannot finish — e.g. leaving a group whose join waits for a dead member's session to
      // expire — must not turn a graceful stop into a timeout.
      const deadline = Date.now() + Math.max(1000, this.config.shutdownTimeoutMs - 1000);
      for (const [name, step] of steps) {
        try {
          await before(Promise.resolve(step()), deadline);
        } catch (error) {
          if (error === DEADLINE_PASSED)
            this.logger.warn({ step: name, previous }, 'shutdown step did not finish in time; going on');
          else this.logger.warn({ err: error, step: name, previous }, 'shutdown step failed');
        }
      }
      this.#state = 'stopped';
      this.logger.info('stopped');
    })();
    return this.#closing;
  }
}
