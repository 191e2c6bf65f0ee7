/**
 * Exactly-once: the transactional producers of a worker's tasks, one per partition (Kafka Streams'
 * per-task producers), and the settling of their transactions whose outcome a failure left unknown
 * (`sink/transaction-settler.ts`).
 *
 * A partition's producer is opened when the partition is assigned or rewound — which fences every
 * earlier producer of its transactional id — and closed when it fails, is replaced or the partition
 * is dropped. A closed producer leaves behind its last committed transaction (its markers may be
 * missing) and the one whose commit failed; they are settled before the partition's task is restored
 * again, in this order: the coordinator is asked for its decision on the failed one (before any new
 * producer's InitProducerId replaces what it holds), the committed one is settled as committed, a new
 * producer opens, the committed offsets are read (by the main thread), and the failed one is settled
 * with the outcome the restore then assumes.
 */
import type { Kafka } from 'kafkajs';
import type pino from 'pino';
import { TaskProducer } from '../sink/task-producer.ts';
import {
  committedPart,
  type Settlement,
  settlementFor,
  startAfter,
  TransactionSettler,
  type UnsettledTransaction,
} from '../sink/transaction-settler.ts';

export interface TaskProducersOptions {
  groupId: string;
  transactionTimeoutMs: number;
  /** Failed connections of the worker's client so far (`kafka/connection-watch.ts`). */
  connectionFailures?: () => number;
}

interface Left {
  committed?: UnsettledTransaction;
  failed?: UnsettledTransaction;
}

export class TaskProducers {
  readonly #client: Kafka;
  readonly #options: TaskProducersOptions;
  readonly #logger: pino.Logger;
  readonly #settler: TransactionSettler;
  readonly #producers = new Map<string, TaskProducer>();
  /** A closed producer's transactions to settle, by partition. */
  readonly #unsettled = new Map<string, Left>();

  constructor(client: Kafka, options: TaskProducersOptions, logger: pino.Logger) {
    this.#client = client;
    this.#options = options;
    this.#logger = logger;
    const { groupId, transactionTimeoutMs } = options;
    this.#settler = new TransactionSettler(client, { groupId, transactionTimeoutMs });
  }

  /** The partition's open producer. */
  get(id: string): TaskProducer | undefined {
    return this.#producers.get(id);
  }

  async #close(id: string): Promise<void> {
    const producer = this.#producers.get(id);
    this.#producers.delete(id);
    const left = producer?.unsettled();
    if (left) this.#unsettled.set(id, { ...this.#unsettled.get(id), ...left });
    await producer?.close().catch(() => undefined);
  }

  /**
   * A new producer for the partition, opened: the old owner is fenced. First the coordinator's decision
   * on the old producer's failed transaction is noted, then its last committed transaction is settled
   * as committed (the broker decided so), so that the committed offset and changelog read next hold it
   * even if the broker skipped its markers; the new producer's InitProducerId waits until the
   * settling's own markers are written. The new producer's id and epoch are noted, for a later decision.
   */
  async open(id: string, topic: string, partition: number): Promise<void> {
    await this.#close(id);
    const left = this.#unsettled.get(id);
    if (left?.failed && left.failed.decision === undefined) {
      const decision = await this.#settler.decisionOf(left.failed);
      if (decision) left.failed = { ...left.failed, decision };
    }
    if (left?.committed) {
      await this.#settler.settle(committedPart(left.committed, left.failed), 'commit');
      delete left.committed;
      this.#logger.debug({ topic, partition }, 'settled the last committed transaction');
    }
    const producer = new TaskProducer(this.#client, { ...this.#options, topic, partition });
    this.#producers.set(id, producer);
    await producer.open();
    // Best effort: without it, a later failure is settled by the committed offset alone.
    producer.identity = await this.#settler.identify(producer.transactionalId).catch(() => undefined);
  }

  /**
   * Writes the outcome into every partition the task's failed transaction wrote, then opens its
   * producer again (the settling fenced it). Returns the outcome (undefined when there was nothing to
   * settle) and the committed offset the task restores from: past the failed transaction when the
   * coordinator had committed it but the group's offsets do not show it yet.
   */
  async settleFailed(
    id: string,
    topic: string,
    partition: number,
    committedOffset: number | null,
  ): Promise<{ outcome?: Settlement; committedOffset: number | null }> {
    const failed = this.#unsettled.get(id)?.failed;
    this.#unsettled.delete(id);
    if (!failed) return { committedOffset };
    const outcome = settlementFor(failed, committedOffset);
    try {
      await this.#settler.settle(failed, outcome);
    } catch (error) {
      this.#unsettled.set(id, { failed });
      throw error;
    }
    const partitions = [...failed.partitions.values()].reduce((n, p) => n + p.size, 0);
    const by = failed.decision ? 'the coordinator' : 'the committed offset';
    this.#logger.info({ topic, partition, outcome, by, partitions }, 'settled the transaction whose commit failed');
    await this.open(id, topic, partition);
    return { outcome, committedOffset: startAfter(failed, outcome, committedOffset) };
  }

  /** The partition went to another replica: its producer is closed, and what it left is not ours to settle. */
  async drop(id: string): Promise<void> {
    await this.#close(id);
    this.#unsettled.delete(id);
  }

  async close(): Promise<void> {
    await Promise.all([...this.#producers.keys()].map((id) => this.#close(id)));
    await this.#settler.stop();
  }
}
