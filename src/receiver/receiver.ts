/**
 * The receiver: a kafkajs consumer in the job's group that fills the BufferQueue. It never commits by
 * itself (the scheduler commits after the sink acknowledges), pauses a partition whose share of the
 * buffer is full and resumes it once the scheduler has drained it. Every group (re)join starts a new
 * *epoch*: kafkajs restarts each assigned partition from its committed offset, so the buffer is
 * emptied and the scheduler rebuilds partition state from the committed positions.
 */
import { type Consumer, type EachBatchPayload, type Kafka } from 'kafkajs';
import type pino from 'pino';
import { FatalError } from '../errors.ts';
import { isRetriableKafkaError } from '../kafka/errors.ts';
import { advertisingAssigner } from '../kafka/member-address.ts';
import { type BufferQueue } from '../queue/buffer-queue.ts';
import { packMessages } from '../wire/record-codec.ts';

export interface Assignment {
  readonly epoch: number;
  readonly partitions: ReadonlyArray<{ topic: string; partition: number }>;
}

export interface ReceiverOptions {
  kafka: Kafka;
  groupId: string;
  topics: readonly string[];
  queue: BufferQueue;
  /** The buffer's byte bound, which sizes fetches. */
  bufferMaxBytes: number;
  sessionTimeoutMs: number;
  fromBeginning: boolean;
  readCommitted: boolean;
  /**
   * This replica's HTTP address, advertised to the group by its assigner (kafkajs's RoundRobin,
   * `member-address.ts`) so that other replicas find the owner of a partition (queryable state).
   */
  advertisedUrl?: string;
  logger: pino.Logger;
  /** Called on every group (re)join, before any record of the new epoch is buffered. */
  onAssignment: (assignment: Assignment) => void;
  onHighWatermark?: (topic: string, partition: number, highWatermark: number) => void;
  /**
   * A fetch was handled: the partition has been read up to `nextOffset`, including the records kafkajs
   * filtered out (transaction markers, aborted records), whose offsets its high watermark counts too.
   */
  onSkippedRecords?: (topic: string, partition: number, nextOffset: number, highWatermark: number) => void;
  onRecords?: (topic: string, partition: number, count: number, bytes: number) => void;
  /** The consumer crashed and kafkajs will not restart it: the service must stop. */
  onFatal?: (error: FatalError) => void;
}

/**
 * How recent a fetch answer must be for the broker to count as answering. kafkajs fetches every
 * `maxWaitTimeInMs` (100 ms) when nothing is new; a few seconds without an answer means it cannot
 * reach the leader, and then no partition may be taken for caught up (or idle).
 */
const FETCH_FRESHNESS_MS = 3_000;

export type ReceiverState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

const tp = (topic: string, partition: number): string => `${topic}:${partition}`;

export class Receiver {
  readonly #options: ReceiverOptions;
  #consumer: Consumer;
  #state: ReceiverState = 'idle';
  #epoch = 0;
  #assignment: Assignment = { epoch: 0, partitions: [] };
  #joined = false;
  #rebalances = 0;
  /** Partitions being rewound: paused, and whatever is fetched for them is dropped. */
  readonly #held = new Set<string>();
  /** Per broker node: when its last fetch started and answered. */
  readonly #fetchStarted = new Map<number, number>();
  readonly #fetchAnswered = new Map<number, number>();

  constructor(options: ReceiverOptions) {
    this.#options = options;
    this.#consumer = this.#createConsumer();
  }

