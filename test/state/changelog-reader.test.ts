/**
 * The changelog reader against a real broker: what it returns is compared with what the test wrote
 * (offsets, keys and values), for compacted, transactional, truncated and empty partitions, one of
 * 1 000 000 records (written, restored and checked in a plain Node process; the restore rate is
 * printed), and, on a broker of the test's own, a log the
 * cleaner has compacted and a broker that is down for a while.
 */
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { CompressionTypes, Kafka, logLevel, type Message, type Producer, type ProducerConfig } from 'kafkajs';
import { startLocalBroker, type LocalBroker } from '../../scripts/kafka/local-broker.ts';
import { isSluiceError, type SluiceError } from '../../src/errors.ts';
import {
  ChangelogReader,
  type ChangelogReaderOptions,
  type ChangelogRecord,
} from '../../src/state/changelog-reader.ts';
import { admin, createTopic, onCleanup, testBrokers, testKafka, uniqueName, waitFor } from '../helpers.ts';
import { LARGE_KEYS } from '../support/changelog-load.ts';

const loadScript = fileURLToPath(new URL('../support/changelog-load.ts', import.meta.url));

/**
 * Runs `test/support/changelog-load.ts` in a plain Node process (see there why) and returns what it
 * prints: for `restore`, the count, the end and the first mismatches with what `write` wrote.
 */
async function load(command: 'write' | 'restore', brokers: string, topic: string, records: number) {
  const { stdout } = await promisify(execFile)(process.execPath, [
    loadScript,
    command,
    brokers,
    topic,
    String(records),
  ]);
  return JSON.parse(stdout) as { ms: number } & Record<string, unknown>;
}

interface Read {
  offset: number;
  key: string | null;
  value: string | null;
}
interface Chunk {
  first: number;
  last: number;
  count: number;
  position: number;
  end: number;
}

const text = (buffer: Buffer | null): string | null => (buffer === null ? null : buffer.toString());
const values = (read: readonly Read[]): Array<string | null> => read.map((r) => r.value);

async function startedReader(topic: string, options: ChangelogReaderOptions = {}, kafka = testKafka()) {
  const reader = new ChangelogReader(kafka, topic, options);
  onCleanup(() => reader.stop());
  await reader.start();
  return reader;
}

/** Restores `partition`, keeping every record and what each callback was told. */
async function restoreAll(
  reader: ChangelogReader,
  partition: number,
  onChunk: (records: ChangelogRecord[]) => Promise<void> | void = () => undefined,
) {
  const read: Read[] = [];
  const chunks: Chunk[] = [];
  const result = await reader.restore(partition, async (records, position, end) => {
    chunks.push({ first: records[0]!.offset, last: records.at(-1)!.offset, count: records.length, position, end });
    for (const r of records) read.push({ offset: r.offset, key: text(r.key), value: text(r.value) });
    await onChunk(records);
  });
  return { result, read, chunks };
}

function producer(kafka: Kafka, config: ProducerConfig = {}): Producer {
  const p = kafka.producer({ allowAutoTopicCreation: false, ...config });
  onCleanup(() => p.disconnect());
  return p;
}

async function transactional(kafka: Kafka, name: string): Promise<Producer> {
  const p = producer(kafka, {
    transactionalId: uniqueName(name),
    idempotent: true,
    maxInFlightRequests: 1,
    transactionTimeout: 60_000,
  });
  await p.connect();
  return p;
}

/** The error `action` rejects with; fails when it resolves. */
async function rejection(action: () => Promise<unknown>): Promise<SluiceError> {
  try {
    await action();
  } catch (error) {
    if (isSluiceError(error)) return error;
    throw error;
  }
  throw new Error('resolved');
}

