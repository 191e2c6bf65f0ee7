/**
 * Exactly-once delivery: one transactional producer per task (Kafka Streams' eos-alpha), with the
 * stable transactional id `<group>:<topic>:<partition>`. Each batch of the task is one transaction:
 * its outputs, repartition blocks, dead letters, changelog records and its input offset
 * (`sendOffsets`) become visible to `read_committed` readers together, or not at all.
 *
 * Fencing: `open()` begins the first transaction, which sends InitProducerId for the id. The broker
 * then aborts whatever transaction a previous owner of the partition left open (or waits for the one
 * it is committing) and bumps the epoch, so the previous owner — a replica that was paused while the
 * partition moved — gets INVALID_PRODUCER_EPOCH on its next write and never makes one visible.
 * kafkajs 2.2.4 cannot fence through the consumer group's generation (it sends TxnOffsetCommit v1),
 * which is why the ids are per partition (measured in test/kafka/transactions-contract.test.ts).
 *
 * kafkajs's transaction state traps (a failed EndTxn leaves the producer unusable for good) make
 * every failure final for this producer: the task is rebuilt from what was committed, with a new one.
 *
 * After a failed connection of the worker's client since the last commit began (`connectionFailures`,
 * `kafka/connection-watch.ts`), the producer writes nothing more — checked in its partitioner, which
 * kafkajs calls on every attempt of a send before it adds partitions or produces — and fails: a
 * broker that restarted may have left the last commit's markers unwritten, and the next records in the
 * same partition would share their fate (`sink/transaction-settler.ts`).
 */
import { type Kafka, type Producer, type Transaction, CompressionTypes } from 'kafkajs';
import { KafkaError, ProducerFencedError } from '../errors.ts';
import { fastDefaultPartitioner } from '../kafka/kafkajs-fixes.ts';
import { type TopicMessages } from './kafka-sink.ts';
import { type ProducerIdentity, type UnsettledTransaction } from './transaction-settler.ts';

export interface TaskProducerOptions {
  groupId: string;
  topic: string;
  partition: number;
  /** How long the broker lets a transaction stay open before it aborts it (and fences this producer). */
  transactionTimeoutMs: number;
  /** Failed connections of the client so far (`ConnectionWatch.failures`); none are seen without it. */
  connectionFailures?: () => number;
}

/**
 * The transactional id of a task: the same on every replica, so that a new owner fences the old. Colons
 * separate the parts: neither group ids nor topic names may hold one, so two jobs never share an id
 * (with dashes, group `clicks` on topic `eu-views` and group `clicks-eu` on topic `views` would).
 */
export function transactionalIdFor(groupId: string, topic: string, partition: number): string {
  return `${groupId}:${topic}:${partition}`;
}

/** kafkajs reports a fenced producer as INVALID_PRODUCER_EPOCH (it does not know PRODUCER_FENCED, 90). */
function isFenced(error: unknown): boolean {
  for (let e: unknown = error, depth = 0; e && depth < 5; depth++) {
    const type = (e as { type?: unknown }).type;
    if (type === 'INVALID_PRODUCER_EPOCH' || type === 'PRODUCER_FENCED') return true;
    e = (e as { originalError?: unknown; cause?: unknown }).originalError ?? (e as { cause?: unknown }).cause;
  }
  return false;
}

function isConcurrentTransactions(error: unknown): boolean {
  return (error as { type?: unknown } | null)?.type === 'CONCURRENT_TRANSACTIONS';
}

function addTo(map: Map<string, Set<number>>, topic: string, partition: number): void {
  let partitions = map.get(topic);
  if (!partitions) map.set(topic, (partitions = new Set()));
  partitions.add(partition);
}

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

export class TaskProducer {
  readonly transactionalId: string;
  /** The producer id and epoch the coordinator gave this producer, once known (`TaskProducers.open`). */
  identity: ProducerIdentity | undefined;
  readonly #options: TaskProducerOptions;
  readonly #producer: Producer;
  #transaction: Transaction | undefined;
  /** A write failed: this producer is done (see the module comment). */
  #failed: Error | undefined;
  /** The partitions the current transaction sent records to, by topic (as the partitioner chose them). */
  #touched = new Map<string, Set<number>>();
  /** Those the broker answered for (the produce responses of the current transaction). */
  #written = new Map<string, Set<number>>();
  /** The last transaction the broker said it committed: its markers may still be missing. */
  #lastCommitted: UnsettledTransaction | undefined;
  /** The transaction whose commit failed: its outcome is not known here (`transaction-settler.ts`). */
  #unsettled: UnsettledTransaction | undefined;

