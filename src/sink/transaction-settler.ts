/**
 * Settles a task's transaction whose outcome Sluice did not see (its commit failed: the broker went
 * away, the answer was lost), before the task is restored from what was committed.
 *
 * Why: a transaction coordinator completes a transaction by writing a marker (commit or abort) into
 * each partition the transaction wrote. Kafka 4.3.0 to 4.4.0 skip the marker for a partition that has
 * no leader at that moment, as if the topic had been deleted (KAFKA-20734: `KRaftMetadataCache`
 * answers "no such partition" for a leaderless one), and record the transaction as complete anyway.
 * That happens whenever a transaction completes while all replicas of one of its partitions are down:
 * a single broker, or a whole cluster, restarting with transactions in flight (the coordinator loads
 * them before the partitions have leaders again). The records of that transaction then stay in those
 * partitions without a marker: read_committed readers stop before them, and the next marker the same
 * producer id writes there decides them. When the next owner of the task redid the batch and
 * committed, its marker committed the first attempt's records too: the batch's results twice
 * (measured: up to 90 of 1 200 windows after a broker SIGKILL, `test/e2e/exactly-once.test.ts`).
 *
 * So before restoring such a task, Sluice writes that decision itself: it opens a transaction for the
 * task's id (which fences every earlier producer of it), adds every partition the unsettled one wrote
 * to and the consumer group's offsets — no records — and ends it with the outcome the task's restore
 * will assume. On a partition the coordinator did mark, the extra marker is empty and changes nothing;
 * on one it skipped, it decides the waiting records the same way the restore does.
 *
 * The outcome is the coordinator's when it had decided: a commit whose EndTxn reached it but whose
 * answer was lost is committed on every partition whose marker it wrote, so the settling must commit
 * too, and the task's restore must start after that batch. Sluice asks the coordinator
 * (DescribeTransactions, `kafka/describe-transactions.ts`) before anything else touches the
 * transactional id — a new producer's InitProducerId would replace the state — and takes its answer
 * when it is about the failed producer (same producer id and epoch, noted when the producer opened):
 * PrepareCommit or CompleteCommit → commit, PrepareAbort or CompleteAbort → abort. Otherwise (the
 * transaction still open, another producer since, a broker without the API) the committed offset
 * decides: commit when it already holds the transaction's input offset (its commit reached the
 * offsets, so its other writes must count), abort otherwise (the batch is redone from the committed
 * offset, so nothing of the first attempt may count). The committed offset alone is not enough: the
 * group's offsets are written by a marker too, and a marker skipped there hides a commit that the
 * output partitions already show (measured: 18 of 1 200 windows twice after a broker SIGKILL).
 *
 * Why by hand: kafkajs's transactions add a partition only when a record is sent to it. The settler
 * uses the requests kafkajs's own transactional producer makes (InitProducerId, AddPartitionsToTxn,
 * AddOffsetsToTxn, EndTxn) through its `Cluster` (`kafka/kafkajs-cluster.ts`).
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Kafka } from 'kafkajs';
import { KafkaError } from '../errors.ts';
import { isRetriableKafkaError } from '../kafka/errors.ts';
import { describeTransaction, supportsDescribeTransactions } from '../kafka/describe-transactions.ts';
import {
  createCluster,
  type KafkajsBroker,
  type KafkajsCluster,
  TRANSACTION_COORDINATOR,
} from '../kafka/kafkajs-cluster.ts';

/** What a task's transaction wrote, kept when its commit failed. */
export interface UnsettledTransaction {
  transactionalId: string;
  /** The partitions it sent records to, by topic. */
  partitions: ReadonlyMap<string, ReadonlySet<number>>;
  /** Those of them the broker confirmed (a failed send may or may not have reached it). */
  written: ReadonlyMap<string, ReadonlySet<number>>;
  /** The input offset it sent with them (`sendOffsets`), if it got that far. */
  offset: number | null;
  /** The broker confirmed the offsets. */
  offsetsWritten: boolean;
  /** The producer id and epoch of the producer that ran it (unknown without DescribeTransactions). */
  producer?: ProducerIdentity;
  /** The coordinator's decision, when it had made one (`TransactionSettler.decisionOf`). */
  decision?: Settlement;
}

/** A transactional producer as the coordinator knows it. */
export interface ProducerIdentity {
  id: string;
  epoch: number;
}

export type Settlement = 'commit' | 'abort';