describe('on the shared broker', () => {
  let plain: Producer;
  beforeAll(async () => {
    plain = producer(testKafka());
    await plain.connect();
  });

  test('a compacted changelog with several values per key: every record, in order and in chunks, up to the end the read began with', async () => {
    const topic = await createTopic(uniqueName('changelog-compact'), 1, { 'cleanup.policy': 'compact' });
    const written: Read[] = [];
    for (let i = 0; i < 3_000; i++) {
      // 50 keys, 60 values each; every 7th write a tombstone. 100-byte values: chunks of 64 KiB hold ~600.
      const value = i % 7 === 3 ? null : `v${i}`.padEnd(100, '.');
      written.push({ offset: i, key: `k${i % 50}`, value });
    }
    for (let i = 0; i < written.length; i += 500) {
      const messages = written.slice(i, i + 500).map((r) => ({ key: r.key, value: r.value }));
      await plain.send({ topic, acks: -1, messages });
    }

    const reader = await startedReader(topic, { maxBytes: 64 * 1024 });
    let wroteDuring = false;
    const { result, read, chunks } = await restoreAll(reader, 0, async () => {
      if (wroteDuring) return;
      wroteDuring = true; // after the first response: past the end this read stops at
      await plain.send({ topic, acks: -1, messages: [{ key: 'k1', value: 'later' }] });
    });

    expect(result).toEqual({ records: 3_000, endOffset: 3_000 });
    expect(read).toEqual(written);
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    let position = 0;
    for (const chunk of chunks) {
      expect(chunk.first).toBe(position); // no gaps in this log: each chunk starts where the last one ended
      expect(chunk.position).toBe(chunk.last + 1);
      expect(chunk.end).toBe(3_000);
      position = chunk.position;
    }
    expect(position).toBe(3_000);

    // A new read has a new end.
    const again = await restoreAll(reader, 0);
    expect(again.result).toEqual({ records: 3_001, endOffset: 3_001 });
    expect(again.read.at(-1)).toEqual({ offset: 3_000, key: 'k1', value: 'later' });

    // stop() during a restore: the restore rejects before its next fetch, and stop() resolves.
    const stopped = await startedReader(topic, { maxBytes: 64 * 1024 });
    let stopping: Promise<void> | undefined;
    let calls = 0;
    const failure = await rejection(() =>
      stopped.restore(0, () => {
        calls++;
        stopping ??= stopped.stop();
      }),
    );
    expect(failure).toMatchObject({ code: 'SLUICE_RESTORE_FAILED', retryable: false });
    expect(failure.message).toContain('stopped');
    expect(calls).toBe(1);
    await stopping;
    expect(stopped.state).toBe('stopped');
  });

  test('records of aborted transactions are left out, also across chunk boundaries inside two of them, while committed and plain records are kept', async () => {
    const topic = await createTopic(uniqueName('changelog-txn'), 1);
    const kafka = testKafka();
    const [a, b] = await Promise.all([transactional(kafka, 'changelog-a'), transactional(kafka, 'changelog-b')]);
    const send = (p: Producer | { send: Producer['send'] }, messages: Message[]) => p.send({ topic, messages });

    await send(plain, [{ key: 'p', value: 'p-0' }]);
    let txn = await a.transaction();
    await send(txn, [
      { key: 'a', value: 'a-1' },
      { key: 'a', value: 'a-2' },
    ]);
    await txn.commit();
    // kafkajs's own filter would take the four-zero-byte key (an int32 0) for the abort marker.
    txn = await a.transaction();
    await send(txn, [{ key: 'x', value: 'x-1' }]);
    await send(txn, [{ key: Buffer.from([0, 0, 0, 0]), value: 'x-zero-key' }]);
    await send(txn, [{ key: 'x', value: 'x-2' }]);
    await txn.abort();
    await send(plain, [{ key: 'p', value: 'p-1' }]);
    txn = await a.transaction();
    await send(txn, [{ key: 'a', value: 'a-3' }]);
    await txn.commit();
    // Two aborted transactions open at once: A's begins, then B writes ~300 KiB, then A again. Every
    // fetch of 64 KiB after the first starts inside both, at a record of B's; kafkajs's filter, which
    // enters one aborted transaction per record it passes (A's first: it began first), would keep it.
    const [ta, tb] = [await a.transaction(), await b.transaction()];
    const filler = '.'.repeat(1_000);
    await send(ta, [{ key: 'ia', value: `ia-first${filler}` }]);
    for (let i = 0; i < 300; i++) {
      await send(tb, [{ key: `ib${i % 10}`, value: `ib-${i}${filler}` }]);
      if (i === 150) await send(plain, [{ key: 'p', value: 'p-mid' }]);
    }
    await send(ta, [{ key: 'ia', value: `ia-last${filler}` }]);
    await ta.abort();
    await tb.abort();
    txn = await b.transaction();
    await send(txn, [{ key: 'b', value: 'b-1' }]);
    await txn.commit();
    await send(plain, [{ key: 'p', value: 'p-2' }]);

    const reader = await startedReader(topic, { maxBytes: 64 * 1024 });
    const { result, read, chunks } = await restoreAll(reader, 0);
    expect(values(read)).toEqual(['p-0', 'a-1', 'a-2', 'p-1', 'a-3', 'p-mid', 'b-1', 'p-2']);
    expect(read.map((r) => r.key)).toEqual(['p', 'a', 'a', 'p', 'a', 'p', 'b', 'p']);
    // Offsets as the log has them: a-1 follows p-0, a-2 follows a-1 in one batch.
    expect(read.slice(0, 3).map((r) => r.offset)).toEqual([0, 1, 2]);
    for (let i = 1; i < read.length; i++) expect(read[i]!.offset).toBeGreaterThan(read[i - 1]!.offset);
    expect(chunks.length).toBeGreaterThanOrEqual(3);
    const offsets = await (await admin()).fetchTopicOffsets(topic);
    expect(result).toEqual({ records: 8, endOffset: Number(offsets[0]!.high) });
  });

  test('an open transaction: the read stops at the last stable offset at once, also when the partition starts with it', async () => {
    const topic = await createTopic(uniqueName('changelog-open'), 2);
    const open = await transactional(testKafka(), 'changelog-open');
    await plain.send({ topic, messages: [0, 1, 2, 3, 4].map((i) => ({ partition: 0, key: 'c', value: `c-${i}` })) });
    const txn = await open.transaction();
    await txn.send({
      topic,
      messages: [
        { partition: 0, key: 'o', value: 'open-0' },
        { partition: 1, key: 'o', value: 'open-1' },
      ],
    });
    await plain.send({ topic, messages: [{ partition: 0, key: 'c', value: 'after-open' }] });

    const reader = await startedReader(topic);
    const started = Date.now();
    const [zero, one] = await Promise.all([restoreAll(reader, 0), restoreAll(reader, 1)]);
    const elapsed = Date.now() - started;
    console.log(`two partitions held by an open transaction read in ${elapsed} ms`);
    expect(elapsed).toBeLessThan(5_000); // kafkajs's default fetch wait is 5 s; the reader must not wait
    expect(zero.result).toEqual({ records: 5, endOffset: 5 });
    expect(values(zero.read)).toEqual(['c-0', 'c-1', 'c-2', 'c-3', 'c-4']);
    expect(one.result).toEqual({ records: 0, endOffset: 0 });
    expect(one.chunks).toEqual([]);

    await txn.commit();
    // commit() resolves before the coordinator has written the markers that move the stable end.
    const [zeroAfter, oneAfter] = await waitFor('the commit markers', async () => {
      const both = await Promise.all([restoreAll(reader, 0), restoreAll(reader, 1)]);
      return both[0].result.endOffset > 5 && both[1].result.endOffset > 0 ? both : undefined;
    });
    // The commit marker takes an offset of its own: 5 data records, open-0, after-open, marker.
    expect(zeroAfter.result).toEqual({ records: 7, endOffset: 8 });
    expect(values(zeroAfter.read)).toEqual(['c-0', 'c-1', 'c-2', 'c-3', 'c-4', 'open-0', 'after-open']);
    expect(zeroAfter.read.map((r) => r.offset)).toEqual([0, 1, 2, 3, 4, 5, 6]);
    expect(oneAfter.result).toEqual({ records: 1, endOffset: 2 });
    expect(oneAfter.read).toEqual([{ offset: 0, key: 'o', value: 'open-1' }]);
  });

  test('empty partitions resolve at once, next to a partition with records restored concurrently; bad calls fail clearly', async () => {
    const topic = await createTopic(uniqueName('changelog-empty'), 3);
    const written = Array.from({ length: 200 }, (_, i) => ({ offset: i, key: `k${i % 9}`, value: `v${i}` }));
    await plain.send({ topic, messages: written.map((r) => ({ partition: 1, key: r.key, value: r.value })) });
    const sockets = (): number => process.getActiveResourcesInfo().filter((r) => r === 'TCPSocketWrap').length;
    const socketsBefore = sockets();
    const reader = await startedReader(topic, { retryTimeoutMs: 500 });

    const started = Date.now();
    const [p0, p1, p2] = await Promise.all([0, 1, 2].map((p) => restoreAll(reader, p)));
    expect(Date.now() - started).toBeLessThan(5_000);
    expect(p0!.result).toEqual({ records: 0, endOffset: 0 });
    expect(p0!.chunks).toEqual([]);
    expect(p2!.result).toEqual({ records: 0, endOffset: 0 });
    expect(p1!.result).toEqual({ records: 200, endOffset: 200 });
    expect(p1!.read).toEqual(written);

    // A partition the topic does not have may be one being added: retried, then a retryable failure.
    const missing = await rejection(() => reader.restore(3, () => undefined));
    expect(missing).toMatchObject({ name: 'RestoreError', code: 'SLUICE_RESTORE_FAILED', retryable: true });
    expect(missing.message).toContain(`${topic} has no partition 3`);
    expect(await rejection(() => reader.restore(-1, () => undefined))).toMatchObject({
      code: 'SLUICE_RESTORE_FAILED',
      retryable: false,
    });
    // What the callback throws is the restore's failure, as it is.
    const own = new Error('store full');
    await expect(reader.restore(1, () => Promise.reject(own))).rejects.toBe(own);

    const unstarted = new ChangelogReader(testKafka(), topic);
    expect(await rejection(() => unstarted.restore(0, () => undefined))).toMatchObject({
      code: 'SLUICE_ILLEGAL_STATE',
    });
    await reader.stop();
    await reader.stop();
    expect(reader.state).toBe('stopped');
    // Concurrent first fetches open no extra socket that stop() would leave behind.
    expect(sockets()).toBe(socketsBefore);
    expect(await rejection(() => reader.restore(0, () => undefined))).toMatchObject({ code: 'SLUICE_ILLEGAL_STATE' });
    expect(() => new ChangelogReader(testKafka(), topic, { maxBytes: 1_000 })).toThrow(/maxBytes/);
  });

  test('a topic that does not exist fails start() with a retryable restore error after the deadline', async () => {
    const reader = new ChangelogReader(testKafka(), uniqueName('changelog-missing'), { retryTimeoutMs: 1_000 });
    onCleanup(() => reader.stop());
    const failure = await rejection(() => reader.start());
    expect(failure).toMatchObject({ code: 'SLUICE_RESTORE_FAILED', retryable: true });
    expect(failure.message).toMatch(/UNKNOWN_TOPIC_OR_PARTITION|does not host this topic-partition/);
    expect(reader.state).toBe('idle');
  });

  test('records deleted below an offset: the read starts at the new log start', async () => {
    const topic = await createTopic(uniqueName('changelog-deleted'), 1);
    const written = Array.from({ length: 100 }, (_, i) => ({ offset: i, key: `k${i % 4}`, value: `v${i}` }));
    // One compressed batch: the fetch at 40 returns it whole, from offset 0.
    await plain.send({
      topic,
      compression: CompressionTypes.GZIP,
      messages: written.map((r) => ({ key: r.key, value: r.value })),
    });
    const a = await admin();
    await a.fetchTopicOffsets(topic); // kafkajs's deleteTopicRecords finds the leader in cached metadata only
    await a.deleteTopicRecords({ topic, partitions: [{ partition: 0, offset: '40' }] });

    const reader = await startedReader(topic);
    const { result, read, chunks } = await restoreAll(reader, 0);
    expect(result).toEqual({ records: 60, endOffset: 100 });
    expect(read).toEqual(written.slice(40));
    expect(chunks[0]!.first).toBe(40);
  });

  test('1 000 000 small records: the exact count, every offset in order and the last value of every key', async () => {
    const RECORDS = 1_000_000;
    // A segment larger than the log: the cleaner compacts nothing while the test runs.
    const topic = await createTopic(uniqueName('changelog-large'), 1, {
      'cleanup.policy': 'compact',
      'segment.bytes': String(1024 * 1024 * 1024),
    });
    const brokers = testBrokers().join(',');
    const written = await load('write', brokers, topic, RECORDS);
    const restored = await load('restore', brokers, topic, RECORDS);
    console.log(
      `restored ${restored.records} records (20-byte keys, 16-byte values) into a Map by key in ${Math.round(restored.ms)} ms:` +
        ` ${Math.round((RECORDS / restored.ms) * 1000)} records/s in a plain Node process (written in ${Math.round(written.ms)} ms)`,
    );
    expect(restored).toMatchObject({
      records: RECORDS,
      endOffset: RECORDS,
      delivered: RECORDS,
      keys: LARGE_KEYS,
      wrong: [], // every record at its offset, with the key and value written there
      stale: [], // the last value of each key
    });
  });
});