  /** A kafkajs consumer whose events reach this receiver only while it is the current one. */
  #createConsumer(): Consumer {
    const options = this.#options;
    const consumer = options.kafka.consumer({
      groupId: options.groupId,
      readUncommitted: !options.readCommitted,
      // The buffer accepts a whole fetch before pausing, so fetches are sized from its bound: a
      // small buffer means small fetches (64–256 KiB per partition, 1–4 MiB in all). And kafkajs
      // decodes a whole fetch into message objects before the receiver packs them: on the main heap,
      // that is several times the fetch's bytes. Measured (docs/benchmarks.md): 1 MiB per partition
      // and 16 MiB in all left more than 100 MB of them on the heap under a backlog, at no gain in
      // records/s over 256 KiB.
      maxBytesPerPartition: Math.min(256 * 1024, Math.max(64 * 1024, Math.floor(options.bufferMaxBytes / 64))),
      maxBytes: Math.min(4 * 1024 * 1024, Math.max(1024 * 1024, Math.floor(options.bufferMaxBytes / 8))),
      maxWaitTimeInMs: 100,
      sessionTimeout: options.sessionTimeoutMs,
      rebalanceTimeout: Math.max(60_000, options.sessionTimeoutMs),
      heartbeatInterval: Math.max(500, Math.min(3_000, Math.floor(options.sessionTimeoutMs / 3))),
      ...(options.advertisedUrl !== undefined
        ? { partitionAssigners: [advertisingAssigner(options.advertisedUrl)] }
        : {}),
    });
    const current = (): boolean => consumer === this.#consumer;
    const { GROUP_JOIN, REBALANCING, CRASH, FETCH_START, FETCH, END_BATCH_PROCESS } = consumer.events;
    // Where each fetch ended, counting the records kafkajs filtered out (transaction markers, aborted
    // records), which never reach eachBatch — a batch of nothing else does not either: a read_committed
    // reader of a transactional topic is at its end only past the last marker.
    consumer.on(END_BATCH_PROCESS, (event) => {
      const { topic, partition, lastOffset, highWatermark } = event.payload;
      if (!current() || this.#held.has(tp(topic, partition))) return;
      this.#options.onSkippedRecords?.(topic, partition, Number(lastOffset) + 1, Number(highWatermark));
    });
    consumer.on(FETCH_START, (event) => current() && this.#fetchStarted.set(event.payload.nodeId, Date.now()));
    consumer.on(FETCH, (event) => current() && this.#fetchAnswered.set(event.payload.nodeId, Date.now()));
    consumer.on(GROUP_JOIN, (event) => {
      if (!current()) return;
      this.#epoch++;
      this.#joined = true;
      this.#rebalances++;
      const partitions = Object.entries(event.payload.memberAssignment).flatMap(([topic, list]) =>
        list.map((partition) => ({ topic, partition })),
      );
      this.#assignment = { epoch: this.#epoch, partitions };
      // Paused partitions stay paused across a rejoin in kafkajs; a new epoch starts unpaused and empty.
      const paused = consumer.paused();
      if (paused.length > 0) consumer.resume(paused);
      this.#held.clear();
      options.queue.setPartitions(partitions.map((p) => tp(p.topic, p.partition)));
      options.queue.clearAll();
      options.logger.info(
        { epoch: this.#epoch, partitions: partitions.map((p) => tp(p.topic, p.partition)) },
        'partitions assigned',
      );
      options.onAssignment(this.#assignment);
    });
    consumer.on(REBALANCING, () => {
      if (!current()) return;
      this.#joined = false;
      options.logger.info('consumer group rebalancing');
    });
    consumer.on(CRASH, (event) => {
      if (!current()) return;
      const { error, restart } = event.payload;
      this.#joined = false; // a restarted consumer joins the group anew
      if (restart) {
        options.logger.warn({ err: error }, 'consumer crashed; kafkajs restarts it');
        return;
      }
      if (this.#state === 'stopping' || this.#state === 'stopped') return;
      if (isRetriableKafkaError(error)) {
        // kafkajs gives up on some errors that only mean "not yet" (no group coordinator while the
        // broker starts after an outage): a new consumer, as often as it takes.
        options.logger.warn({ err: error }, 'kafkajs stopped the consumer on a retriable error; starting a new one');
        void this.#replaceConsumer();
        return;
      }
      // A replica that no longer consumes must not stay up looking alive.
      this.#fatal(error);
    });
    return consumer;
  }

  #fatal(error: Error): void {
    const fatal = new FatalError(`consumer stopped: ${error.name}: ${error.message}`, error);
    this.#options.logger.error({ err: error, code: fatal.code }, 'consumer stopped and will not restart');
    this.#options.onFatal?.(fatal);
  }

  /** Starts a new consumer in place of one kafkajs stopped, retrying with backoff until it runs. */
  async #replaceConsumer(): Promise<void> {
    for (let attempt = 0; this.#state === 'running'; attempt++) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(10_000, 500 * 2 ** Math.min(attempt, 5))));
      if (this.#state !== 'running') return;
      this.#consumer = this.#createConsumer();
      try {
        await this.#run(this.#consumer);
        return;
      } catch (error) {
        await this.#consumer.disconnect().catch(() => undefined);
        if (this.#state !== 'running') return; // stopped meanwhile: the failure is the stop's
        if (!isRetriableKafkaError(error)) return this.#fatal(error as Error);
        this.#options.logger.warn({ err: error, attempt }, 'a new consumer failed to start; will retry');
      }
    }
  }

  get state(): ReceiverState {
    return this.#state;
  }
  get assignment(): Assignment {
    return this.#assignment;
  }
  get epoch(): number {
    return this.#epoch;
  }
  /** In the group with partitions assigned (kafkajs may legitimately assign none to a replica). */
  get joined(): boolean {
    return this.#joined;
  }
  get rebalances(): number {
    return this.#rebalances;
  }

  /**
   * Connects, subscribes and starts consuming. A failure leaves the consumer disconnected, so the
   * caller may try again (start-up retries what is retriable); it is thrown as kafkajs reported it.
   */
  async start(): Promise<void> {
    this.#state = 'starting';
    try {
      await this.#run(this.#consumer);
    } catch (error) {
      await this.#consumer.disconnect().catch(() => undefined);
      this.#state = 'idle';
      throw error;
    }
    this.#state = 'running';
  }

  async #run(consumer: Consumer): Promise<void> {
    await consumer.connect();
    await consumer.subscribe({ topics: [...this.#options.topics], fromBeginning: this.#options.fromBeginning });
    await consumer.run({
      autoCommit: false,
      eachBatchAutoResolve: true,
      partitionsConsumedConcurrently: 1,
      eachBatch: async (payload) => this.#onBatch(payload),
    });
  }

  /**
   * Pauses or resumes partitions of the current consumer. kafkajs refuses both while it has no
   * running consumer group (between a crash and the next join), when there is nothing to pause: the
   * next join starts every partition afresh from its committed offset anyway.
   */
  #pauseOrResume(what: 'pause' | 'resume', topics: Array<{ topic: string; partitions?: number[] }>): void {
    try {
      this.#consumer[what](topics);
    } catch (error) {
      this.#options.logger.debug({ err: error, what }, 'consumer not running: nothing to pause or resume');
    }
  }

  #onBatch({ batch, isStale }: EachBatchPayload): void {
    // A seek or rebalance since this fetch: the records belong to a position we have left.
    if (isStale() || batch.messages.length === 0) return;
    const id = tp(batch.topic, batch.partition);
    if (this.#held.has(id)) return; // being rewound: these records come from a position being left
    // Packed once, here: the fetch's message objects and response buffers are garbage from now on.
    const packed = packMessages(batch.messages);
    const queue = this.#options.queue;
    queue.push(id, packed);
    this.#options.onHighWatermark?.(batch.topic, batch.partition, Number(batch.highWatermark));
    this.#options.onRecords?.(batch.topic, batch.partition, batch.messages.length, packed.payloadBytes);
    if (queue.shouldPause(id)) {
      this.#pauseOrResume('pause', [{ topic: batch.topic, partitions: [batch.partition] }]);
      queue.markPaused(id);
    }
  }

  /** Resumes partitions the scheduler has drained below their low-water mark. */
  resumeDrained(): void {
    for (const id of this.#options.queue.resumable()) {
      const cut = id.lastIndexOf(':');
      this.#pauseOrResume('resume', [{ topic: id.slice(0, cut), partitions: [Number(id.slice(cut + 1))] }]);
    }
  }

  /**
   * Holds partitions that are about to be rewound: pauses them and drops their buffered records and
   * whatever is still fetched for them, until `seek()` moves them.
   */
  hold(partitions: ReadonlyArray<{ topic: string; partition: number }>): void {
    for (const p of partitions) {
      const id = tp(p.topic, p.partition);
      this.#held.add(id);
      this.#options.queue.clear(id);
      this.#pauseOrResume('pause', [{ topic: p.topic, partitions: [p.partition] }]);
    }
  }

  /**
   * Moves partitions to the given offsets (a rewind): their buffered records are dropped, fetching
   * resumes. Throws while kafkajs has no running consumer group (the caller retries).
   */
  seek(positions: ReadonlyArray<{ topic: string; partition: number; offset: number }>): void {
    for (const p of positions) {
      const id = tp(p.topic, p.partition);
      this.#options.queue.clear(id);
      this.#consumer.seek({ topic: p.topic, partition: p.partition, offset: String(p.offset) });
      this.#held.delete(id);
      this.#consumer.resume([{ topic: p.topic, partitions: [p.partition] }]);
    }
  }

  /**
   * The brokers answer fetches: some fetch answered within FETCH_FRESHNESS_MS and no broker has
   * had a fetch outstanding for longer. Only then can a partition be known to have nothing new.
   */
  fetchHealthy(now = Date.now()): boolean {
    let answered = false;
    for (const [node, started] of this.#fetchStarted) {
      const last = this.#fetchAnswered.get(node) ?? 0;
      if (now - last < FETCH_FRESHNESS_MS) answered = true;
      else if (started > last && now - started >= FETCH_FRESHNESS_MS) return false;
    }
    return answered;
  }

  /** Commits offsets (with metadata) for the current group generation. */
  async commit(
    offsets: ReadonlyArray<{ topic: string; partition: number; offset: number; metadata: string | null }>,
  ): Promise<void> {
    if (offsets.length === 0) return;
    await this.#consumer.commitOffsets(
      offsets.map((o) => ({ topic: o.topic, partition: o.partition, offset: String(o.offset), metadata: o.metadata })),
    );
  }

  #stopping: Promise<void> | undefined;
  /** Stops fetching and leaves the group. */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#state = 'stopping';
      try {
        await this.#consumer.disconnect();
      } finally {
        this.#joined = false;
        this.#state = 'stopped';
      }
    })();
    return this.#stopping;
  }

  /** Stops fetching without leaving the group (first step of a graceful shutdown). */
  pauseAll(): void {
    const topics = [...new Set(this.#assignment.partitions.map((p) => p.topic))];
    if (topics.length > 0)
      this.#pauseOrResume(
        'pause',
        topics.map((topic) => ({ topic })),
      );
  }
}
