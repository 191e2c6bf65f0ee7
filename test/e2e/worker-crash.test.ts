/**
 * A worker thread that dies in the middle of a batch (design §3: the pool replaces it; the batch
 * fails as a whole, nothing of it is published, and every partition replays from its committed
 * offset). The service must stay up and the output must still equal a recomputation of the input:
 * nothing lost, no wrong value, and — since the failed batch published nothing and replayed records
 * below the checkpoint are not emitted again — nothing twice.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { type IHeaders, type KafkaMessage } from 'kafkajs';
import {
  generateClickstream,
  produceClickstream,
  type GeneratedRecord,
  type PageView,
} from '../../examples/generator/clickstream.ts';
import { admin, createTopic, onCleanup, testKafka, uniqueName, waitFor } from '../helpers.ts';
import { referenceWindows, type RefRecord } from '../support/reference-windows.ts';
import { metricValue, startService } from '../support/service.ts';
import { readAll, testProducer, type ReadRecord } from '../support/topics.ts';

const PARTITIONS = 4;
const COUNT = 30_000;
const WINDOW_MS = 10_000;

interface Output {
  key: string | null;
  windowStart: number;
  windowEnd: number;
  value: number;
}

function parseEvent(r: ReadRecord): PageView | undefined {
  try {
    const e = JSON.parse(r.value!.toString()) as PageView;
    return typeof e.page === 'string' ? e : undefined;
  } catch {
    return undefined;
  }
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

/** A consumer that keeps appending what `topics` receive (read_committed, from the beginning). */
async function follow(topics: string[]): Promise<{ records: ReadRecord[]; stop(): Promise<void> }> {
  const consumer = testKafka().consumer({ groupId: uniqueName('follow'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  const records: ReadRecord[] = [];
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) records.push(toRead(batch.topic, batch.partition, m));
    },
  });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= consumer.disconnect());
  onCleanup(stop);
  return { records, stop };
}

const sourceId = (r: ReadRecord): string =>
  `${r.headers['sluice-source-partition']}:${r.headers['sluice-source-offset']}`;

/**
 * `createTopic` under a uniqueName, tolerating what a loaded KRaft broker may answer while a new
 * topic's metadata propagates ("This server does not host this topic-partition"): the topic was
 * created, so wait until every partition has a leader.
 */
