/**
 * Backpressure (design §2): a backlog much larger than the buffer, a job slower than fetching, and a
 * tiny buffer. The receiver must pause partitions whose share is full and resume them when drained,
 * so that the buffer — and the process's memory — stay bounded whatever the backlog; and every
 * record must still be processed, exactly once when nothing fails.
 */
import { readFileSync } from 'node:fs';
import { describe, expect, test } from '@jest/globals';
import { type Message } from 'kafkajs';
import { onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { metricValue, startService, type RunningService } from '../support/service.ts';
import { newTopic, readAll, testProducer } from '../support/topics.ts';

const PARTITIONS = 4;
const COUNT = 150_000;
const VALUE_BYTES = 100;
const BUFFER_MAX_RECORDS = 2000;
const BUFFER_MAX_BYTES = 512 * 1024;
/**
 * The receiver (src/receiver/receiver.ts) fetches with `maxBytesPerPartition: 1 MiB`, and the buffer
 * always accepts what a fetch delivered before it pauses the partition (src/queue/buffer-queue.ts:
 * "the overshoot is at most one fetch per partition"). One fetch response therefore adds at most
 * 1 MiB of record batches per partition: with values of 100 bytes at most 1 MiB / 100 = 10 486
 * records per partition (fewer: keys, headers and batch overhead take room too), and Kafka may
 * return one whole record batch beyond the limit (our producer's batches hold ≤ 1 250 records per
 * partition). So the buffer may hold up to maxRecords + PARTITIONS × (10 486 + 1 250) records, and
 * maxBytes + PARTITIONS × (1 MiB + one record batch of ~150 KB) bytes. Without backpressure it
 * would fill with the whole backlog (150 000 records, ~16 MB): these bounds tell the two apart.
 */
const ONE_FETCH_RECORDS = PARTITIONS * (Math.ceil((1024 * 1024) / VALUE_BYTES) + 1250);
const RECORDS_BOUND = BUFFER_MAX_RECORDS + ONE_FETCH_RECORDS;
const BYTES_BOUND = BUFFER_MAX_BYTES + PARTITIONS * (1024 * 1024 + 1250 * (VALUE_BYTES + 32));
/**
 * Peak RSS of the whole service process (main thread, 2 worker threads running the TypeScript
 * sources, kafkajs, Fastify): measured at 300–325 MB on this workload on Node 20 with tsx, and at
 * 355–405 MB on Node 24 (x64; the high end with the rest of the suite running). 450 MB leaves room
 * for GC timing while a buffer holding the 16 MB backlog (plus its copies to the workers) and the
 * garbage it makes would still show.
 */
const RSS_BOUND_BYTES = 450 * 1024 * 1024;

interface Sample {
  rss: number;
  bufferRecordsGauge: number;
  bufferBytesGauge: number;
  pausedGauge: number;
  bufferRecordsLive: number;
  bufferBytesLive: number;
  pausedLive: number;
}

function rssOf(pid: number): number {
  const match = /^VmRSS:\s+(\d+)\s+kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return match ? Number(match[1]) * 1024 : 0;
}

/** Samples the child every 200 ms until stopped: RSS from /proc, buffer gauges, live buffer status. */
function sample(service: RunningService): { samples: Sample[]; stop(): Promise<void> } {
  const samples: Sample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const rss = rssOf(service.process.pid!);
        const metrics = await service.metrics();
        const status = await service.json<{ buffer: { records: number; bytes: number; paused: number } }>(
          '/api/status',
        );
        samples.push({
          rss,
          bufferRecordsGauge: metricValue(metrics, 'sluice_buffer_records'),
          bufferBytesGauge: metricValue(metrics, 'sluice_buffer_bytes'),
          pausedGauge: metricValue(metrics, 'sluice_paused_partitions'),
          bufferRecordsLive: status.buffer.records,
          bufferBytesLive: status.buffer.bytes,
          pausedLive: status.buffer.paused,
        });
      } catch {
        // the service is starting or stopping
      }
      await new Promise((r) => setTimeout(r, 200));
    }
  })();
  return {
    samples,
    stop: async () => {
      running = false;
      await loop;
    },
  };
}

const peak = (samples: Sample[], field: keyof Sample): number => Math.max(0, ...samples.map((s) => s[field]));

