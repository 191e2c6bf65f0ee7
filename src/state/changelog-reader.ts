/**
 * The restore consumer (Kafka Streams' `StoreChangelogReader` and its restore consumer): reads a
 * partition of a changelog topic from its log start to the end that read_committed readers see when
 * the read begins, so that a task can rebuild its state store before it processes.
 *
 * Why kafkajs internals: kafkajs 2.2.4 has no manual partition assignment. Its consumer always joins
 * a group, and a group is the wrong tool here: a join and sync round per restore, a member the
 * coordinator tracks and fences, a subscription that takes every partition of the topic, and no way
 * to stop at a given offset. A restore needs only fetches. So the reader uses what kafkajs's own
 * clients are built on: the `Cluster` that `new Kafka()` creates for each of them (reached through
 * the private symbol `private:Kafka:createCluster`; the kafkajs version is pinned to 2.2.4, and a
 * missing symbol fails at construction), its metadata and leader lookup, `broker.fetch` (Fetch v11,
 * read_committed) and kafkajs's `filterAbortedMessages` (`fetched-records.ts`, which says where this
 * departs from kafkajs's consumer).
 *
 * The end is fixed by the first response: its last stable offset (the high watermark when no
 * transaction is open), so a restore never waits for writes that come later, nor for an open
 * transaction. Fetches ask for `minBytes: 0`: the broker answers at once, also for an empty partition.
 * Retriable failures (leader moved, broker restarting, connection lost) refresh the metadata and are
 * retried with backoff until `retryTimeoutMs` after the first failure of a run of them; any success
 * starts the count again.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka } from 'kafkajs';
import type pino from 'pino';
import { ConfigError, describeError, IllegalStateError, isSluiceError, KafkaError, RestoreError } from '../errors.ts';
import { isRetriableKafkaError } from '../kafka/errors.ts';
import { before, DEADLINE_PASSED } from '../util/deadline.ts';
import {
  createCluster,
  createErrorFromCode,
  type KafkajsBroker,
  type KafkajsCluster,
  READ_COMMITTED,
} from '../kafka/kafkajs-cluster.ts';
import { type ChangelogRecord, type FetchedPartition, readFetched, stableEnd } from './fetched-records.ts';

export type { ChangelogRecord } from './fetched-records.ts';

function clusterOf(kafka: Kafka): KafkajsCluster {
  return createCluster(
    kafka,
    (message) => new RestoreError(`${message}: the changelog reader is built on kafkajs 2.2.4's internals`),
  );
}

export interface ChangelogReaderOptions {
  /**
   * Bytes asked for per fetch request (and partition). At least 64 KiB: a response with no record
   * below the end is taken to mean there is none (compaction leaves at most one empty batch, 61
   * bytes, per producer), which holds only when a response has room for many batches.
   * @defaultValue 8 MiB
   */
  maxBytes?: number;
  /**
   * How long retriable failures are retried, from the first of a run of them, before the restore
   * (or `start()`) rejects with a retryable {@link RestoreError}.
   * @defaultValue 60 000 ms
   */
  retryTimeoutMs?: number;
  logger?: pino.Logger;
}

/** `idle` → `starting` → `running` → `stopping` → `stopped`; a failed start goes back to `idle`. */
export type ChangelogReaderState = 'idle' | 'starting' | 'running' | 'stopping' | 'stopped';

const MIN_MAX_BYTES = 64 * 1024;
const RETRY_INITIAL_MS = 100;
const RETRY_MAX_MS = 2_000;

/** A response, or where the log now starts when the fetch offset was below it. */
type Step = { records: ChangelogRecord[]; next: number; end: number } | { logStart: number };

export class ChangelogReader {
  readonly #topic: string;
  readonly #cluster: KafkajsCluster;
  readonly #maxBytes: number;
  readonly #retryTimeoutMs: number;
  readonly #logger: pino.Logger | undefined;
  readonly #stopped = new AbortController();
  readonly #inflight = new Set<Promise<unknown>>();
  #state: ChangelogReaderState = 'idle';
  #stopping: Promise<void> | undefined;
  /** Per broker, the end of the fetches queued for it ({@link #oneAtATime}). */
  readonly #fetching = new Map<KafkajsBroker, Promise<void>>();
  /** Set by a retriable failure: the next attempt first reloads the metadata. */
  #stale = false;

  constructor(kafka: Kafka, topic: string, options: ChangelogReaderOptions = {}) {
    const { maxBytes = 8 * 1024 * 1024, retryTimeoutMs = 60_000 } = options;
    const issues: string[] = [];
    if (!Number.isInteger(maxBytes) || maxBytes < MIN_MAX_BYTES || maxBytes > 2 ** 31 - 1) {
      issues.push(`changelog reader maxBytes must be an integer from ${MIN_MAX_BYTES} to 2147483647 (got ${maxBytes})`);
    }
    if (!Number.isFinite(retryTimeoutMs) || retryTimeoutMs < 0) {
      issues.push(`changelog reader retryTimeoutMs must be 0 or more (got ${retryTimeoutMs})`);
    }
    if (issues.length > 0) throw new ConfigError(issues);
    this.#topic = topic;
    this.#maxBytes = maxBytes;
    this.#retryTimeoutMs = retryTimeoutMs;
    this.#logger = options.logger;
    this.#cluster = clusterOf(kafka);
  }

