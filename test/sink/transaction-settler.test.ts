/**
 * The transaction settler on a real broker. The state it repairs is made the way a broker that skipped
 * a marker leaves it (see `src/sink/transaction-settler.ts`): records of a transaction in a partition
 * the coordinator did not mark when it completed the transaction. Here the broker runs with
 * `transaction.partition.verification.enable=false`, the producer writes to a partition it never added
 * to its transaction, and the transaction is committed: that partition's records then wait without a
 * marker, and read_committed readers stop before them — as after the broker bug. What read_committed
 * readers see is read back with the changelog reader (which reads to the last stable offset).
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Kafka, logLevel } from 'kafkajs';
import { startLocalBroker, type LocalBroker } from '../../scripts/kafka/local-broker.ts';
import { createCluster, TRANSACTION_COORDINATOR } from '../../src/kafka/kafkajs-cluster.ts';
import { ChangelogReader } from '../../src/state/changelog-reader.ts';
import {
  committedPart,
  decisionIn,
  settlementFor,
  startAfter,
  TransactionSettler,
  type UnsettledTransaction,
} from '../../src/sink/transaction-settler.ts';
import { onCleanup, uniqueName, waitFor } from '../helpers.ts';

const byTopic = (partitions: Record<string, number[]>) =>
  new Map(Object.entries(partitions).map(([t, p]) => [t, new Set(p)]));
const unsettled = (
  partitions: Record<string, number[]>,
  offset: number | null,
  written: Record<string, number[]> = partitions,
  offsetsWritten = offset !== null,
): UnsettledTransaction => ({
  transactionalId: 'job:topic:0',
  partitions: byTopic(partitions),
  written: byTopic(written),
  offset,
  offsetsWritten,
});
const only = (partitions: Map<string, Set<number>>): UnsettledTransaction => ({
  transactionalId: '',
  partitions,
  written: partitions,
  offset: null,
  offsetsWritten: false,
});

describe('the outcome a restore assumes', () => {
  test('commit only when the committed offset holds the transaction’s input offset', () => {
    expect(settlementFor(unsettled({ out: [0] }, 120), 120)).toBe('commit');
    expect(settlementFor(unsettled({ out: [0] }, 120), 150)).toBe('commit');
    expect(settlementFor(unsettled({ out: [0] }, 120), 119)).toBe('abort');
    expect(settlementFor(unsettled({ out: [0] }, 120), null)).toBe('abort');
    // It never sent its offsets: nothing says it counted.
    expect(settlementFor(unsettled({ out: [0] }, null), 500)).toBe('abort');
  });

  test('the last committed transaction is settled where the failed one did not write, and without offsets the failed one sent', () => {
    const committed = unsettled({ out: [0, 1, 2], changelog: [3] }, 100);
    expect(committedPart(committed)).toBe(committed);
    const part = committedPart(committed, unsettled({ out: [1], changelog: [3] }, 130));
    expect([...part.partitions].map(([t, p]) => [t, [...p]])).toEqual([['out', [0, 2]]]);
    expect(part.offset).toBeNull();
    // The failed one never reached its offsets: the committed one's are settled.
    expect(committedPart(committed, unsettled({ out: [1] }, null)).offset).toBe(100);
    // It tried to write (no answer): the committed one's partitions and offsets are settled as committed.
    const tried = committedPart(committed, unsettled({ out: [1], changelog: [3] }, 130, {}, false));
    expect([...tried.partitions].map(([t, p]) => [t, [...p]])).toEqual([
      ['out', [0, 1, 2]],
      ['changelog', [3]],
    ]);
    expect(tried.offset).toBe(100);
  });
});

describe("the coordinator's decision", () => {
  test('a decided transaction is settled as the coordinator decided, whatever the committed offset says', () => {
    expect(settlementFor({ ...unsettled({ out: [0] }, 120), decision: 'commit' }, 100)).toBe('commit');
    expect(settlementFor({ ...unsettled({ out: [0] }, 120), decision: 'commit' }, null)).toBe('commit');
    expect(settlementFor({ ...unsettled({ out: [0] }, 120), decision: 'abort' }, 150)).toBe('abort');
  });

  test('the restore starts after a committed transaction the group offsets do not show yet', () => {
    const t = unsettled({ out: [0] }, 120);
    expect(startAfter(t, 'commit', 100)).toBe(120);
    expect(startAfter(t, 'commit', null)).toBe(120);
    expect(startAfter(t, 'commit', 150)).toBe(150);
    expect(startAfter(t, 'abort', 100)).toBe(100);
    expect(startAfter(unsettled({ out: [0] }, null), 'commit', 100)).toBe(100);
  });

  test('only a prepared or completed end is a decision', () => {
    expect(decisionIn('PrepareCommit')).toBe('commit');
    expect(decisionIn('CompleteCommit')).toBe('commit');
    expect(decisionIn('PrepareAbort')).toBe('abort');
    expect(decisionIn('CompleteAbort')).toBe('abort');
    for (const open of ['Empty', 'Ongoing', 'PrepareEpochFence', 'Dead', 'Unknown'])
      expect(decisionIn(open)).toBeUndefined();
  });
});

describe('settling on a broker', () => {
  let broker: LocalBroker;
  let kafka: Kafka;
  beforeAll(async () => {
    broker = await startLocalBroker({
      heap: '512m',
      properties: { 'transaction.partition.verification.enable': 'false' },
    });
    kafka = new Kafka({ clientId: 'settler-test', brokers: [broker.brokers], logLevel: logLevel.NOTHING });
  }, 120_000);
  afterAll(async () => broker?.stop());

  async function topic(partitions: number): Promise<string> {
    const name = uniqueName('settle');
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({ topics: [{ topic: name, numPartitions: partitions }], waitForLeaders: true });
    await admin.disconnect();
    return name;
  }

  /**
   * A committed transaction of `transactionalId` that added only partition 0 of `name`, made by hand:
   * `write` produces through `produce(partition, values)` (to any partition, added or not) and may
   * commit offsets itself (`cluster`, `ids`); then EndTxn commits. Returns the producer id and epoch.
   */
  async function committedByHand(
    transactionalId: string,
    name: string,
    write: (
      produce: (partition: number, values: string[]) => Promise<unknown>,
      cluster: ReturnType<typeof createCluster>,
      ids: { transactionalId: string; producerId: string; producerEpoch: number },
    ) => Promise<void>,
  ): Promise<{ id: string; epoch: number }> {
    const cluster = createCluster(kafka, (m) => new Error(m));
    await cluster.connect();
    try {
      await cluster.addTargetTopic(name);
      // A new broker's transaction coordinator loads for a moment.
      const coordinator = await cluster.findGroupCoordinator({
        groupId: transactionalId,
        coordinatorType: TRANSACTION_COORDINATOR,
      });
      const { producerId, producerEpoch } = await waitFor('a producer id', () =>
        coordinator.initProducerId({ transactionalId, transactionTimeout: 60_000 }).catch(() => undefined),
      );
      const ids = { transactionalId, producerId, producerEpoch };
      await coordinator.addPartitionsToTxn({ ...ids, topics: [{ topic: name, partitions: [0] }] });
      // A just-created partition's leader may not have taken leadership yet (NOT_LEADER_OR_FOLLOWER,
      // retriable): asked again with fresh metadata, as kafkajs's own producer would.
      const produce = (partition: number, values: string[]) =>
        waitFor(`the leader of ${name}-${partition} to take the records`, async () => {
          const [leader] = Object.keys(cluster.findLeaderForPartitions(name, [partition]));
          const target = (await cluster.findBroker({ nodeId: leader! })) as unknown as {
            produce(request: object): Promise<unknown>;
          };
          const messages = values.map((value) => ({ key: value, value }));
          try {
            return await target.produce({
              ...ids,
              acks: -1,
              topicData: [{ topic: name, partitions: [{ partition, firstSequence: 0, messages }] }],
            });
          } catch (error) {
            if (!(error as { retriable?: boolean }).retriable) throw error;
            await cluster.refreshMetadata();
            return undefined;
          }
        });
      await write(produce, cluster, ids);
      await coordinator.endTxn({ ...ids, transactionResult: true });
      return { id: String(producerId), epoch: producerEpoch };
    } finally {
      await cluster.disconnect();
    }
  }

  /**
   * Commits a transaction of `transactionalId` that added only partition 0 of `name` but also wrote
   * `values` to `partition`: those wait there without a marker.
   */
  async function leaveUnmarked(transactionalId: string, name: string, partition: number, values: string[]) {
    await committedByHand(transactionalId, name, async (produce) => {
      await produce(partition, values);
    });
  }

  /** What read_committed readers see of `partition`: its records' values, and the offset they end at. */
  async function committedView(name: string, partition: number) {
    const reader = new ChangelogReader(kafka, name);
    await reader.start();
    try {
      const seen: string[] = [];
      const { endOffset: end } = await reader.restore(partition, (chunk) => {
        for (const r of chunk) seen.push(r.value === null ? 'null' : Buffer.from(r.value).toString());
      });
      return { values: seen, end };
    } finally {
      await reader.stop();
    }
  }

  async function append(name: string, partition: number, value: string) {
    const producer = kafka.producer({ idempotent: true });
    await producer.connect();
    await producer.send({ topic: name, acks: -1, messages: [{ partition, key: value, value }] });
    await producer.disconnect();
  }

  function settler(): TransactionSettler {
    const s = new TransactionSettler(kafka, { groupId: uniqueName('group'), transactionTimeoutMs: 10_000 });
    onCleanup(() => s.stop());
    return s;
  }

  test('commit: the records waiting without a marker become visible, in place', async () => {
    const name = await topic(2);
    const id = uniqueName('txn');
    await append(name, 1, 'before');
    await leaveUnmarked(id, name, 1, ['a', 'b', 'c']);
    await append(name, 1, 'after');
    // The unmarked records hold read_committed readers back, the later record too.
    expect(await committedView(name, 1)).toEqual({ values: ['before'], end: 1 });

    await settler().settle({ ...only(new Map([[name, new Set([1])]])), transactionalId: id }, 'commit');
    const view = await committedView(name, 1);
    expect(view.values).toEqual(['before', 'a', 'b', 'c', 'after']);
    expect(view.end).toBeGreaterThanOrEqual(6);
  }, 60_000);

  test('abort: the records waiting without a marker are dropped, and readers go past them', async () => {
    const name = await topic(2);
    const id = uniqueName('txn');
    await leaveUnmarked(id, name, 1, ['x', 'y']);
    await append(name, 1, 'after');
    expect((await committedView(name, 1)).values).toEqual([]);

    await settler().settle({ ...only(new Map([[name, new Set([1])]])), transactionalId: id }, 'abort');
    expect((await committedView(name, 1)).values).toEqual(['after']);
  }, 60_000);

  test('a partition whose transactions all have markers is left as it is', async () => {
    const name = await topic(1);
    const id = uniqueName('txn');
    const producer = kafka.producer({ transactionalId: id, idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const transaction = await producer.transaction();
    await transaction.send({ topic: name, messages: [{ partition: 0, value: 'kept' }] });
    await transaction.commit();
    await producer.disconnect();

    await settler().settle({ ...only(new Map([[name, new Set([0])]])), transactionalId: id }, 'abort');
    expect((await committedView(name, 0)).values).toEqual(['kept']);
  }, 60_000);

  /**
   * A commit that the coordinator decided, but whose offsets the group does not show: the transaction
   * wrote `out` partition 0 (marked), partition 1 (left without a marker) and the group's offset
   * `offset` for `name` partition 0 without adding the group to the transaction — the offsets wait
   * without a marker too, as after a broker that skipped the marker of `__consumer_offsets`.
   */
  async function commitHidingOffsets(transactionalId: string, groupId: string, name: string, offset: number) {
    return committedByHand(transactionalId, name, async (produce, cluster, ids) => {
      for (const partition of [0, 1]) await produce(partition, [`p${partition}`]);
      // A new group's coordinator may be loading or moving: asked again until it takes the offsets.
      await waitFor('the group coordinator to take the offsets', async () => {
        const group = (await cluster.findGroupCoordinator({ groupId, coordinatorType: 0 })) as unknown as {
          txnOffsetCommit(request: object): Promise<unknown>;
        };
        const topics = [{ topic: name, partitions: [{ partition: 0, offset: String(offset) }] }];
        return group
          .txnOffsetCommit({ ...ids, groupId, topics })
          .then(() => true)
          .catch(() => undefined);
      });
    });
  }

  async function committedOffset(groupId: string, name: string): Promise<number> {
    const admin = kafka.admin();
    await admin.connect();
    try {
      const [topicOffsets] = await admin.fetchOffsets({ groupId, topics: [name] });
      return Number(topicOffsets!.partitions.find((p) => p.partition === 0)!.offset);
    } finally {
      await admin.disconnect();
    }
  }

  test("a commit the coordinator decided is settled as committed, its offsets too, though the group's offsets did not show it", async () => {
    const name = await topic(2);
    const id = uniqueName('txn');
    const groupId = uniqueName('group');
    const producer = await commitHidingOffsets(id, groupId, name, 42);
    // What the restore sees before settling: the old committed offset, and the output's records (marked)…
    expect(await committedOffset(groupId, name)).toBe(-1);
    expect((await committedView(name, 0)).values).toEqual(['p0']);
    expect((await committedView(name, 1)).values).toEqual([]);

    const s = new TransactionSettler(kafka, { groupId, transactionTimeoutMs: 10_000 });
    onCleanup(() => s.stop());
    const failed: UnsettledTransaction = {
      ...unsettled({ [name]: [0, 1] }, 42),
      transactionalId: id,
      producer,
    };
    const decision = await s.decisionOf(failed);
    expect(decision).toBe('commit');
    const decided: UnsettledTransaction = { ...failed, decision: decision! };
    // The committed offset alone would have aborted it: the output's partition 0 would keep it, redone.
    expect(settlementFor({ ...failed }, null)).toBe('abort');
    expect(settlementFor(decided, null)).toBe('commit');
    expect(startAfter(decided, 'commit', null)).toBe(42);

    await s.settle(decided, 'commit');
    expect(await committedOffset(groupId, name)).toBe(42);
    expect((await committedView(name, 1)).values).toEqual(['p1']);
  }, 60_000);

  test("the coordinator's state is a decision only for the producer that ran the transaction", async () => {
    const name = await topic(1);
    const id = uniqueName('txn');
    const s = settler();
    const open = async () => {
      const p = kafka.producer({ transactionalId: id, idempotent: true, maxInFlightRequests: 1 });
      await p.connect();
      onCleanup(() => p.disconnect());
      return p;
    };
    const first = await open();
    const committing = await first.transaction();
    const identity = await s.identify(id);
    expect(identity).toEqual({ id: expect.any(String), epoch: expect.any(Number) });
    const ran = { ...only(new Map([[name, new Set([0])]])), transactionalId: id, producer: identity! };
    await committing.send({ topic: name, messages: [{ partition: 0, value: 'a' }] });
    // Open: no decision yet.
    expect(await s.decisionOf(ran)).toBeUndefined();
    await committing.commit();
    expect(await s.decisionOf(ran)).toBe('commit');
    const aborting = await first.transaction();
    await aborting.send({ topic: name, messages: [{ partition: 0, value: 'b' }] });
    await aborting.abort();
    expect(await s.decisionOf(ran)).toBe('abort');
    // Another producer of the id since (a new epoch): what the coordinator holds is not about this one.
    const second = await open();
    await second.transaction();
    expect(await s.decisionOf(ran)).toBeUndefined();
    const { producer: _unknown, ...anonymous } = ran;
    expect(await s.decisionOf(anonymous)).toBeUndefined();
  }, 60_000);

  test('settling fences the producers of the transactional id opened before it', async () => {
    const name = await topic(1);
    const id = uniqueName('txn');
    const producer = kafka.producer({
      transactionalId: id,
      idempotent: true,
      maxInFlightRequests: 1,
      retry: { retries: 1 },
    });
    await producer.connect();
    onCleanup(() => producer.disconnect());
    const transaction = await producer.transaction();
    await transaction.send({ topic: name, messages: [{ partition: 0, value: 'zombie' }] });

    await settler().settle({ ...only(new Map([[name, new Set([0])]])), transactionalId: id }, 'abort');
    await expect(transaction.commit()).rejects.toThrow();
    expect((await committedView(name, 0)).values).toEqual([]);
  }, 60_000);
});
