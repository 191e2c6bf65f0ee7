/**
 * Latency mode: live page views from the Java load generator (bench/lib/generator.ts) at a fixed rate,
 * event time = now, into a fresh topic that one system reads; its output is read as it appears
 * (`read_committed`, so a transactional result counts once it is committed). Afterwards the input topic
 * is read back and every figure is recomputed from what it holds, not from what the generator meant to send.
 *
 * Two measures, each the engine's own delay:
 * - **close latency** (the windowed job): time a window's result is readable minus the produce time
 *   (CreateTime) of the first record whose event time made the window closable, i.e. event time ≥
 *   window end + the 5 s lateness. The lateness a job asks for is not part of it.
 * - **end-to-end latency** (the stateless job): time a record's output is readable minus the record's
 *   produce time.
 *
 * Measured: the windows that start at or after the first window boundary past a 10 s warm-up and end
 * within `seconds`; for the stateless job, the records produced in that same span. Every window and
 * record of the run is checked against the read-back input.
 */
import { type Admin, type Kafka } from 'kafkajs';
import { WINDOW_MS, createTopics } from './data.ts';
import { runGenerator } from './generator.ts';
import { InputRecap, LATENESS_MS, StatelessOutput, WindowedOutput, type Expected } from './latency-check.ts';
import { consumeUntil, percentile, rssSampler } from './measure.ts';
import { startPeer } from './peer-runs.ts';
import { startSluice } from './systems.ts';

export type LatencyJob = 'windowed' | 'stateless';

export interface LatencySystem {
  kind: 'sluice' | 'kafka-streams' | 'spark' | 'flink';
  job: LatencyJob;
  /** Sluice batch interval, Kafka Streams commit interval, Spark trigger, Flink's setting (ms). */
  setting: number;
  rate: number;
  fraction: number;
  workers?: string | undefined;
  /** Sluice only: its delivery (default: the job's, exactly-once). */
  delivery?: 'exactly-once' | 'at-least-once';
}

export interface LatencyResult {
  system: string;
  job: LatencyJob;
  metric: 'close' | 'end-to-end';
  setting: number;
  fraction: number;
  targetRate: number;
  achievedRate: number;
  samples: number;
  p50: number | null;
  p95: number | null;
  p99: number | null;
  max: number | null;
  peakRssMb: number | null;
  check: string;
}

const WARM_UP_MS = 10_000;
/** Two 10 s windows of 60 pages: ~120 windows, the fewest whose p95 and p99 are not the maximum. */
export const MIN_LATENCY_SECONDS = 2 * (WINDOW_MS / 1000);
const MIN_SAMPLES = 100;
/** How long the harness waits for the last results once production has stopped. */
const DRAIN_MS = 90_000;

/** Why `seconds` cannot measure percentiles, or undefined when it can. */
export function latencyDurationProblem(seconds: number): string | undefined {
  if (!Number.isFinite(seconds) || seconds < MIN_LATENCY_SECONDS)
    return `--latency-seconds must be 0 (no latency runs) or at least ${MIN_LATENCY_SECONDS}: two whole 10 s windows after the warm-up give about 120 windows, the fewest for a p99; got ${seconds}`;
  return undefined;
}

export const systemLabel = (s: LatencySystem): string =>
  s.kind === 'sluice' ? `sluice (${s.delivery === 'at-least-once' ? 'at-least-once' : 'exactly-once'})` : s.kind;

