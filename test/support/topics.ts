/** Topics in tests: creating them, following and reading them back, producing to them. */
import { type IHeaders, type KafkaMessage, Partitioners } from 'kafkajs';
import { admin, createTopic, onCleanup, testKafka, uniqueName, waitFor } from '../helpers.ts';

export interface ReadRecord {
  topic: string;
  partition: number;
  offset: number;
  key: string | null;
  value: Buffer | null;
  timestamp: number;
  headers: Record<string, string>;
  /** When this test process received it (Date.now()). */
  receivedAt: number;
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
    receivedAt: Date.now(),
  };
}

/**
 * A consumer that keeps appending what `topics` receive (read_committed, from the beginning) until
 * stopped; stopped after the test file at the latest.
 */
export async function follow(
  topics: string[],
  groupPrefix = 'follow',
): Promise<{ records: ReadRecord[]; positions: Map<string, number>; stop(): Promise<void> }> {
  const consumer = testKafka().consumer({ groupId: uniqueName(groupPrefix), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  const records: ReadRecord[] = [];
  // Where each partition has been read to (`topic:partition` → next offset), past transaction markers
  // too, which take offsets but are no records.
  const positions = new Map<string, number>();
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    const id = `${payload.topic}:${payload.partition}`;
    positions.set(id, Math.max(positions.get(id) ?? 0, Number(payload.lastOffset) + 1));
  });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) records.push(toRead(batch.topic, batch.partition, m));
    },
  });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= consumer.disconnect());
  onCleanup(stop);
  return { records, positions, stop };
}

/**
 * Reads `topic` from the beginning (read_committed) until `done(records)` holds, then keeps reading
 * for `settleMs` more so that duplicates arriving late are seen too.
 */
export async function readTopic(
  topic: string,
  done: (records: ReadRecord[], positions: ReadonlyMap<string, number>) => boolean,
  { timeoutMs = 120_000, settleMs = 1500 }: { timeoutMs?: number; settleMs?: number } = {},
): Promise<ReadRecord[]> {
  const { records, positions, stop } = await follow([topic], 'reader');
  try {
    await waitFor(`records in ${topic}`, () => (done(records, positions) ? true : undefined), timeoutMs);
    await new Promise((r) => setTimeout(r, settleMs));
  } finally {
    await stop();
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
  // Read to the end: transaction markers occupy offsets too, so the position counts them.
  const ends = new Map(offsets.map((o) => [o.partition, Number(o.high)]));
  return readTopic(
    topic,
    (_records, positions) =>
      [...ends].every(([p, high]) => high === 0 || (positions.get(`${topic}:${p}`) ?? 0) >= high),
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

/** Where a dead letter came from: `partition:offset` of its input record (its sluice-source-* headers). */
export const sourceId = (r: ReadRecord): string =>
  `${r.headers['sluice-source-partition']}:${r.headers['sluice-source-offset']}`;

/**
 * `createTopic` under a uniqueName, tolerating what a loaded KRaft broker may answer while a new
 * topic's metadata propagates ("This server does not host this topic-partition"): the topic was
 * created, so wait until every partition has a leader.
 */
export async function newTopic(
  prefix: string,
  partitions: number,
  configs: Record<string, string> = {},
): Promise<string> {
  const name = uniqueName(prefix);
  try {
    await createTopic(name, partitions, configs);
  } catch (error) {
    if (!/does not host this topic-partition/.test(String(error))) throw error;
    await waitFor(`topic ${name}`, async () => {
      const metadata = await (await admin()).fetchTopicMetadata({ topics: [name] }).catch(() => undefined);
      const found = metadata?.topics[0]?.partitions ?? [];
      return found.length === partitions && found.every((p) => p.leader >= 0) ? true : undefined;
    });
  }
  return name;
}