/**
 * The outcome to settle `unsettled` with: the coordinator's decision when it had made one; otherwise
 * commit when the committed offset holds the transaction's input offset, abort otherwise.
 */
export function settlementFor(unsettled: UnsettledTransaction, committedOffset: number | null): Settlement {
  if (unsettled.decision) return unsettled.decision;
  return unsettled.offset !== null && committedOffset !== null && committedOffset >= unsettled.offset
    ? 'commit'
    : 'abort';
}

/**
 * The committed offset a task restores from once `unsettled` is settled with `outcome`: a committed
 * transaction's input offset when the group's committed offset is behind it (its marker was skipped).
 */
export function startAfter(
  unsettled: UnsettledTransaction,
  outcome: Settlement,
  committedOffset: number | null,
): number | null {
  if (outcome !== 'commit' || unsettled.offset === null) return committedOffset;
  return committedOffset === null || committedOffset < unsettled.offset ? unsettled.offset : committedOffset;
}

/** The decision a coordinator state shows, for a transaction of the producer it names. */
export function decisionIn(state: string): Settlement | undefined {
  if (state === 'PrepareCommit' || state === 'CompleteCommit') return 'commit';
  if (state === 'PrepareAbort' || state === 'CompleteAbort') return 'abort';
  return undefined;
}

/**
 * What of a failed producer's last committed transaction can be settled as committed: the partitions
 * its failed successor did not surely write to, and its offsets unless the failed one surely wrote
 * offsets too. Where the failed one wrote, a marker there decides its records (and those of the
 * committed one, if the broker skipped that one's markers): the failed one's settling decides. Where it
 * only tried (no answer: most often the broker was gone), committing is right unless the write landed.
 */
export function committedPart(committed: UnsettledTransaction, failed?: UnsettledTransaction): UnsettledTransaction {
  if (!failed) return committed;
  const partitions = new Map<string, ReadonlySet<number>>();
  for (const [topic, list] of committed.partitions) {
    const theirs = failed.written.get(topic);
    const left = new Set([...list].filter((p) => !theirs?.has(p)));
    if (left.size > 0) partitions.set(topic, left);
  }
  return { ...committed, partitions, offset: failed.offsetsWritten ? null : committed.offset };
}

export interface TransactionSettlerOptions {
  groupId: string;
  transactionTimeoutMs: number;
  /**
   * How long a step is retried on retriable errors (coordinator loading or moved, a partition without
   * a leader, the previous transaction still completing) before `settle()` rejects.
   * @defaultValue 60 000 ms
   */
  retryTimeoutMs?: number;
}

const RETRY_INITIAL_MS = 20;
const RETRY_MAX_MS = 1_000;

/** A partition to settle has no leader (yet): retried. */
class Leaderless extends Error {}

function typeOf(error: unknown): string | undefined {
  const type = (error as { type?: unknown } | null)?.type;
  return typeof type === 'string' ? type : undefined;
}

export class TransactionSettler {
  readonly #kafka: Kafka;
  readonly #options: Required<TransactionSettlerOptions>;
  #cluster: KafkajsCluster | undefined;
  #connected: Promise<void> | undefined;

  constructor(kafka: Kafka, options: TransactionSettlerOptions) {
    this.#kafka = kafka;
    this.#options = { retryTimeoutMs: 60_000, ...options };
  }

