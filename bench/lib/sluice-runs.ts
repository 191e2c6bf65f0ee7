/**
 * Sluice on a bench job over a filled input topic, as the bench commands run it: the built service
 * (`bin/sluice.js`) on `bench/jobs/<job>.ts`, a fresh output topic, the output read back until complete
 * and checked against the reference recomputation. Records/s run from the first batch with records to
 * the last result read; peak RSS is the service process's.
 */
import { type Kafka } from 'kafkajs';
import { allWindowsIn, checkWindows, createTopics, type BenchData } from './data.ts';
import { readOutputs, startSluice, type BatchRecord, type SluiceRun } from './systems.ts';

export type Delivery = 'exactly-once' | 'at-least-once';
export type BenchJob = 'page-views' | 'stateless' | 'stateless-join';

export interface LaunchOptions {
  job: BenchJob;
  /** The job's name (its consumer group and state topics); the output topic is `<name>-out`. */
  name: string;
  delivery: Delivery;
  /** Partitions of the output topic (the bench makes it as many as the input's). */
  partitions: number;
  /** `SLUICE_WORKERS`; unset, the service's default (cores − 1). */
  workers?: string | undefined;
  /** `--cpu-prof` into this directory. */
  profileDir?: string | undefined;
  /** More of the job's environment (e.g. `BENCH_USERS` for the join). */
  env?: Record<string, string>;
}

/** Starts the built service on `bench/jobs/<job>.ts`, reading `data.topic`, writing a fresh output topic. */
export async function launchSluice(
  kafka: Kafka,
  brokers: string,
  data: BenchData,
  options: LaunchOptions,
): Promise<{ service: SluiceRun; output: string }> {
  const output = `${options.name}-out`;
  const admin = kafka.admin();
  await admin.connect();
  try {
    await createTopics(admin, [{ topic: output, partitions: options.partitions }]);
  } finally {
    await admin.disconnect();
  }
  const env = {
    KAFKA_BROKERS: brokers,
    BENCH_JOB_NAME: options.name,
    BENCH_INPUT: data.topic,
    BENCH_OUTPUT: output,
    BENCH_BATCH_INTERVAL_MS: '1000',
    SLUICE_DELIVERY: options.delivery,
    ...(options.workers ? { SLUICE_WORKERS: options.workers } : {}),
    ...options.env,
  };
  return { service: await startSluice(`bench/jobs/${options.job}.ts`, env, options.profileDir), output };
}

export interface WindowedRun {
  /** `exact`, or what differs from the reference. */
  check: string;
  /** Input records (`data.records`, the far-future flush records included) and the seconds they took. */
  records: number;
  seconds: number;
  /** startedAt of the first batch with records, and when the last result was read (ms since the epoch). */
  firstAt: number;
  lastAt: number;
  peakRssBytes: number;
  /** The service's batch history (`/api/batches`), when asked for. */
  batches?: BatchRecord[];
}

/**
 * The page-views job (keyBy page → repartition → tumbling 10 s count, final) on the backlog in
 * `data.topic`: runs until every expected window has its result (or the output stays quiet), stops
 * the service and checks the windows.
 */
export async function runSluiceWindowed(
  kafka: Kafka,
  brokers: string,
  data: BenchData,
  options: Omit<LaunchOptions, 'job'> & { batches?: boolean },
): Promise<WindowedRun> {
  const { service, output } = await launchSluice(kafka, brokers, data, { ...options, job: 'page-views' });
  let stopped = false;
  try {
    const { records: out, lastAt } = await readOutputs(kafka, output, allWindowsIn(data));
    const firstAt = await service.firstBatchAt();
    const batches = options.batches ? await service.batches() : undefined;
    const peakRssBytes = await service.stop();
    stopped = true;
    const check = checkWindows(
      out.map(
        (r) =>
          JSON.parse(r.value!.toString()) as { key: string; windowStart: number; windowEnd: number; value: number },
      ),
      data.expectedWindows,
    );
    return {
      check,
      records: data.records,
      seconds: (lastAt - firstAt) / 1000,
      firstAt,
      lastAt,
      peakRssBytes,
      ...(batches ? { batches } : {}),
    };
  } finally {
    // A failed read (timeout) must not leave the service running.
    if (!stopped) await service.stop();
  }
}
