/** Reading whole topics back in tests, and producing generated data with a known partition layout. */
import { type IHeaders, type KafkaMessage, Partitioners } from 'kafkajs';
import { onCleanup, testKafka, uniqueName, waitFor } from '../helpers.ts';

export interface ReadRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  value: Buffer | null;
  timestamp: number;
  headers: Record<string, string>;
}

function headersOf(headers: IHeaders | undefined): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (v === undefined) continue;
    out[k] = (Array.isArray(v) ? v[v.length - 1] : v)?.toString() ?? '';
  }
  return out;
}

function toRead(topic: string, partition: number, m: KafkaMessage): ReadRecord {
  return {
    topic,
    partition,
    offset: Number(m.offset),
    key: m.key?.toString() ?? null,
    value: m.value ?? null,
    timestamp: Number(m.timestamp),
    headers: headersOf(m.headers),
  };
}

/**
 * Reads `topic` from the beginning (read_committed) until `done(records)` holds, then keeps reading
 * for `settleMs` more so that duplicates arriving late are seen too.
 */
export async function readTopic(
  topic: string,
  done: (records: ReadRecord[]) => boolean,
  { timeoutMs = 120_000, settleMs = 1500 }: { timeoutMs?: number; settleMs?: number } = {},
): Promise<ReadRecord[]> {
  const consumer = testKafka().consumer({ groupId: uniqueName('reader'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  const records: ReadRecord[] = [];
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) records.push(toRead(batch.topic, batch.partition, m));
    },
  });
  try {
    await waitFor(`records in ${topic}`, () => (done(records) ? true : undefined), timeoutMs);
    await new Promise((r) => setTimeout(r, settleMs));
  } finally {
    await consumer.disconnect();
  }
  return records.slice();
}

/** Everything currently in `topic` (up to the high watermarks at call time). */
export async function readAll(topic: string, timeoutMs = 60_000): Promise<ReadRecord[]> {
  const admin = testKafka().admin();
  await admin.connect();
  const offsets = await admin.fetchTopicOffsets(topic);
  await admin.disconnect();
  const wanted = offsets.reduce((n, o) => n + (Number(o.high) - Number(o.low)), 0);
  if (wanted === 0) return [];
  // Transaction markers occupy offsets too, so "at least the non-empty partitions reached their end".
  const ends = new Map(offsets.map((o) => [o.partition, Number(o.high)]));
  return readTopic(
    topic,
    (records) => {
      const last = new Map<number, number>();
      for (const r of records) last.set(r.partition, Math.max(last.get(r.partition) ?? -1, r.offset));
      return [...ends].every(([p, high]) => high === 0 || (last.get(p) ?? -1) >= high - 1);
    },
    { timeoutMs, settleMs: 0 },
  );
}

/** A producer closed after the test file. */
export async function testProducer() {
  const producer = testKafka().producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
  await producer.connect();
  onCleanup(() => producer.disconnect());
  return producer;
}