  get state(): ChangelogReaderState {
    return this.#state;
  }

  /** Connects and loads the topic's metadata; a failure leaves the reader `idle`, to be started again. */
  async start(): Promise<void> {
    if (this.#state !== 'idle') throw new IllegalStateError(`changelog reader of ${this.#topic} is ${this.#state}`);
    this.#state = 'starting';
    const starting = this.#retrying(`loading the metadata of ${this.#topic}`, async () => {
      await this.#cluster.connect();
      await this.#cluster.addTargetTopic(this.#topic);
    });
    try {
      await this.#watched(starting);
    } catch (error) {
      if (this.#state === 'starting') {
        this.#state = 'idle';
        await this.#cluster.disconnect().catch(() => undefined);
      }
      throw error;
    }
    if (this.#state === 'starting') this.#state = 'running';
  }

  /**
   * Reads `partition` from its start (or from offset `from`: a table catching up; logged if it read any)
   * to the end read_committed readers see when the read begins (the last stable offset), calling
   * `onRecords` for each fetched chunk that holds records, in offset order, with the position after the
   * chunk and the end; the next fetch waits for it. Aborted transactional records and control records are
   * left out. Resolves with the number of records and the end offset; rejects with a {@link RestoreError}
   * when Kafka fails, or with what `onRecords` throws. Several partitions may be restored at once.
   */
  async restore(
    partition: number,
    onRecords: (records: ChangelogRecord[], position: number, end: number) => void | Promise<void>,
    from = 0,
  ): Promise<{ records: number; endOffset: number }> {
    if (this.#state !== 'running') {
      throw new IllegalStateError(`changelog reader of ${this.#topic} is ${this.#state}, not running`);
    }
    if (!Number.isInteger(partition) || partition < 0) {
      throw new RestoreError(`cannot restore partition ${partition} of ${this.#topic}: not a partition number`);
    }
    if (!Number.isInteger(from) || from < 0) {
      throw new RestoreError(`cannot read ${this.#topic}-${partition} from offset ${from}: not an offset`);
    }
    return this.#watched(this.#restore(partition, onRecords, from));
  }