describe('backpressure', () => {
  test('a 150 000-record backlog through a slow job and a 2 000-record buffer: bounded buffer and memory, every record processed once', async () => {
    const input = await newTopic('bp-in', PARTITIONS);
    const output = uniqueName('bp-out');
    const name = uniqueName('bp');
    const producer = await testProducer();
    const valueOf = (i: number): string => {
      const head = JSON.stringify({ i, pad: '' });
      return JSON.stringify({ i, pad: 'p'.repeat(VALUE_BYTES - head.length) });
    };
    for (let start = 0; start < COUNT; start += 5000) {
      const messages: Message[] = [];
      for (let i = start; i < Math.min(COUNT, start + 5000); i++) {
        messages.push({ partition: i % PARTITIONS, key: null, value: valueOf(i) });
      }
      await producer.send({ topic: input, messages });
    }
    expect(Buffer.byteLength(valueOf(COUNT - 1))).toBe(VALUE_BYTES);

    const service = await startService({
      job: 'test/fixtures/jobs/slow-map.ts',
      env: {
        TEST_JOB_NAME: name,
        TEST_INPUT: input,
        TEST_OUTPUT: output,
        TEST_SPIN_US: '50',
        TEST_MAX_BATCH: '5000',
        SLUICE_BUFFER_MAX_RECORDS: String(BUFFER_MAX_RECORDS),
        SLUICE_BUFFER_MAX_BYTES: '512KiB',
      },
    });
    onCleanup(() => service.stop('SIGKILL'));
    const sampler = sample(service);
    onCleanup(() => sampler.stop());
    await service.waitReady();
    const started = Date.now();
    await waitFor(
      'every record processed',
      async () => (metricValue(await service.metrics(), 'sluice_records_out_total') >= COUNT ? true : undefined),
      60_000,
    );
    const processingMs = Date.now() - started;
    await sampler.stop();
    const { samples } = sampler;

    const peaks = {
      rssMB: Math.round(peak(samples, 'rss') / 1024 / 1024),
      bufferRecordsGauge: peak(samples, 'bufferRecordsGauge'),
      bufferRecordsLive: peak(samples, 'bufferRecordsLive'),
      bufferBytesGauge: peak(samples, 'bufferBytesGauge'),
      bufferBytesLive: peak(samples, 'bufferBytesLive'),
      pausedGauge: peak(samples, 'pausedGauge'),
      pausedLive: peak(samples, 'pausedLive'),
    };
    console.log(
      `backpressure: ${COUNT} records in ${processingMs} ms, ${samples.length} samples, peaks ${JSON.stringify(peaks)}; ` +
        `bounds: ${RECORDS_BOUND} records, ${BYTES_BOUND} bytes, ${RSS_BOUND_BYTES / 1024 / 1024} MB RSS`,
    );
    expect(samples.length).toBeGreaterThan(5);
    expect(peak(samples, 'rss')).toBeLessThan(RSS_BOUND_BYTES);
    expect(peaks.bufferRecordsGauge).toBeLessThanOrEqual(RECORDS_BOUND);
    expect(peaks.bufferRecordsLive).toBeLessThanOrEqual(RECORDS_BOUND);
    expect(peaks.bufferBytesGauge).toBeLessThanOrEqual(BYTES_BOUND);
    expect(peaks.bufferBytesLive).toBeLessThanOrEqual(BYTES_BOUND);
    expect(Math.max(peaks.pausedGauge, peaks.pausedLive)).toBeGreaterThanOrEqual(1);

    // Every record processed, exactly once, with the job's deterministic result.
    const outputs = await readAll(output);
    expect(outputs).toHaveLength(COUNT);
    const seen = new Uint8Array(COUNT);
    const wrong: string[] = [];
    for (const r of outputs) {
      const o = JSON.parse(r.value!.toString()) as { i: number; sq: number; len: number };
      const expectedValue = JSON.stringify({
        i: o.i,
        sq: (o.i * o.i) % 1_000_003,
        len: VALUE_BYTES - JSON.stringify({ i: o.i, pad: '' }).length,
      });
      if (r.value!.toString() !== expectedValue || !(o.i >= 0 && o.i < COUNT)) wrong.push(r.value!.toString());
      else seen[o.i]!++;
    }
    expect(wrong.slice(0, 10)).toEqual([]);
    expect(seen.every((n) => n === 1)).toBe(true);
    const metrics = await service.metrics();
    expect(metricValue(metrics, 'sluice_records_in_total', { topic: input })).toBe(COUNT);
    expect((await service.stop('SIGTERM')).code).toBe(0);
  });
});
