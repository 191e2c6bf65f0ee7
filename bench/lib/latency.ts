/**
 * Latency mode: page views produced at a fixed rate with event time = now and the produce time in a
 * header; latency of a window = the time its result is read from the output topic minus the time the
 * last record of that window was produced. Windows of the warm-up (first 10 s) are not counted.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Admin, type Kafka, Partitioners } from 'kafkajs';
import { ClickstreamModel } from '../../examples/generator/clickstream.ts';
import { WINDOW_MS, createTopics, windowKey } from './data.ts';
import { consumeUntil, percentile, rssSampler } from './measure.ts';
import { startSluice } from './systems.ts';

export interface LatencySystem {
  kind: 'sluice' | 'kafka-streams' | 'spark';
  /** Sluice batch interval, Kafka Streams commit interval, Spark trigger (ms). */
  setting: number;
  rate: number;
  fraction: number;
  workers?: string | undefined;
  /** Sluice only: its delivery (default: the job's, exactly-once). */
  delivery?: 'exactly-once' | 'at-least-once';
}

export interface LatencyResult {
  system: string;
  setting: number;
  targetRate: number;
  achievedRate: number;
  windows: number;
  p50: number;
  p95: number;
  p99: number;
  peakRssMb: number | null;
  check: string;
}

const LATENESS_MS = 5_000;

export async function runLatency(
  kafka: Kafka,
  admin: Admin,
  brokers: string,
  system: LatencySystem,
  options: { seconds: number; partitions: number; recordSize: number; run: string },
): Promise<LatencyResult> {
  const mode = system.delivery === 'at-least-once' ? '-alo' : '';
  const id = `${system.kind}${mode}-${system.setting}-${Math.round(system.fraction * 100)}-${options.run}`;
  const input = `bench-lat-in-${id}`;
  const output = `bench-lat-out-${id}`;
  await createTopics(admin, [
    { topic: input, partitions: options.partitions },
    { topic: output, partitions: options.partitions },
  ]);

  let stop: () => Promise<number>;
  if (system.kind === 'sluice') {
    const service = await startSluice('bench/jobs/page-views.ts', {
      KAFKA_BROKERS: brokers,
      BENCH_JOB_NAME: `bench-lat-${id}`,
      BENCH_INPUT: input,
      BENCH_OUTPUT: output,
      BENCH_BATCH_INTERVAL_MS: String(system.setting),
      ...(system.workers ? { SLUICE_WORKERS: system.workers } : {}),
      ...(system.delivery ? { SLUICE_DELIVERY: system.delivery } : {}),
    });
    for (;;) {
      const ok = await fetch(`${service.url}/readyz`).then(
        (r) => r.ok,
        () => false,
      );
      if (ok) break;
      await new Promise((r) => setTimeout(r, 200));
    }
    stop = () => service.stop();
  } else {
    const peers = await import('../peers/peers.ts');
    const run =
      system.kind === 'spark'
        ? await peers.startSpark({
            brokers,
            input,
            output,
            checkpointDir: mkdtempSync(join(tmpdir(), 'bench-spark-')),
            triggerMs: system.setting,
          })
        : await peers.startKafkaStreams({
            brokers,
            input,
            output,
            applicationId: `bench-lat-ks-${id}`,
            commitIntervalMs: system.setting,
          });
    const sampler = rssSampler(run.process.pid!);
    stop = async () => {
      const peak = Math.max(sampler.stop(), run.peakRssBytes());
      await run.stop();
      return peak;
    };
    // JVM start-up and group join: let it settle before the clock starts.
    await new Promise((r) => setTimeout(r, 10_000));
  }

  const produced = new Map<string, { count: number; lastAt: number }>();
  const latencies = new Map<string, { latency: number; value: number }>();
  const start = Date.now();
  const stopProducingAt = start + options.seconds * 1000;
  const measureFrom = Math.ceil((start + 10_000) / WINDOW_MS) * WINDOW_MS;
  const measured = (windowStart: number): boolean =>
    windowStart >= measureFrom && windowStart + WINDOW_MS <= stopProducingAt;

  const reading = consumeUntil(
    kafka,
    output,
    `bench-lat-reader-${id}`,
    (r) => {
      const v = JSON.parse(r.value!.toString()) as { key: string; windowStart: number; value: number };
      const key = windowKey(v.key, v.windowStart);
      const p = produced.get(key);
      if (p && measured(v.windowStart) && !latencies.has(key))
        latencies.set(key, { latency: r.receivedAt - p.lastAt, value: v.value });
    },
    () =>
      Date.now() > stopProducingAt &&
      [...produced.keys()].every((k) => !measured(Number(k.split('|')[1])) || latencies.has(k)),
    options.seconds * 1000 + 90_000,
  ).catch((error: unknown) => error as Error);

  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const model = new ClickstreamModel({ seed: 7, lateFraction: 0, malformedFraction: 0, users: 2000, pages: 60 });
  let sent = 0;
  // Keep producing past the measured period so that the last measured windows close by event time.
  const tailUntil = stopProducingAt + LATENESS_MS + 3_000;
  while (Date.now() < tailUntil) {
    const now = Date.now();
    const due = Math.floor(((now - start) / 1000) * system.rate) - sent;
    if (due > 0) {
      const messages = [];
      for (let i = 0; i < due; i++) {
        const r = model.next(now);
        const e = r.event!;
        const base = JSON.stringify(e);
        const pad = Math.max(0, options.recordSize - base.length - 10);
        messages.push({
          key: r.key,
          value: pad > 0 ? `${base.slice(0, -1)},"pad":"${'x'.repeat(pad)}"}` : base,
          headers: { 'bench-produced-at': String(now) },
        });
        const key = windowKey(e.page, Math.floor(e.ts / WINDOW_MS) * WINDOW_MS);
        const p = produced.get(key) ?? { count: 0, lastAt: 0 };
        p.count++;
        p.lastAt = now;
        produced.set(key, p);
      }
      // Behind schedule, `due` grows: keep each request well under the broker's 1 MiB per partition.
      for (let i = 0; i < messages.length; i += 4_000) {
        await producer.send({ topic: input, messages: messages.slice(i, i + 4_000), acks: 1 });
      }
      sent += due;
    }
    await new Promise((r) => setTimeout(r, 10));
  }
  await producer.disconnect();
  const achieved = Math.round(sent / ((Date.now() - start) / 1000));
  const readError = await reading;
  const rss = await stop();

  const samples = [...latencies.values()].map((l) => l.latency).sort((a, b) => a - b);
  let mismatches = 0;
  for (const [key, l] of latencies) if (produced.get(key)?.count !== l.value) mismatches++;
  const expectedWindows = [...produced.keys()].filter((k) => measured(Number(k.split('|')[1]))).length;
  const check =
    readError instanceof Error
      ? `incomplete: ${latencies.size}/${expectedWindows} windows`
      : latencies.size === 0
        ? 'no window measured'
        : mismatches === 0
          ? 'exact'
          : `${mismatches} windows differ`;
  return {
    system: system.kind === 'sluice' && system.delivery === 'at-least-once' ? 'sluice (a-l-o)' : system.kind,
    setting: system.setting,
    targetRate: system.rate,
    achievedRate: achieved,
    windows: samples.length,
    p50: Math.round(percentile(samples, 50)),
    p95: Math.round(percentile(samples, 95)),
    p99: Math.round(percentile(samples, 99)),
    peakRssMb: rss ? Math.round(rss / 1e6) : null,
    check,
  };
}
