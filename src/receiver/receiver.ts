/**
 * The receiver: a kafkajs consumer in the job's group that fills the BufferQueue. It never commits by
 * itself (the scheduler commits after the sink acknowledges), pauses a partition whose share of the
 * buffer is full and resumes it once the scheduler has drained it. Every group (re)join starts a new
 * *epoch*: kafkajs restarts each assigned partition from its committed offset, so the buffer is
 * emptied and the scheduler rebuilds partition state from the committed positions.
 */
import { type Consumer, type EachBatchPayload, type Kafka, type KafkaMessage } from 'kafkajs';
import type pino from 'pino';
import { FatalError } from '../errors.ts';
import { type BufferQueue, type RawRecord } from '../queue/buffer-queue.ts';

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
  logger: pino.Logger;
  /** Called on every group (re)join, before any record of the new epoch is buffered. */
  onAssignment: (assignment: Assignment) => void;
  onHighWatermark?: (topic: string, partition: number, highWatermark: number) => void;
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

function toRaw(message: KafkaMessage): RawRecord {
  const headers: Array<[string, Buffer]> = [];
  let size = (message.key?.length ?? 0) + (message.value?.length ?? 0);
  for (const [name, value] of Object.entries(message.headers ?? {})) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) {
      const buf = typeof v === 'string' ? Buffer.from(v) : v;
      headers.push([name, buf]);
      size += name.length + buf.length;
    }
  }
  return {
    offset: message.offset,
    timestamp: Number(message.timestamp),
    key: message.key ?? null,
    value: message.value ?? null,
    headers,
    size,
  };
}

export class Receiver {
  readonly #options: ReceiverOptions;
  readonly #consumer: Consumer;
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
    this.#consumer = options.kafka.consumer({
      groupId: options.groupId,
      readUncommitted: !options.readCommitted,
      // The buffer accepts a whole fetch before pausing, so fetches are sized from its bound: a
      // small buffer means small fetches (64 KiB–1 MiB per partition, at most half the buffer).
      maxBytesPerPartition: Math.min(1024 * 1024, Math.max(64 * 1024, Math.floor(options.bufferMaxBytes / 32))),
      maxBytes: Math.min(16 * 1024 * 1024, Math.max(1024 * 1024, Math.floor(options.bufferMaxBytes / 2))),
      maxWaitTimeInMs: 100,
      sessionTimeout: options.sessionTimeoutMs,
      rebalanceTimeout: Math.max(60_000, options.sessionTimeoutMs),
      heartbeatInterval: Math.max(500, Math.min(3_000, Math.floor(options.sessionTimeoutMs / 3))),
    });
    const { GROUP_JOIN, REBALANCING, CRASH, FETCH_START, FETCH } = this.#consumer.events;
    this.#consumer.on(FETCH_START, (event) => this.#fetchStarted.set(event.payload.nodeId, Date.now()));
    this.#consumer.on(FETCH, (event) => this.#fetchAnswered.set(event.payload.nodeId, Date.now()));
    this.#consumer.on(GROUP_JOIN, (event) => {
      this.#epoch++;
      this.#joined = true;
      this.#rebalances++;
      const partitions = Object.entries(event.payload.memberAssignment).flatMap(([topic, list]) =>
        list.map((partition) => ({ topic, partition })),
      );
      this.#assignment = { epoch: this.#epoch, partitions };
      // Paused partitions stay paused across a rejoin in kafkajs; a new epoch starts unpaused and empty.
      const paused = this.#consumer.paused();
      if (paused.length > 0) this.#consumer.resume(paused);
      this.#held.clear();
      options.queue.setPartitions(partitions.map((p) => tp(p.topic, p.partition)));
      options.queue.clearAll();
      options.logger.info(
        { epoch: this.#epoch, partitions: partitions.map((p) => tp(p.topic, p.partition)) },
        'partitions assigned',
      );
      options.onAssignment(this.#assignment);
    });
    this.#consumer.on(REBALANCING, () => {
      this.#joined = false;
      options.logger.info('consumer group rebalancing');
    });
    this.#consumer.on(CRASH, (event) => {
      const { error, restart } = event.payload;
      if (restart) {
        options.logger.warn({ err: error }, 'consumer crashed; kafkajs restarts it');
        return;
      }
      this.#joined = false;
      if (this.#state === 'stopping' || this.#state === 'stopped') return;
      // kafkajs gave up on this consumer (a non-retriable error): a replica that no longer consumes
      // must not stay up looking alive.
      const fatal = new FatalError(`consumer stopped: ${error.name}: ${error.message}`, error);
      options.logger.error({ err: error, code: fatal.code }, 'consumer stopped and will not restart');
      options.onFatal?.(fatal);
    });
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
      await this.#consumer.connect();
      await this.#consumer.subscribe({ topics: [...this.#options.topics], fromBeginning: this.#options.fromBeginning });
      await this.#consumer.run({
        autoCommit: false,
        eachBatchAutoResolve: true,
        partitionsConsumedConcurrently: 1,
        eachBatch: async (payload) => this.#onBatch(payload),
      });
    } catch (error) {
      await this.#consumer.disconnect().catch(() => undefined);
      this.#state = 'idle';
      throw error;
    }
    this.#state = 'running';
  }

  #onBatch({ batch, isStale }: EachBatchPayload): void {
    // A seek or rebalance since this fetch: the records belong to a position we have left.
    if (isStale() || batch.messages.length === 0) return;
    const id = tp(batch.topic, batch.partition);
    if (this.#held.has(id)) return; // being rewound: these records come from a position being left
    const records = batch.messages.map(toRaw);
    const queue = this.#options.queue;
    queue.push(id, records);
    this.#options.onHighWatermark?.(batch.topic, batch.partition, Number(batch.highWatermark));
    this.#options.onRecords?.(
      batch.topic,
      batch.partition,
      records.length,
      records.reduce((n, r) => n + r.size, 0),
    );
    if (queue.shouldPause(id)) {
      this.#consumer.pause([{ topic: batch.topic, partitions: [batch.partition] }]);
      queue.markPaused(id);
    }
  }

  /** Resumes partitions the scheduler has drained below their low-water mark. */
  resumeDrained(): void {
    for (const id of this.#options.queue.resumable()) {
      const cut = id.lastIndexOf(':');
      this.#consumer.resume([{ topic: id.slice(0, cut), partitions: [Number(id.slice(cut + 1))] }]);
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
      this.#consumer.pause([{ topic: p.topic, partitions: [p.partition] }]);
    }
  }

  /** Moves partitions to the given offsets (a rewind): their buffered records are dropped, fetching resumes. */
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
    if (topics.length > 0) this.#consumer.pause(topics.map((topic) => ({ topic })));
  }
}