  /** Connects on first use: most runs never settle anything. */
  async #connect(): Promise<KafkajsCluster> {
    this.#cluster ??= createCluster(
      this.#kafka,
      (message) => new KafkaError(`${message}: the transaction settler is built on kafkajs 2.2.4's internals`),
    );
    const cluster = this.#cluster;
    this.#connected ??= cluster.connect().catch((error: unknown) => {
      this.#connected = undefined;
      throw error;
    });
    await this.#connected;
    return cluster;
  }

  /**
   * Writes `outcome` into every partition `unsettled` wrote (and the group's offsets when it committed
   * any): see the module comment. Fences every earlier producer of its transactional id; a producer
   * of the task opened before this must be opened again.
   */
  async settle(unsettled: UnsettledTransaction, outcome: Settlement): Promise<void> {
    const cluster = await this.#connect();
    const { transactionalId } = unsettled;
    const topics = [...unsettled.partitions].map(([topic, partitions]) => ({
      topic,
      partitions: [...partitions].sort((a, b) => a - b),
    }));
    await this.#retry('partition leaders', async () => {
      await cluster.addMultipleTargetTopics(topics.map((t) => t.topic));
      await cluster.refreshMetadata();
      for (const { topic, partitions } of topics) {
        const leaders = cluster.findLeaderForPartitions(topic, partitions);
        const led = Object.entries(leaders)
          .filter(([node]) => Number(node) >= 0)
          .reduce((n, [, list]) => n + list.length, 0);
        // A marker for a leaderless partition would be skipped again: wait for its leader.
        if (led < partitions.length) throw new Leaderless(`${topic} has partitions without a leader`);
      }
    });
    const call = await this.#coordinatorOf(cluster, transactionalId);
    const { producerId, producerEpoch } = await call('InitProducerId', (b) =>
      b.initProducerId({ transactionalId, transactionTimeout: this.#options.transactionTimeoutMs }),
    );
    const ids = { transactionalId, producerId, producerEpoch };
    if (topics.length > 0) await call('AddPartitionsToTxn', (b) => b.addPartitionsToTxn({ ...ids, topics }));
    if (unsettled.offset !== null)
      await call('AddOffsetsToTxn', (b) => b.addOffsetsToTxn({ ...ids, groupId: this.#options.groupId }));
    if (topics.length > 0 || unsettled.offset !== null)
      await call('EndTxn', (b) => b.endTxn({ ...ids, transactionResult: outcome === 'commit' }));
  }

  /**
   * The producer that holds `transactionalId` now (right after it opened: the one whose transactions a
   * later `decisionOf` asks about); undefined when the broker has no DescribeTransactions.
   */
  async identify(transactionalId: string): Promise<ProducerIdentity | undefined> {
    const cluster = await this.#connect();
    const call = await this.#coordinatorOf(cluster, transactionalId);
    const described = await call('DescribeTransactions', async (b) =>
      supportsDescribeTransactions(b) ? describeTransaction(b, transactionalId) : undefined,
    );
    return described && { id: described.producerId, epoch: described.producerEpoch };
  }

  /**
   * The coordinator's decision on `unsettled` (see the module comment), or undefined when it made none
   * or it cannot be known. Must be asked before any producer of the transactional id opens again.
   */
  async decisionOf(unsettled: UnsettledTransaction): Promise<Settlement | undefined> {
    const { producer, transactionalId } = unsettled;
    if (!producer) return undefined;
    const cluster = await this.#connect();
    const call = await this.#coordinatorOf(cluster, transactionalId);
    const described = await call('DescribeTransactions', async (b) =>
      supportsDescribeTransactions(b) ? describeTransaction(b, transactionalId) : undefined,
    );
    if (!described || described.producerId !== producer.id || described.producerEpoch !== producer.epoch)
      return undefined;
    return decisionIn(described.state);
  }

  /** Requests to the transaction coordinator of `transactionalId`, retried, following it when it moves. */
  async #coordinatorOf(
    cluster: KafkajsCluster,
    transactionalId: string,
  ): Promise<<T>(what: string, request: (broker: KafkajsBroker) => Promise<T>) => Promise<T>> {
    const find = () =>
      cluster.findGroupCoordinator({ groupId: transactionalId, coordinatorType: TRANSACTION_COORDINATOR });
    let coordinator = await this.#retry('find the transaction coordinator', find);
    return async (what, request) =>
      this.#retry(what, async () => {
        try {
          return await request(coordinator);
        } catch (error) {
          const type = typeOf(error);
          if (type === 'NOT_COORDINATOR' || type === 'COORDINATOR_NOT_AVAILABLE' || type === 'KafkaJSConnectionError')
            coordinator = await find();
          throw error;
        }
      });
  }

  /** `step` until it succeeds, retrying retriable errors with backoff for `retryTimeoutMs`. */
  async #retry<T>(what: string, step: () => Promise<T>): Promise<T> {
    const deadline = Date.now() + this.#options.retryTimeoutMs;
    for (let attempt = 0; ; attempt++) {
      try {
        return await step();
      } catch (error) {
        const retriable =
          isRetriableKafkaError(error) || typeOf(error) === 'CONCURRENT_TRANSACTIONS' || error instanceof Leaderless;
        if (!retriable || Date.now() >= deadline)
          throw new KafkaError(`settling a transaction: ${what} failed: ${(error as Error).message}`, error);
        await sleep(Math.min(RETRY_MAX_MS, RETRY_INITIAL_MS * 2 ** attempt));
      }
    }
  }

  async stop(): Promise<void> {
    const cluster = this.#cluster;
    this.#cluster = undefined;
    this.#connected = undefined;
    await cluster?.disconnect().catch(() => undefined);
  }
}
