/**
 * Backpressure (design §2): a backlog much larger than the buffer, a job slower than fetching, and a
 * tiny buffer. The receiver must pause partitions whose share is full and resume them when drained,
 * so that the buffer — and the process's memory — stay bounded whatever the backlog; and every
 * record must still be processed, exactly once when nothing fails. The bounds are derived from the
 * configuration the way the receiver sizes its fetches and the buffer shares itself, and checked at
 * every sample (every 100 ms) while the backlog lasts.
 */
import { describe, expect, test } from '@jest/globals';
import { type Message } from 'kafkajs';
import { onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { metricValue, residentBytes, startService, type RunningService } from '../support/service.ts';
import { newTopic, readAll, testProducer } from '../support/topics.ts';
import { CHUNK_OVERHEAD_BYTES } from '../../src/queue/buffer-queue.ts';
import { RECORD_FRAME_BYTES } from '../../src/wire/record-codec.ts';
import { WORKER_YOUNG_GENERATION_MB } from '../../src/pool/worker-slot.ts';

const PARTITIONS = 4;
const COUNT = 300_000;
const VALUE_BYTES = 100;
const BUFFER_MAX_RECORDS = 2000;
const BUFFER_MAX_BYTES = 512 * 1024;
/** Records per partition in one produce request: one record batch of ~11 KB per partition. */
const PRODUCE_PER_PARTITION = 100;

/**
 * How the receiver sizes its fetches from the buffer's byte bound (src/receiver/receiver.ts), restated
 * here so that a change there shows up as a change of the bound: with 512 KiB, 64 KiB per partition.
 */
const MAX_BYTES_PER_PARTITION = Math.min(256 * 1024, Math.max(64 * 1024, Math.floor(BUFFER_MAX_BYTES / 64)));
const MAX_BYTES = Math.min(4 * 1024 * 1024, Math.max(1024 * 1024, Math.floor(BUFFER_MAX_BYTES / 8)));
/**
 * What one fetch can add to one partition's buffer: the broker returns whole record batches up to the
 * partition's limit (it cuts the next one short, and kafkajs drops a partial batch; only a first batch
 * larger than the limit would come whole, and ours are far smaller). A batch of our producer holds the
 * 100 records a request has for the partition; each record takes its 100-byte value plus at least 9
 * bytes of framing (length, attributes, timestamp and offset deltas, null key, 2-byte value length,
 * header count), and the batch a 61-byte header: ≥ 10 961 bytes, so 5 batches fit in 64 KiB, not 6.
 */
const BATCH_WIRE_BYTES = 61 + PRODUCE_PER_PARTITION * (VALUE_BYTES + 9);
const FETCH_RECORDS_PER_PARTITION = Math.floor(MAX_BYTES_PER_PARTITION / BATCH_WIRE_BYTES) * PRODUCE_PER_PARTITION;
/**
 * The buffer's bound (src/queue/buffer-queue.ts): each of the 4 partitions gets an equal share,
 * 2000 / 4 = 500 records (and 128 KiB, which 500 records of 100 bytes never reach first). The receiver
 * pauses a partition as soon as a push brings it to its share, and kafkajs delivers nothing more for a
 * paused partition (the next fetch leaves it out, and what a fetch in flight brings for it is dropped),
 * so before its last push a partition held at most 499 records: at most 499 + 500, the buffer
 * 4 × 999 = 3996. Batches of 1000 records take 250 per partition, so a partition resumed at half its
 * share (250) and refilled by one fetch holds 750: the peak seen is 3000.
 */
const RECORDS_BOUND = PARTITIONS * (Math.ceil(BUFFER_MAX_RECORDS / PARTITIONS) - 1 + FETCH_RECORDS_PER_PARTITION);
/**
 * A record's buffered size is what the buffer holds for it (src/queue/buffer-queue.ts): its packed
 * form (the 100-byte value and the layout's framing; no key, no headers) and its entry in the chunk's
 * start index; each chunk (one fetch's records of a partition) costs a fixed amount more. In a backlog a
 * fetch brings whole 100-record batches, so a partition holds at most one chunk per 100 records plus
 * the one a cut left partly read.
 */
const RECORD_BYTES = VALUE_BYTES + RECORD_FRAME_BYTES + 4;
const CHUNKS_BOUND = PARTITIONS * (Math.ceil(RECORDS_BOUND / PARTITIONS / PRODUCE_PER_PARTITION) + 1);
const BYTES_BOUND = RECORDS_BOUND * RECORD_BYTES + CHUNKS_BOUND * CHUNK_OVERHEAD_BYTES;
/**
 * The service's resident memory grows over what it takes idle (measured in this run before any input:
 * ~160 MB on Node 24 for the main thread, 2 worker threads running the TypeScript sources, kafkajs and
 * Fastify) by what the work holds, and each heap by at most its young generation and some old-generation
 * slack — bounded now that the heaps are sized (src/process-memory.ts, src/pool/worker-slot.ts):
 * - the buffer: BYTES_BOUND, packed records outside the heap;
 * - a fetch being decoded: kafkajs turns MAX_BYTES of response into message objects before the receiver
 *   packs them, about 8 times its bytes;
 * - the main heap's young generation (2 MiB semi-spaces: 3 × 2 MiB) and each worker's
 *   (WORKER_YOUNG_GENERATION_MB), the few hundred KB of a 1000-record batch in its forms in each
 *   worker, and 16 MiB of old-generation growth per heap before V8 collects it.
 * Measured: 24 MB above idle. Before the records were packed at fetch and the heaps sized, 102–144 MB in
 * 9 runs; keeping every batch's records (a leak of ~35 MB per 100 000 records) peaked 249 MB above idle.
 */
const WORKERS = 2;
const MIB = 1024 * 1024;
const RSS_GROWTH_BOUND_BYTES =
  BYTES_BOUND + 8 * MAX_BYTES + 3 * 2 * MIB + WORKERS * WORKER_YOUNG_GENERATION_MB * MIB + (1 + WORKERS) * 16 * MIB;

interface Sample {
  at: number;
  rss: number;
  bufferRecordsGauge: number;
  bufferBytesGauge: number;
  pausedGauge: number;
  lagGauge: number;
  bufferRecordsLive: number;
  bufferBytesLive: number;
  pausedLive: number;
}

/** Samples the child every 100 ms until stopped: RSS from /proc, buffer and lag gauges, live buffer status. */
function sample(service: RunningService): { samples: Sample[]; stop(): Promise<void> } {
  const samples: Sample[] = [];
  let running = true;
  const loop = (async () => {
    while (running) {
      try {
        const rss = residentBytes(service.process.pid!, 'VmRSS');
        const metrics = await service.metrics();
        const status = await service.json<{ buffer: { records: number; bytes: number; paused: number } }>(
          '/api/status',
        );
        samples.push({
          at: Date.now(),
          rss,
          bufferRecordsGauge: metricValue(metrics, 'sluice_buffer_records'),
          bufferBytesGauge: metricValue(metrics, 'sluice_buffer_bytes'),
          pausedGauge: metricValue(metrics, 'sluice_paused_partitions'),
          lagGauge: metricValue(metrics, 'sluice_consumer_lag_records'),
          bufferRecordsLive: status.buffer.records,
          bufferBytesLive: status.buffer.bytes,
          pausedLive: status.buffer.paused,
        });
      } catch {
        // the service is starting or stopping
      }
      await new Promise((r) => setTimeout(r, 100));
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
  test('a 300 000-record backlog through a slow job and a 2 000-record buffer: the buffer within its share plus one fetch per partition, memory bounded, every record processed once', async () => {
    const input = await newTopic('bp-in', PARTITIONS);
    const output = uniqueName('bp-out');
    const name = uniqueName('bp');
    const producer = await testProducer();
    const valueOf = (i: number): string => {
      const head = JSON.stringify({ i, pad: '' });
      return JSON.stringify({ i, pad: 'p'.repeat(VALUE_BYTES - head.length) });
    };
    expect(Buffer.byteLength(valueOf(COUNT - 1))).toBe(VALUE_BYTES);
    expect(BYTES_BOUND).toBeLessThanOrEqual(BUFFER_MAX_BYTES + PARTITIONS * MAX_BYTES_PER_PARTITION);
    expect(PARTITIONS * MAX_BYTES_PER_PARTITION).toBeLessThanOrEqual(MAX_BYTES); // one fetch can serve all four

    const service = await startService({
      job: 'test/fixtures/jobs/slow-map.ts',
      env: {
        TEST_JOB_NAME: name,
        TEST_INPUT: input,
        TEST_OUTPUT: output,
        TEST_SPIN_US: '50',
        TEST_MAX_BATCH: '1000',
        SLUICE_BUFFER_MAX_RECORDS: String(BUFFER_MAX_RECORDS),
        SLUICE_BUFFER_MAX_BYTES: '512KiB',
        SLUICE_WORKERS: String(WORKERS),
      },
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();
    // Idle: what the service takes before any input (every thread started, every client connected).
    const sampler = sample(service);
    onCleanup(() => sampler.stop());
    await new Promise((r) => setTimeout(r, 1500));
    const idleRss = Math.max(...sampler.samples.map((s) => s.rss));

    // The backlog: produced much faster than the slow job processes it.
    const produceStarted = Date.now();
    const perSend = PRODUCE_PER_PARTITION * PARTITIONS;
    for (let start = 0; start < COUNT; start += perSend) {
      const messages: Message[] = [];
      for (let i = start; i < Math.min(COUNT, start + perSend); i++) {
        messages.push({ partition: i % PARTITIONS, key: null, value: valueOf(i) });
      }
      await producer.send({ topic: input, messages });
    }
    const producedMs = Date.now() - produceStarted;
    await waitFor(
      'every record processed',
      async () => (metricValue(await service.metrics(), 'sluice_records_out_total') >= COUNT ? true : undefined),
      90_000,
    );
    const processingMs = Date.now() - produceStarted;
    await sampler.stop();
    const samples = sampler.samples.filter((s) => s.at >= produceStarted);

    const peaks = {
      rssMB: Math.round(peak(samples, 'rss') / 1024 / 1024),
      idleRssMB: Math.round(idleRss / 1024 / 1024),
      lag: peak(samples, 'lagGauge'),
      bufferRecordsGauge: peak(samples, 'bufferRecordsGauge'),
      bufferRecordsLive: peak(samples, 'bufferRecordsLive'),
      bufferBytesGauge: peak(samples, 'bufferBytesGauge'),
      bufferBytesLive: peak(samples, 'bufferBytesLive'),
      pausedGauge: peak(samples, 'pausedGauge'),
      pausedLive: peak(samples, 'pausedLive'),
    };
    console.log(
      `backpressure: ${COUNT} records produced in ${producedMs} ms, processed in ${processingMs} ms, ` +
        `${samples.length} samples, peaks ${JSON.stringify(peaks)}; bounds: ${RECORDS_BOUND} records, ` +
        `${BYTES_BOUND} bytes, idle + ${Math.round(RSS_GROWTH_BOUND_BYTES / MIB)} MiB RSS`,
    );
    expect(samples.length).toBeGreaterThan(20);
    // A backlog far beyond what the buffer may hold existed while the buffer was sampled.
    expect(peaks.lag).toBeGreaterThan(10 * RECORDS_BOUND);
    expect(Math.max(peaks.pausedGauge, peaks.pausedLive)).toBeGreaterThanOrEqual(1);
    for (const s of samples) {
      expect(s.bufferRecordsGauge).toBeLessThanOrEqual(RECORDS_BOUND);
      expect(s.bufferRecordsLive).toBeLessThanOrEqual(RECORDS_BOUND);
      // Buffered bytes are what the records take packed, and their chunks (which the byte bound relies on).
      for (const [records, bytes] of [
        [s.bufferRecordsGauge, s.bufferBytesGauge],
        [s.bufferRecordsLive, s.bufferBytesLive],
      ] as const) {
        expect(bytes).toBeGreaterThanOrEqual(records * RECORD_BYTES + (records > 0 ? CHUNK_OVERHEAD_BYTES : 0));
        expect(bytes).toBeLessThanOrEqual(records * RECORD_BYTES + CHUNKS_BOUND * CHUNK_OVERHEAD_BYTES);
      }
      expect(s.bufferBytesGauge).toBeLessThanOrEqual(BYTES_BOUND);
      expect(s.bufferBytesLive).toBeLessThanOrEqual(BYTES_BOUND);
    }
    expect(peak(samples, 'rss') - idleRss).toBeLessThan(RSS_GROWTH_BOUND_BYTES);

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