describe('on a broker of its own', () => {
  let broker: LocalBroker;
  let kafka: Kafka;
  beforeAll(async () => {
    // The cleaner looks for work every 100 ms instead of 15 s.
    broker = await startLocalBroker({ heap: '384m', properties: { 'log.cleaner.backoff.ms': '100' } });
    kafka = new Kafka({
      clientId: 'sluice-changelog-test',
      brokers: [broker.brokers],
      logLevel: logLevel.NOTHING,
      retry: { retries: 2, initialRetryTime: 100 },
    });
  }, 120_000);
  afterAll(() => broker?.stop());

  async function ownTopic(prefix: string, configs: Record<string, string> = {}): Promise<string> {
    const a = kafka.admin();
    await a.connect();
    try {
      const topic = uniqueName(prefix);
      await a.createTopics({
        waitForLeaders: true,
        topics: [
          {
            topic,
            numPartitions: 1,
            replicationFactor: 1,
            configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })),
          },
        ],
      });
      return topic;
    } finally {
      await a.disconnect();
    }
  }

  test('a log the cleaner compacted: gaps in the offsets, the latest value (or tombstone) of each key', async () => {
    const topic = await ownTopic('changelog-cleaned', {
      'cleanup.policy': 'compact',
      'segment.ms': '100',
      'min.cleanable.dirty.ratio': '0.01',
      'min.compaction.lag.ms': '0',
    });
    const p = producer(kafka);
    await p.connect();
    // Three rounds of the same 10 keys, each in a segment of its own (a write after segment.ms rolls it).
    for (const round of [1, 2, 3]) {
      const messages = Array.from({ length: 10 }, (_, k) => ({
        key: `k${k}`,
        value: round === 3 && k === 9 ? null : `k${k}-v${round}`,
      }));
      await p.send({ topic, acks: -1, messages });
      await new Promise((r) => setTimeout(r, 250));
    }
    await p.send({ topic, acks: -1, messages: [{ key: 'last', value: 'rolls-the-third-segment' }] });
    const expected: Read[] = [
      ...Array.from({ length: 9 }, (_, k) => ({ offset: 20 + k, key: `k${k}`, value: `k${k}-v3` })),
      { offset: 29, key: 'k9', value: null },
      { offset: 30, key: 'last', value: 'rolls-the-third-segment' },
    ];

    const reader = await startedReader(topic, {}, kafka);
    const deadline = Date.now() + 30_000;
    let read: Read[] = [];
    let result = { records: 0, endOffset: 0 };
    for (;;) {
      ({ read, result } = await restoreAll(reader, 0));
      if (read.length === expected.length || Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    expect(read).toEqual(expected);
    expect(result).toEqual({ records: 11, endOffset: 31 });
  });

  test('a broker that is down: retried until it is back, or a retryable failure after the deadline', async () => {
    const topic = await ownTopic('changelog-outage');
    const p = producer(kafka);
    await p.connect();
    const written = Array.from({ length: 500 }, (_, i) => ({ offset: i, key: `k${i % 5}`, value: `v${i}` }));
    await p.send({ topic, acks: -1, messages: written.map((r) => ({ key: r.key, value: r.value })) });
    await p.disconnect();
    const patient = await startedReader(topic, { retryTimeoutMs: 30_000 }, kafka);
    const hasty = await startedReader(topic, { retryTimeoutMs: 1_000 }, kafka);

    await broker.stopProcess();
    let startedAgain = 0;
    try {
      const waiting = restoreAll(patient, 0);
      const failing = Date.now();
      const failure = await rejection(() => hasty.restore(0, () => undefined));
      console.log(`with the broker down: ${failure.message} (after ${Date.now() - failing} ms)`);
      expect(failure).toMatchObject({ code: 'SLUICE_RESTORE_FAILED', retryable: true });
      expect(failure.message).toContain('retried for 1000 ms');
      await broker.startProcess();
      startedAgain = Date.now();
      const { result, read } = await waiting;
      console.log(`restored ${result.records} records ${Date.now() - startedAgain} ms after the broker was back`);
      expect(result).toEqual({ records: 500, endOffset: 500 });
      expect(read).toEqual(written);
    } finally {
      if (!broker.running) await broker.startProcess();
    }
  });
});
