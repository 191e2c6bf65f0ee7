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
  settlementFor,
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
   * Commits a transaction of `transactionalId` that added only partition 0 of `name` but also wrote
   * `values` to `partition`: those wait there without a marker.
   */
  async function leaveUnmarked(transactionalId: string, name: string, partition: number, values: string[]) {
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
      const [leader] = Object.keys(cluster.findLeaderForPartitions(name, [partition]));
      const target = (await cluster.findBroker({ nodeId: leader! })) as unknown as {
        produce(request: object): Promise<unknown>;
      };
      await target.produce({
        ...ids,
        acks: -1,
        topicData: [
          {
            topic: name,
            partitions: [{ partition, firstSequence: 0, messages: values.map((value) => ({ key: value, value })) }],
          },
        ],
      });
      await coordinator.endTxn({ ...ids, transactionResult: true });
    } finally {
      await cluster.disconnect();
    }
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