async function newTopic(prefix: string, partitions: number, configs: Record<string, string> = {}): Promise<string> {
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

describe('a worker thread dies mid-batch', () => {
  test('it is replaced, the batch replays, and the windowed output equals the recomputation exactly', async () => {
    const input = await newTopic('wc-in', PARTITIONS);
    const output = uniqueName('wc-out');
    const name = uniqueName('wc');
    const dlqTopic = `${name}-dlq`;
    const markerFile = join(tmpdir(), uniqueName('sluice-worker-crash'));
    onCleanup(async () => rmSync(markerFile, { force: true }));

    // The generated stream with the marker (a valid page view: it counts like any other) halfway.
    const generated = [...generateClickstream({ count: COUNT, seed: 31, eventsPerSecond: 500, users: 200 })];
    const half = generated[COUNT / 2]!.event?.ts ?? generated[COUNT / 2 + 1]!.event!.ts;
    const markerEvent = { page: '/crash', user: 'crash-marker', ts: half };
    const marker: GeneratedRecord = {
      key: 'crash-marker',
      value: JSON.stringify(markerEvent),
      event: markerEvent,
      kind: 'ok',
    };
    const records = [...generated.slice(0, COUNT / 2), marker, ...generated.slice(COUNT / 2)];
    const producer = await testProducer();
    await produceClickstream(producer, input, records, { batchSize: 3000 });
    const maxTs = Math.max(...records.flatMap((r) => (r.event ? [r.event.ts] : [])));
    await producer.send({
      topic: input,
      messages: Array.from({ length: PARTITIONS }, (_, partition) => ({
        partition,
        key: `flush-${partition}`,
        value: JSON.stringify({ page: '/flush', user: `flush-${partition}`, ts: maxTs + 3_600_000 }),
      })),
    });

    const inputRecords = await readAll(input);
    inputRecords.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    const valid = inputRecords.flatMap((r) => {
      const e = parseEvent(r);
      return e ? [{ record: r, event: e }] : [];
    });
    const refInput: RefRecord[] = valid.map(({ record, event }) => ({
      partition: record.partition,
      key: record.key,
      eventTime: event.ts,
      value: event,
    }));
    const reference = referenceWindows(refInput, {
      kind: 'tumbling',
      sizeMs: WINDOW_MS,
      latenessMs: 5_000,
      aggregate: 'count',
    });
    const expected = new Map(reference.closed.map((w) => [`${w.key}|${w.windowStart}`, w.value]));
    expect(expected.get(`crash-marker|${Math.floor(half / WINDOW_MS) * WINDOW_MS}`)).toBe(1);
    const expectedLate = reference.late.map((i) => `${valid[i]!.record.partition}:${valid[i]!.record.offset}`);
    const validIds = new Set(valid.map(({ record }) => `${record.partition}:${record.offset}`));
    const expectedMalformed = inputRecords.map((r) => `${r.partition}:${r.offset}`).filter((id) => !validIds.has(id));
    expect(expectedLate.length).toBeGreaterThan(10);

    const service = await startService({
      job: 'test/fixtures/jobs/crash-once.ts',
      env: {
        TEST_JOB_NAME: name,
        TEST_INPUT: input,
        TEST_OUTPUT: output,
        TEST_MAX_BATCH: '3000',
        TEST_MARKER_FILE: markerFile,
      },
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();
    const seen = await follow([output, dlqTopic]);
    const outputsOf = (): Output[] =>
      seen.records.filter((r) => r.topic === output).map((r) => JSON.parse(r.value!.toString()) as Output);
    const dlqOf = (code: string): ReadRecord[] =>
      seen.records.filter((r) => r.topic === dlqTopic && r.headers['sluice-error-code'] === code);
    await waitFor(
      'every reference window, late and malformed record',
      () => {
        // A wrong value never becomes right: fail at once instead of waiting for the timeout.
        const wrong = outputsOf().find((o) => expected.get(`${o.key}|${o.windowStart}`) !== o.value);
        if (wrong) throw new Error(`wrong result ${JSON.stringify(wrong)}`);
        const ids = new Set(outputsOf().map((o) => `${o.key}|${o.windowStart}`));
        const late = new Set(dlqOf('SLUICE_LATE_RECORD').map(sourceId));
        const bad = new Set(dlqOf('SLUICE_DESERIALIZE_FAILED').map(sourceId));
        const done =
          [...expected.keys()].every((id) => ids.has(id)) &&
          expectedLate.every((id) => late.has(id)) &&
          expectedMalformed.every((id) => bad.has(id));
        return done ? true : undefined;
      },
      60_000,
    ).catch(async (error: unknown) => {
      const ids = new Set(outputsOf().map((o) => `${o.key}|${o.windowStart}`));
      const missing = [...expected.keys()].filter((id) => !ids.has(id));
      console.log(
        `missing ${missing.length} of ${expected.size} windows (e.g. ${missing.slice(0, 5).join(', ')}); ` +
          `marker file ${existsSync(markerFile) ? 'exists' : 'missing'}\n` +
          (await service.metrics().catch(() => ''))
            .split('\n')
            .filter((l) => /^sluice_(records|worker_restarts|batches|partition_resets)/.test(l))
            .join('\n') +
          `\n${service.output().slice(-3000)}`,
      );
      throw error;
    });
    await new Promise((r) => setTimeout(r, 2000)); // duplicates, if any, show up too
    await seen.stop();

    // The crash happened (the job wrote the marker file, then ended its thread) and was survived.
    expect(readFileSync(markerFile, 'utf8')).toMatch(/crash-marker/);
    const metrics = await service.metrics();
    expect(metricValue(metrics, 'sluice_worker_restarts_total')).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, 'sluice_batches_total', { outcome: 'failed' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, 'sluice_partition_resets_total')).toBeGreaterThanOrEqual(1);
    expect(service.output()).toMatch(/worker crashed/);
    expect(service.process.exitCode).toBeNull();
    expect((await fetch(`${service.url}/readyz`)).status).toBe(200);

    // Output: exactly the reference, each window once with its value.
    const outputs = outputsOf();
    const wrong = outputs.filter((o) => expected.get(`${o.key}|${o.windowStart}`) !== o.value);
    expect(wrong).toEqual([]);
    const ids = outputs.map((o) => `${o.key}|${o.windowStart}`);
    expect(ids.length - new Set(ids).size).toBe(0);
    expect(new Set(ids)).toEqual(new Set(expected.keys()));
    // Dead letters: every late and malformed record, once.
    expect(dlqOf('SLUICE_LATE_RECORD').map(sourceId).sort()).toEqual(expectedLate.sort());
    expect(dlqOf('SLUICE_DESERIALIZE_FAILED').map(sourceId).sort()).toEqual(expectedMalformed.sort());
    expect(seen.records.filter((r) => r.topic === dlqTopic)).toHaveLength(
      expectedLate.length + expectedMalformed.length,
    );
    console.log(
      `worker crash: ${outputs.length} results for ${expected.size} windows, ` +
        `${metricValue(metrics, 'sluice_worker_restarts_total')} worker restart(s), ` +
        `${metricValue(metrics, 'sluice_records_replayed_total')} records replayed`,
    );
    expect((await service.stop('SIGTERM')).code).toBe(0);
  });
});
