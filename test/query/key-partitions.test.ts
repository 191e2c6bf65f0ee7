/**
 * Where a group key's state lives (`key-partitions.ts`): for a re-keyed job, the repartition
 * partition the shuffle writer sends the key to (checked against a real `ShuffleWriterTask`'s blocks);
 * without `keyBy`, the partition kafkajs's default producer partitioner gives the key in each input
 * topic, over that topic's own partition count. Keys include non-ASCII text and the empty string.
 */
import { describe, expect, test } from '@jest/globals';
import { Partitioners } from 'kafkajs';
import { count, defineJob, tumbling } from '../../src/index.ts';
import { compileJob } from '../../src/job/plan.ts';
import { NO_PROGRESS } from '../../src/pool/progress.ts';
import { keyPartitions } from '../../src/query/key-partitions.ts';
import { RecordWriter } from '../../src/wire/record-codec.ts';
import { readBlock } from '../../src/wire/repartition-block.ts';
import { createTask } from '../../src/worker/create-task.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const KEYS = [
  '',
  'a',
  '/home',
  '/products/42',
  'clé',
  '日本語のページ',
  '🙂',
  ...Array.from({ length: 200 }, (_, i) => `k-${i}`),
];

describe('keyPartitions', () => {
  test('a re-keyed job: the repartition partition the shuffle writer writes the key to', () => {
    const plan = compileJob(
      defineJob<{ page: string }>({
        name: 'job',
        input: { topics: ['in'] },
        output: { topic: 'out' },
        pipeline: (s) =>
          s
            .keyBy((e) => e.page)
            .window(tumbling('10s'))
            .aggregate(count()),
      }),
    );
    for (const partitions of [1, 3, 8, 12]) {
      const ctx = {
        plan,
        maxRecordBytes: 1 << 20,
        sources: ['in:0'],
        repartitionPartitions: partitions,
        progress: NO_PROGRESS,
      };
      const writer = createTask(ctx, 'in', 0, { committedOffset: null, metadata: null });
      const records = new RecordWriter();
      KEYS.forEach((page, i) => records.write(i, 1_000, null, enc.encode(JSON.stringify({ page }))));
      const result = writer.process(records.finish(), 1_000, Date.now(), true);
      const written = result.repartition.flatMap((b) =>
        [...readBlock(b.data)].map((e) => ({ key: dec.decode(e.key!), partition: b.partition })),
      );
      expect(written).toHaveLength(KEYS.length);
      const layout = { inputPartitions: new Map([['in', 5]]), repartitionPartitions: partitions };
      for (const { key, partition } of written) {
        expect({ key, at: keyPartitions(plan, layout, key) }).toEqual({
          key,
          at: [{ topic: 'job-repartition', partition }],
        });
      }
      if (partitions > 1) expect(new Set(written.map((w) => w.partition)).size).toBe(partitions);
    }
  });

  test("without keyBy: the partition kafkajs's default partitioner gives the Kafka key, in every input topic", () => {
    const plan = compileJob(
      defineJob({
        name: 'job',
        input: { topics: ['a', 'b', 'c'] },
        output: { topic: 'out' },
        pipeline: (s) => s.window(tumbling('10s')).aggregate(count()),
      }),
    );
    const counts = new Map([
      ['a', 8],
      ['b', 3],
      ['c', 1],
    ]);
    const layout = { inputPartitions: counts, repartitionPartitions: undefined };
    const partitioner = Partitioners.DefaultPartitioner();
    for (const key of KEYS) {
      const expected = [...counts].map(([topic, n]) => ({
        topic,
        partition: partitioner({
          topic,
          partitionMetadata: Array.from({ length: n }, (_, p) => ({
            partitionId: p,
            leader: 0,
            partitionErrorCode: 0,
            replicas: [0],
            isr: [0],
          })),
          message: { key: Buffer.from(key, 'utf8'), value: null },
        }),
      }));
      expect({ key, at: keyPartitions(plan, layout, key) }).toEqual({ key, at: expected });
    }
  });
});
