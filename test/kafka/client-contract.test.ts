/**
 * The client/broker contract the engine relies on, checked against the real broker: bulk
 * produce/consume in a group (nothing lost, nothing repeated, per-partition order), transactions seen
 * by read_committed consumers, and `sendOffsets` inside a transaction moving the group's offsets.
 */
import { describe, expect, test } from '@jest/globals';
import { CompressionTypes, type Consumer, type EachBatchPayload } from 'kafkajs';
import { admin, createTopic, onCleanup, testKafka, uniqueName, waitFor } from '../helpers.ts';

async function consumeAll(
  consumer: Consumer,
  topic: string,
  expected: number,
  seen: (p: EachBatchPayload) => void,
): Promise<void> {
  let count = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachBatch: async (payload) => {
      seen(payload);
      count += payload.batch.messages.length;
      if (count >= expected) done();
    },
  });
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    finished,
    new Promise(
      (_, reject) => (timer = setTimeout(() => reject(new Error(`consumed ${count} of ${expected}`)), 90_000)),
    ),
  ]).finally(() => clearTimeout(timer));
}

describe('kafkajs against the broker', () => {
  test('50 000 records through 4 partitions and back in a group: none lost or repeated, ordered per partition', async () => {
    const topic = await createTopic(uniqueName('contract-bulk'), 4);
    const producer = testKafka().producer({ idempotent: true });
    await producer.connect();
    onCleanup(() => producer.disconnect());
    const total = 50_000;
    const chunk = 5_000;
    for (let start = 0; start < total; start += chunk) {
      const messages = Array.from({ length: chunk }, (_, j) => {
        const i = start + j;
        return { key: `k${i % 97}`, value: JSON.stringify({ i }) };
      });
      await producer.send({ topic, messages, compression: CompressionTypes.None });
    }

    const consumer = testKafka().consumer({ groupId: uniqueName('contract-group') });
    await consumer.connect();
    onCleanup(() => consumer.disconnect());
    const seen = new Map<number, number>();
    const lastOffset = new Map<number, bigint>();
    const lastIndexPerKey = new Map<string, number>();
    let orderViolations = 0;
    await consumeAll(consumer, topic, total, ({ batch }) => {
      for (const m of batch.messages) {
        const i = (JSON.parse(m.value!.toString()) as { i: number }).i;
        seen.set(i, (seen.get(i) ?? 0) + 1);
        const offset = BigInt(m.offset);
        const prev = lastOffset.get(batch.partition);
        if (prev !== undefined && offset <= prev) orderViolations++;
        lastOffset.set(batch.partition, offset);
        // Same key, same partition: produce order must be kept.
        const key = m.key!.toString();
        const prevIndex = lastIndexPerKey.get(key);
        if (prevIndex !== undefined && i <= prevIndex) orderViolations++;
        lastIndexPerKey.set(key, i);
      }
    });
    expect(seen.size).toBe(total);
    expect([...seen.values()].every((n) => n === 1)).toBe(true);
    expect(orderViolations).toBe(0);
    expect([...lastOffset.keys()].sort()).toEqual([0, 1, 2, 3]);
  });

  test('a read_committed consumer sees a committed transaction and never an aborted one', async () => {
    const topic = await createTopic(uniqueName('contract-txn'), 2);
    const producer = testKafka().producer({
      transactionalId: uniqueName('txn'),
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    onCleanup(() => producer.disconnect());

    const committed = await producer.transaction();
    await committed.send({
      topic,
      messages: Array.from({ length: 100 }, (_, i) => ({ key: `c${i}`, value: `committed-${i}` })),
    });
    await committed.commit();
    const aborted = await producer.transaction();
    await aborted.send({
      topic,
      messages: Array.from({ length: 100 }, (_, i) => ({ key: `a${i}`, value: `aborted-${i}` })),
    });
    await aborted.abort();
    const marker = await producer.transaction();
    await marker.send({ topic, messages: [{ key: 'end', value: 'end' }] });
    await marker.commit();

    const consumer = testKafka().consumer({ groupId: uniqueName('contract-rc'), readUncommitted: false });
    await consumer.connect();
    onCleanup(() => consumer.disconnect());
    const values: string[] = [];
    await consumeAll(consumer, topic, 101, ({ batch }) => {
      for (const m of batch.messages) values.push(m.value!.toString());
    });
    // Give an aborted record every chance to show up after the end marker.
    await new Promise((r) => setTimeout(r, 1000));
    expect(values.filter((v) => v.startsWith('aborted'))).toEqual([]);
    expect(values.filter((v) => v.startsWith('committed')).sort()).toEqual(
      Array.from({ length: 100 }, (_, i) => `committed-${i}`).sort(),
    );
    expect(values).toContain('end');
  });

  test('sendOffsets inside a transaction moves the group committed offsets only when it commits', async () => {
    const input = await createTopic(uniqueName('contract-eos-in'), 1);
    const output = await createTopic(uniqueName('contract-eos-out'), 1);
    const groupId = uniqueName('contract-eos-group');
    const producer = testKafka().producer({
      transactionalId: uniqueName('eos'),
      idempotent: true,
      maxInFlightRequests: 1,
    });
    await producer.connect();
    onCleanup(() => producer.disconnect());
    const plain = testKafka().producer();
    await plain.connect();
    onCleanup(() => plain.disconnect());
    await plain.send({ topic: input, messages: Array.from({ length: 10 }, (_, i) => ({ value: String(i) })) });

    const a = await admin();
    const committedOffset = async (): Promise<string | undefined> => {
      const offsets = await a.fetchOffsets({ groupId, topics: [input] });
      return offsets[0]?.partitions[0]?.offset;
    };

    const aborted = await producer.transaction();
    await aborted.send({ topic: output, messages: [{ value: 'x' }] });
    await aborted.sendOffsets({
      consumerGroupId: groupId,
      topics: [{ topic: input, partitions: [{ partition: 0, offset: '4' }] }],
    });
    await aborted.abort();
    expect(await committedOffset()).toBe('-1');

    const txn = await producer.transaction();
    await txn.send({ topic: output, messages: [{ value: 'y' }] });
    await txn.sendOffsets({
      consumerGroupId: groupId,
      topics: [{ topic: input, partitions: [{ partition: 0, offset: '7' }] }],
    });
    await txn.commit();
    expect(
      await waitFor('committed offset 7', async () => ((await committedOffset()) === '7' ? true : undefined)),
    ).toBe(true);
  });

  test('offset commits carry metadata that admin fetchOffsets returns', async () => {
    const topic = await createTopic(uniqueName('contract-meta'), 1);
    const groupId = uniqueName('contract-meta-group');
    const plain = testKafka().producer();
    await plain.connect();
    onCleanup(() => plain.disconnect());
    await plain.send({ topic, messages: [{ value: 'a' }, { value: 'b' }] });
    const consumer = testKafka().consumer({ groupId });
    await consumer.connect();
    onCleanup(() => consumer.disconnect());
    await consumeAll(consumer, topic, 2, () => undefined);
    await consumer.commitOffsets([{ topic, partition: 0, offset: '1', metadata: '{"s":123}' }]);
    const offsets = await (await admin()).fetchOffsets({ groupId, topics: [topic] });
    expect(offsets[0]?.partitions[0]).toMatchObject({ partition: 0, offset: '1', metadata: '{"s":123}' });
  });
});