export async function runLatency(
  kafka: Kafka,
  admin: Admin,
  brokers: string,
  system: LatencySystem,
  options: { seconds: number; partitions: number; recordSize: number; run: string },
): Promise<LatencyResult> {
  const mode = system.delivery === 'at-least-once' ? '-alo' : '';
  const id = `${system.kind}${mode}-${system.job}-${system.setting}-${Math.round(system.fraction * 100)}-${options.run}`;
  const input = `bench-lat-in-${id}`;
  const output = `bench-lat-out-${id}`;
  await createTopics(admin, [
    { topic: input, partitions: options.partitions },
    { topic: output, partitions: options.partitions },
  ]);
  const stop = await startSystem(brokers, system, id, input, output);

  const start = Date.now();
  const measureFrom = Math.ceil((start + WARM_UP_MS) / WINDOW_MS) * WINDOW_MS;
  const measureUntil = measureFrom + options.seconds * 1000;
  // Past the measured span: until the last measured window closes by event time (and a margin).
  const tail = system.job === 'windowed' ? LATENESS_MS + 3_000 : 2_000;
  const produceSeconds = (measureUntil + tail - start) / 1000;
  const capacity = Math.ceil(system.rate * (produceSeconds + 1)) + 1;
  const out = system.job === 'windowed' ? new WindowedOutput() : new StatelessOutput(capacity);

  let expected: Expected | undefined = undefined;
  let productionEnded = 0;
  const reading = consumeUntil(
    kafka,
    output,
    `bench-lat-reader-${id}`,
    (r) => out.add(r.value!.toString(), r.receivedAt),
    () =>
      expected !== undefined &&
      (out.complete(expected, measureFrom, measureUntil) || Date.now() - productionEnded > DRAIN_MS),
    produceSeconds * 1000 + DRAIN_MS + 120_000,
  ).catch((error: unknown) => error as Error);

  const generated = await runGenerator({
    brokers,
    topic: input,
    rate: system.rate,
    seconds: produceSeconds,
    recordSize: options.recordSize,
  });
  productionEnded = Date.now();
  expected = await readBack(kafka, admin, input, id, capacity);
  const readError = await reading;
  const rss = await stop();

  const result = out.result(expected, measureFrom, measureUntil);
  const complete = result.missing === 0 && !(readError instanceof Error);
  const samples = result.samples.sort((a, b) => a - b);
  const check = !complete
    ? `incomplete: ${result.missing} of ${result.expected} ${system.job === 'windowed' ? 'windows' : 'records'} missing ${DRAIN_MS / 1000} s after production stopped`
    : result.wrong.length > 0
      ? result.wrong.join('; ')
      : samples.length < MIN_SAMPLES
        ? `too few samples: ${samples.length}`
        : 'exact';
  const p = (q: number): number | null => (complete && samples.length > 0 ? Math.round(percentile(samples, q)) : null);
  return {
    system: systemLabel(system),
    job: system.job,
    metric: system.job === 'windowed' ? 'close' : 'end-to-end',
    setting: system.setting,
    fraction: system.fraction,
    targetRate: system.rate,
    achievedRate: Math.round(generated.sent / generated.seconds),
    samples: samples.length,
    p50: p(50),
    p95: p(95),
    p99: p(99),
    max: p(100),
    peakRssMb: rss ? Math.round(rss / 1e6) : null,
    check: generated.failed > 0 ? `${check}; the generator failed ${generated.failed} sends` : check,
  };
}

/** Starts the system on the run's topics once it is ready; returns its stop (resolving with peak RSS). */
async function startSystem(
  brokers: string,
  system: LatencySystem,
  id: string,
  input: string,
  output: string,
): Promise<() => Promise<number>> {
  if (system.kind === 'sluice') {
    const service = await startSluice(`bench/jobs/${system.job === 'windowed' ? 'page-views' : 'stateless'}.ts`, {
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
    return () => service.stop();
  }
  const run = await startPeer(system.kind, {
    brokers,
    input,
    output,
    job: system.job,
    applicationId: `bench-lat-ks-${id}`,
    settingMs: system.setting,
  });
  const sampler = rssSampler(run.process.pid!);
  // JVM start-up and group join: let it settle before the clock starts.
  await new Promise((r) => setTimeout(r, 10_000));
  return async () => {
    const peak = Math.max(sampler.stop(), run.peakRssBytes());
    await run.stop();
    return peak;
  };
}

async function readBack(kafka: Kafka, admin: Admin, topic: string, id: string, capacity: number): Promise<Expected> {
  const total = (await admin.fetchTopicOffsets(topic)).reduce((n, p) => n + Number(p.high), 0);
  const input = new InputRecap(capacity);
  let read = 0;
  await consumeUntil(
    kafka,
    topic,
    `bench-lat-input-${id}`,
    (r) => {
      read++;
      input.add(r.value!.toString(), r.timestamp);
    },
    () => read >= total,
    300_000,
  );
  return input.expected();
}
