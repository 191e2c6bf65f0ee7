/**
 * The repartition records `sluice/testing` hands from shuffle writers to shuffle readers are the ones
 * the sink publishes: for the same task result, the same records (partition, key, value, headers) in
 * the same order as `messagesOf` (src/sink/kafka-sink.ts) writes to `<job>-repartition`.
 */
import { describe, expect, test } from '@jest/globals';
import { type Message } from 'kafkajs';
import { count, defineJob, tumbling } from '../../src/index.ts';
import { compileJob } from '../../src/job/plan.ts';
import { NO_PROGRESS } from '../../src/pool/progress.ts';
import { messagesOf } from '../../src/sink/kafka-sink.ts';
import { shuffleRecords } from '../../src/testing/shuffle.ts';
import { packMessages } from '../../src/wire/record-codec.ts';
import { createTask } from '../../src/worker/create-task.ts';
import { publicationOf } from '../../src/worker/publication.ts';

const plan = compileJob(
  defineJob<{ page: string; ts: number }>({
    name: 'shuffled',
    input: { topics: ['views'] },
    eventTime: (e) => e.ts,
    pipeline: (s) =>
      s
        .map((e) => ({ ...e, seen: true }))
        .keyBy((e) => e.page)
        .window(tumbling('10s'))
        .aggregate(count()),
    output: { topic: 'out' },
  }),
);
const PARTITIONS = 4;
const topics = {
  output: 'out',
  dlq: 'shuffled-dlq',
  repartition: 'shuffled-repartition',
  repartitionPartitions: PARTITIONS,
  changelog: 'shuffled-changelog',
};

/** A message as bytes and text: what a reader of the topic gets. */
function shape(m: {
  partition?: number;
  key?: Buffer | string | null;
  value: Buffer | string | null;
  headers?: Message['headers'];
}) {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(m.headers ?? {})) headers[name] = String(value);
  return {
    partition: m.partition,
    key: m.key ?? null,
    value: m.value === null ? null : Buffer.from(m.value).toString('hex'),
    headers,
  };
}

describe('shuffleRecords', () => {
  test('equal what the sink publishes to the repartition topic, blocks then stream-time control records', () => {
    const task = createTask(
      {
        plan,
        maxRecordBytes: 1 << 20,
        sources: ['views:0', 'views:1'],
        repartitionPartitions: PARTITIONS,
        progress: NO_PROGRESS,
      },
      'views',
      1,
      { committedOffset: null, metadata: null },
    );
    expect(task.kind).toBe('shuffle-writer');
    const packed = packMessages(
      Array.from({ length: 50 }, (_, i) => ({
        offset: String(i),
        timestamp: String(1_000 + i),
        key: Buffer.from(`u${i % 5}`),
        value: Buffer.from(JSON.stringify({ page: `/p${i % 9}`, ts: 1_000 * i })),
      })),
    );
    const result = task.process(packed.bytes.buffer as ArrayBuffer, Date.now(), Date.now(), true);
    expect(result.repartition.length).toBeGreaterThan(1);
    expect(result.watermark).not.toBeNull();

    const ours = shuffleRecords(result, PARTITIONS).map(shape);
    const sink = [...messagesOf(publicationOf([result]), topics).calls]
      .flat()
      .filter((call) => call.topic === topics.repartition)
      .flatMap((call) => call.messages)
      .map(shape);
    expect(ours).toEqual(sink);
    // Blocks, then one control record per repartition partition.
    expect(ours.slice(-PARTITIONS).map((r) => [r.partition, r.value, r.headers['sluice-wm']])).toEqual(
      Array.from({ length: PARTITIONS }, (_, p) => [p, null, '49000']),
    );
  });
});
