/**
 * A task's transactional producer on the shared broker: one batch is one transaction with its input
 * offset; after a failed connection since the last commit began, it writes nothing more and fails (a
 * restarting broker may have left that commit's markers unwritten: `src/sink/task-producer.ts`); and it
 * notes what a failed transaction wrote, for the settler. What read_committed readers see is read back
 * with the changelog reader, the group's offsets with the admin client.
 */
import { describe, expect, test } from '@jest/globals';
import { TaskProducer } from '../../src/sink/task-producer.ts';
import { ChangelogReader } from '../../src/state/changelog-reader.ts';
import { admin, createTopic, onCleanup, testKafka, uniqueName } from '../helpers.ts';

async function committedValues(topic: string, partition: number): Promise<string[]> {
  const reader = new ChangelogReader(testKafka(), topic);
  await reader.start();
  try {
    const seen: string[] = [];
    await reader.restore(partition, (chunk) => {
      for (const r of chunk) seen.push(r.value === null ? 'null' : Buffer.from(r.value).toString());
    });
    return seen;
  } finally {
    await reader.stop();
  }
}

async function endOffset(topic: string, partition: number): Promise<number> {
  const a = await admin();
  const offsets = await a.fetchTopicOffsets(topic);
  return Number(offsets.find((o) => o.partition === partition)!.high);
}

async function committedOffset(groupId: string, topic: string): Promise<number> {
  const a = await admin();
  const [t] = await a.fetchOffsets({ groupId, topics: [topic] });
  return Number(t!.partitions.find((p) => p.partition === 0)!.offset);
}

const batch = (topic: string, values: string[]) => [
  [{ topic, messages: values.map((value) => ({ partition: 0, key: value, value })) }],
];

describe('TaskProducer', () => {
  test('a batch and its input offset are one transaction; after a failed connection it writes nothing more', async () => {
    const input = await createTopic(uniqueName('tp-in'), 1);
    const output = await createTopic(uniqueName('tp-out'), 1);
    const groupId = uniqueName('tp-group');
    let failures = 0;
    const producer = new TaskProducer(testKafka(), {
      groupId,
      topic: input,
      partition: 0,
      transactionTimeoutMs: 10_000,
      connectionFailures: () => failures,
    });
    onCleanup(() => producer.close());
    await producer.open();

    await producer.commit(batch(output, ['a', 'b']), { topic: input, partition: 0, offset: 2 });
    expect(await committedValues(output, 0)).toEqual(['a', 'b']);
    expect(await committedOffset(groupId, input)).toBe(2);
    const end = await endOffset(output, 0);

    // A connection of the client failed (as when the broker went away): the next batch writes nothing.
    failures++;
    await expect(producer.commit(batch(output, ['c', 'd']), { topic: input, partition: 0, offset: 4 })).rejects.toThrow(
      /a connection to Kafka failed since the last commit began/,
    );
    expect(await endOffset(output, 0)).toBe(end);
    expect(await committedOffset(groupId, input)).toBe(2);
    // The failure is final, and what the failed transaction meant to write is kept for the settler.
    await expect(producer.commit(batch(output, ['e']), null)).rejects.toThrow();
    const left = producer.unsettled();
    expect(left?.committed?.offset).toBe(2);
    expect(left?.failed).toMatchObject({ offset: null, offsetsWritten: false });
    expect([...(left?.failed?.written ?? new Map())]).toEqual([]);
  }, 60_000);

  test('without failed connections it goes on, batch after batch', async () => {
    const input = await createTopic(uniqueName('tp-in'), 1);
    const output = await createTopic(uniqueName('tp-out'), 1);
    const groupId = uniqueName('tp-group');
    const producer = new TaskProducer(testKafka(), {
      groupId,
      topic: input,
      partition: 0,
      transactionTimeoutMs: 10_000,
      connectionFailures: () => 0,
    });
    onCleanup(() => producer.close());
    await producer.open();
    for (let i = 0; i < 5; i++)
      await producer.commit(batch(output, [`v${i}`]), { topic: input, partition: 0, offset: i + 1 });
    expect(await committedValues(output, 0)).toEqual(['v0', 'v1', 'v2', 'v3', 'v4']);
    expect(await committedOffset(groupId, input)).toBe(5);
  }, 60_000);
});