  async #restore(
    partition: number,
    onRecords: (records: ChangelogRecord[], position: number, end: number) => void | Promise<void>,
    from: number,
  ): Promise<{ records: number; endOffset: number }> {
    const started = performance.now();
    const name = `${this.#topic}-${partition}`;
    let position = from;
    let end: number | undefined;
    let records = 0;
    while (end === undefined || position < end) {
      const at = position;
      const known = end;
      const step = await this.#retrying(`restoring ${name} at offset ${at}`, () => this.#fetch(partition, at, known));
      if ('logStart' in step) {
        this.#logger?.info({ topic: this.#topic, partition, from: at, to: step.logStart }, 'changelog starts later');
        position = step.logStart;
        continue;
      }
      end = step.end;
      position = Math.min(step.next, end);
      if (step.records.length > 0) {
        records += step.records.length;
        await onRecords(step.records, position, end);
      }
    }
    const ms = performance.now() - started;
    if (from === 0 || records > 0) {
      this.#logger?.debug(
        { topic: this.#topic, partition, records, endOffset: end, ms },
        'changelog partition restored',
      );
    }
    return { records, endOffset: end };
  }

  /** One fetch at `position`, read up to `end` (`undefined`: the first response sets it). */
  async #fetch(partition: number, position: number, end: number | undefined): Promise<Step> {
    if (this.#stale) {
      await this.#cluster.refreshMetadata();
      this.#stale = false;
    }
    let fetched: FetchedPartition;
    try {
      fetched = await this.#fetchPartition(partition, position);
    } catch (error) {
      if ((error as { type?: unknown } | null)?.type !== 'OFFSET_OUT_OF_RANGE') throw error;
      const logStart = await this.#logStart(partition);
      if (logStart > position) return { logStart };
      throw new RestoreError(
        `offset ${position} of ${this.#topic}-${partition} is out of range, yet the log starts at ${logStart}: the log was truncated`,
        error,
      );
    }
    const target = end ?? Math.max(stableEnd(fetched), position);
    const { records, next } = readFetched(fetched, position, target);
    if (next !== undefined) return { records, next, end: target };
    // Nothing at or after the fetch offset: below a stable end that covers the target, only empty or
    // compacted-away batches are left (kafkajs's consumer moves to the end too: Batch.lastOffset()).
    if (stableEnd(fetched) >= target) return { records, next: target, end: target };
    throw new KafkaError(
      `${this.#topic}-${partition} ends at ${stableEnd(fetched)} for read_committed readers, below the restore's end ${target} (a new leader catching up)`,
    );
  }

  async #fetchPartition(partition: number, fetchOffset: number): Promise<FetchedPartition> {
    const leaders = this.#cluster.findLeaderForPartitions(this.#topic, [partition]);
    const nodeId = Object.keys(leaders)[0];
    if (nodeId === undefined) throw new KafkaError(`${this.#topic} has no partition ${partition} in the metadata`);
    const broker = await this.#cluster.findBroker({ nodeId });
    const response = await this.#oneAtATime(broker, () =>
      broker.fetch({
        replicaId: -1,
        isolationLevel: READ_COMMITTED,
        maxWaitTime: 0,
        minBytes: 0,
        maxBytes: this.#maxBytes,
        topics: [
          {
            topic: this.#topic,
            partitions: [{ partition, fetchOffset: String(fetchOffset), maxBytes: this.#maxBytes }],
          },
        ],
      }),
    );
    // kafkajs throws partition errors itself; the top-level one (fetch sessions, unused here) it does not.
    if (response.errorCode) throw createErrorFromCode(response.errorCode);
    const data = response.responses
      .find((r) => r.topicName === this.#topic)
      ?.partitions.find((p) => p.partition === partition);
    if (!data) throw new KafkaError(`the fetch response has no ${this.#topic}-${partition}`);
    return data as FetchedPartition;
  }

  /**
   * Runs the fetches of concurrent restores on one broker one after the other. kafkajs opens a
   * broker's fetch connection on first use without a lock (`ConnectionPool.getConnection`,
   * `Connection.connect`): two fetches that find it closed open a socket each, and all but the last
   * stay open after `disconnect()`. Kafka answers one request per connection at a time anyway.
   */
  async #oneAtATime<T>(broker: KafkajsBroker, fetch: () => Promise<T>): Promise<T> {
    const previous = this.#fetching.get(broker) ?? Promise.resolve();
    const mine = previous.then(fetch);
    const settled = mine.then(
      () => undefined,
      () => undefined,
    );
    this.#fetching.set(broker, settled);
    try {
      return await mine;
    } finally {
      if (this.#fetching.get(broker) === settled) this.#fetching.delete(broker);
    }
  }

  async #logStart(partition: number): Promise<number> {
    const [topic] = await this.#cluster.fetchTopicsOffset([
      { topic: this.#topic, partitions: [{ partition }], fromBeginning: true },
    ]);
    const offset = topic?.partitions.find((p) => p.partition === partition)?.offset;
    if (offset === undefined) throw new KafkaError(`no log start offset for ${this.#topic}-${partition}`);
    return Number(offset);
  }

  /**
   * Runs `attempt` until it succeeds; retriable failures are retried with backoff (and the metadata
   * reloaded) until `retryTimeoutMs` after the first one, the last attempt raced against that deadline.
   */
  async #retrying<T>(what: string, attempt: () => Promise<T>): Promise<T> {
    let deadline: number | undefined;
    let failure: unknown;
    for (let failures = 0; ; failures++) {
      this.#throwIfStopped(what);
      try {
        const running = this.#watched(attempt());
        const result = await (deadline === undefined ? running : before(running, deadline));
        this.#throwIfStopped(what);
        return result;
      } catch (error) {
        // Past the deadline the attempt is given up, and the failure before it is reported.
        if (error !== DEADLINE_PASSED) failure = error;
      }
      this.#throwIfStopped(what);
      if (!isRetriableKafkaError(failure)) {
        throw isSluiceError(failure) && failure.code === RestoreError.code
          ? failure
          : new RestoreError(`${what} failed: ${describeError(failure)}`, failure);
      }
      this.#stale = true;
      const now = Date.now();
      deadline ??= now + this.#retryTimeoutMs;
      if (now >= deadline) {
        throw new RestoreError(
          `${what} failed: ${describeError(failure)} (retried for ${this.#retryTimeoutMs} ms)`,
          failure,
          true,
        );
      }
      const backoff = Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** failures) * (0.8 + 0.4 * Math.random());
      this.#logger?.warn({ err: failure, topic: this.#topic, failures: failures + 1 }, `${what}: retrying`);
      await sleep(Math.min(backoff, deadline - now), undefined, { signal: this.#stopped.signal }).catch(() => {});
    }
  }

  #throwIfStopped(what: string): void {
    if (this.#stopped.signal.aborted) throw new RestoreError(`${what}: the changelog reader was stopped`);
  }

  /** Keeps `work` in flight until it settles, for {@link stop} (also an attempt given up at the deadline). */
  #watched<T>(work: Promise<T>): Promise<T> {
    this.#inflight.add(work);
    const done = (): void => void this.#inflight.delete(work);
    work.then(done, done);
    return work;
  }

  /**
   * Ends restores in progress (they reject), waits for them and for the requests they have in flight
   * (an attempt given up at the retry deadline ends when kafkajs gives up), and disconnects. Safe to
   * call twice.
   */
  stop(): Promise<void> {
    this.#stopping ??= (async () => {
      this.#state = 'stopping';
      this.#stopped.abort();
      await Promise.allSettled([...this.#inflight]);
      try {
        await this.#cluster.disconnect();
      } finally {
        this.#state = 'stopped';
      }
    })();
    return this.#stopping;
  }
}