  constructor(kafka: Kafka, options: TaskProducerOptions) {
    this.#options = options;
    this.transactionalId = transactionalIdFor(options.groupId, options.topic, options.partition);
    this.#producer = kafka.producer({
      transactionalId: this.transactionalId,
      transactionTimeout: options.transactionTimeoutMs,
      idempotent: true,
      maxInFlightRequests: 1,
      // The default choices, and a note of each partition written (to settle a failed transaction).
      createPartitioner: () => {
        const partitioner = fastDefaultPartitioner();
        return (args) => {
          this.#checkConnections();
          const partition = partitioner(args);
          addTo(this.#touched, args.topic, partition);
          return partition;
        };
      },
      allowAutoTopicCreation: false,
      // Bounded: a transaction cannot outlive its timeout anyway; the batch is redone after a failure.
      // A short first retry: the first AddPartitionsToTxn of a batch usually meets CONCURRENT_TRANSACTIONS
      // while the broker writes the previous batch's markers, which takes milliseconds, and kafkajs's
      // default first wait (100–300 ms) would be spent by every task on every batch.
      retry: { retries: 12, initialRetryTime: 10, maxRetryTime: 2_000 },
    });
  }

  /** Failed connections before the last commit began (or before opening): later ones stop writes. */
  #failuresBefore = 0;

  #failures(): number {
    return this.#options.connectionFailures?.() ?? 0;
  }

  /** Throws, not retriable (kafkajs then gives up the send at once), after a connection failed. */
  #checkConnections(): void {
    if (this.#failures() === this.#failuresBefore) return;
    const error = new KafkaError(
      'a connection to Kafka failed since the last commit began: a restarting broker may have left its markers unwritten, so this transaction writes nothing more',
      undefined,
      false,
    );
    throw Object.assign(error, { retriable: false });
  }

  /** Connects and begins the first transaction, which fences every previous owner of the task. */
  async open(): Promise<void> {
    this.#failuresBefore = this.#failures();
    try {
      await this.#producer.connect();
      this.#transaction = await this.#producer.transaction();
    } catch (error) {
      throw this.#fail(error, 'could not begin a transaction');
    }
  }

  /**
   * Commits one batch of the task: `calls` in order, then the input offset, in one transaction.
   * Resolves when the broker has committed it. Any failure aborts what it can and is final.
   */
  async commit(
    calls: Iterable<TopicMessages[]>,
    offset: { topic: string; partition: number; offset: number } | null,
  ): Promise<void> {
    if (this.#failed) throw this.#failed;
    const pending = calls[Symbol.iterator]();
    let next = pending.next();
    if (next.done && offset === null) return;
    const transaction = this.#transaction ?? (await this.#begin());
    this.#transaction = undefined;
    this.#touched = new Map();
    this.#written = new Map();
    let offsetsSent = false;
    let offsetsWritten = false;
    try {
      for (; !next.done; next = pending.next()) {
        const written = await transaction.sendBatch({
          topicMessages: next.value,
          acks: -1,
          compression: CompressionTypes.None,
        });
        for (const { topicName, partition } of written) addTo(this.#written, topicName, partition);
      }
      if (offset) {
        offsetsSent = true;
        await this.#sendOffsets(transaction, offset);
        offsetsWritten = true;
      }
      const failuresBefore = this.#failures();
      await transaction.commit();
      this.#failuresBefore = failuresBefore;
      this.#lastCommitted = this.#transactionOf(offset, true);
    } catch (error) {
      // Even an abort that answers may leave partitions unmarked (see transaction-settler.ts).
      this.#unsettled = this.#transactionOf(offsetsSent ? offset : null, offsetsWritten);
      await transaction.abort().catch(() => undefined);
      throw this.#fail(error, 'transaction failed');
    }
  }

  #transactionOf(offset: { offset: number } | null, offsetsWritten: boolean): UnsettledTransaction {
    return {
      transactionalId: this.transactionalId,
      partitions: this.#touched,
      written: this.#written,
      offset: offset?.offset ?? null,
      offsetsWritten: offset !== null && offsetsWritten,
      ...(this.identity && { producer: this.identity }),
    };
  }

  /**
   * The transactions to settle before the task is restored again: the last one the broker said it
   * committed (EndTxn answers before the markers are written, and a broker restarting then can skip
   * them) and, once this producer has failed, the one whose commit failed.
   */
  unsettled(): { committed?: UnsettledTransaction; failed?: UnsettledTransaction } | undefined {
    if (!this.#lastCommitted && !this.#unsettled) return undefined;
    return {
      ...(this.#lastCommitted && { committed: this.#lastCommitted }),
      ...(this.#unsettled && { failed: this.#unsettled }),
    };
  }

  async #begin(): Promise<Transaction> {
    try {
      return await this.#producer.transaction();
    } catch (error) {
      throw this.#fail(error, 'could not begin a transaction');
    }
  }

  /**
   * AddOffsetsToTxn right after the previous commit meets CONCURRENT_TRANSACTIONS while the broker
   * finishes that commit, and kafkajs does not retry it (measured: most rounds); a short retry does.
   */
  async #sendOffsets(
    transaction: Transaction,
    { topic, partition, offset }: { topic: string; partition: number; offset: number },
  ): Promise<void> {
    const request = {
      consumerGroupId: this.#options.groupId,
      topics: [{ topic, partitions: [{ partition, offset: String(offset) }] }],
    };
    for (let attempt = 0; ; attempt++) {
      try {
        await transaction.sendOffsets(request);
        return;
      } catch (error) {
        if (!isConcurrentTransactions(error) || attempt >= 10) throw error;
        await sleep(Math.min(500, 20 * 2 ** attempt));
      }
    }
  }

  #fail(error: unknown, what: string): Error {
    const id = this.transactionalId;
    const failure = isFenced(error)
      ? new ProducerFencedError(
          `${id}: fenced (INVALID_PRODUCER_EPOCH): another replica took ${this.#options.topic}:${this.#options.partition} over, or the transaction outlived SLUICE_TRANSACTION_TIMEOUT (${what})`,
          error,
        )
      : new KafkaError(`${id}: ${what}: ${(error as Error).message}`, error);
    this.#failed = failure;
    return failure;
  }

  async close(): Promise<void> {
    await this.#producer.disconnect();
  }
}
