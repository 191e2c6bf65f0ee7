/**
 * Benchmark input: N page views (~`recordSize` bytes of JSON each, keyed by user, skewed pages, event
 * times spread over time, a few out of order within the allowed lateness) in an 8-partition topic,
 * plus one far-future record per partition whose pages reach every partition of a repartition topic,
 * so that every window of every system closes. Also the reference recomputation of the outputs.
 */
import { type Kafka, Partitioners, type Admin } from 'kafkajs';
import { flushPages, flushRecords, generateClickstream } from '../../examples/generator/clickstream.ts';

export interface BenchData {
  topic: string;
  records: number;
  bytes: number;
  /** (page|windowStart) → count, over every record (none is late by construction). */
  expectedWindows: Map<string, number>;
  /** Records the stateless job keeps. */
  expectedStateless: number;
  /** The record keys (users), for the join bench's table. */
  users: Set<string>;
  /** Largest minus smallest event time of the page views (flush records not counted). */
  eventTimeSpanMs: number;
  /** The far-future flush records, one per partition; in the topic unless `holdFlush` was set. */
  flushes: Array<{ partition: number; key: string; value: string }>;
}

export const WINDOW_MS = 10_000;
export const windowKey = (page: string, start: number): string => `${page}|${start}`;

/**
 * A `readOutputs` completion check for a page-views output: true once every expected window has a
 * result (the far-future flush windows not counted). It reads only the records added since its last call.
 */
export function allWindowsIn(data: BenchData): (records: ReadonlyArray<{ value: Buffer | null }>) => boolean {
  const seen = new Set<string>();
  let read = 0;
  return (records) => {
    for (; read < records.length; read++) {
      const w = JSON.parse(records[read]!.value!.toString()) as { key: string; windowStart: number };
      if (!w.key.startsWith('/flush-')) seen.add(windowKey(w.key, w.windowStart));
    }
    return seen.size >= data.expectedWindows.size;
  };
}

export async function createTopics(admin: Admin, topics: Array<{ topic: string; partitions: number }>): Promise<void> {
  await admin.createTopics({
    waitForLeaders: true,
    topics: topics.map((t) => ({ topic: t.topic, numPartitions: t.partitions, replicationFactor: 1 })),
  });
}

export async function fillInput(
  kafka: Kafka,
  topic: string,
  options: {
    records: number;
    partitions: number;
    recordSize: number;
    seed?: number;
    /** Leave the flush records out of the topic (the caller sends `flushes` when it chooses). */
    holdFlush?: boolean;
  },
): Promise<BenchData> {
  // Idempotent: a retried request must not write its records twice (the reference counts each once).
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
    idempotent: true,
    maxInFlightRequests: 1,
  });
  await producer.connect();
  const expectedWindows = new Map<string, number>();
  let expectedStateless = 0;
  const users = new Set<string>();
  let bytes = 0;
  let maxTs = 0;
  let minTs = Infinity;
  const chunk: Array<{ key: string; value: string }> = [];
  // One send at a time: concurrent sends may land out of order in a partition, which would put
  // records seconds behind their partition's stream time (late by the data, not by the system).
  const flush = async (): Promise<void> => {
    await producer.send({ topic, messages: chunk.splice(0), acks: -1 });
  };
  for (const r of generateClickstream({
    count: options.records,
    seed: options.seed ?? 42,
    eventsPerSecond: 2000,
    lateFraction: 0,
    malformedFraction: 0,
    outOfOrderFraction: 0.05,
    maxDisorderMs: 3000,
    users: 2000,
    pages: 60,
  })) {
    const e = r.event!;
    const base = JSON.stringify(e);
    // Pad to the requested size with a field every system ignores.
    const pad = Math.max(0, options.recordSize - base.length - 10);
    const value = pad > 0 ? `${base.slice(0, -1)},"pad":"${'x'.repeat(pad)}"}` : base;
    bytes += value.length + r.key.length;
    chunk.push({ key: r.key, value });
    const id = windowKey(e.page, Math.floor(e.ts / WINDOW_MS) * WINDOW_MS);
    expectedWindows.set(id, (expectedWindows.get(id) ?? 0) + 1);
    if (!e.user.startsWith('bot-')) expectedStateless++;
    users.add(r.key);
    if (e.ts > maxTs) maxTs = e.ts;
    if (e.ts < minTs) minTs = e.ts;
    if (chunk.length >= 10_000) await flush();
  }
  if (chunk.length > 0) await flush();
  const flushes = flushRecords(maxTs, flushPages(options.partitions));
  if (!options.holdFlush) await producer.send({ topic, messages: flushes, acks: -1 });
  // The flush records pass the stateless filter too.
  expectedStateless += flushes.length;
  await producer.disconnect();
  return {
    topic,
    records: options.records + flushes.length,
    bytes,
    expectedWindows,
    expectedStateless,
    users,
    eventTimeSpanMs: maxTs - minTs,
    flushes,
  };
}

interface Output {
  key: string;
  windowStart: number;
  windowEnd: number;
  value: number;
}

/** Compares a windowed output with the reference: "exact", or what differs. */
export function checkWindows(outputs: Output[], expected: Map<string, number>): string {
  const actual = new Map<string, number>();
  const problems: string[] = [];
  for (const o of outputs) {
    if (o.key.startsWith('/flush-')) continue;
    const id = windowKey(o.key, o.windowStart);
    const prev = actual.get(id);
    if (prev !== undefined && prev !== o.value) problems.push(`${id}: ${prev} and ${o.value}`);
    actual.set(id, o.value);
  }
  for (const [id, n] of expected) {
    const got = actual.get(id);
    if (got !== n) problems.push(`${id}: expected ${n}, got ${got ?? 'nothing'}`);
  }
  for (const id of actual.keys()) if (!expected.has(id)) problems.push(`${id}: unexpected`);
  return problems.length === 0 ? 'exact' : `${problems.length} mismatches, e.g. ${problems.slice(0, 3).join('; ')}`;
}
