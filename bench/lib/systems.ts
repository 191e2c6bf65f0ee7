/** Running each measured system on the benchmark topic: the two ceilings and Sluice. */
import { spawn } from 'node:child_process';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { type Kafka } from 'kafkajs';
import { freePort, runKafkaTool } from '../../scripts/kafka/local-broker.ts';
import { consumeUntil, rssSampler, type OutputRecord } from './measure.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');

export interface Throughput {
  records: number;
  seconds: number;
  peakRssBytes?: number;
}

/** Ceiling A: kafkajs consuming the topic in a group and doing nothing else (Sluice's receiver settings). */
export async function ceilingKafkajs(kafka: Kafka, topic: string, records: number): Promise<Throughput> {
  const consumer = kafka.consumer({
    groupId: `bench-ceiling-${Date.now()}`,
    maxBytesPerPartition: 1024 * 1024,
    maxBytes: 16 * 1024 * 1024,
    maxWaitTimeInMs: 100,
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  let count = 0;
  let first = 0;
  let last = 0;
  let finished!: () => void;
  const done = new Promise<void>((r) => (finished = r));
  const before = process.memoryUsage().rss;
  await consumer.run({
    autoCommit: false,
    eachBatch: async ({ batch }) => {
      if (first === 0) first = performance.now();
      count += batch.messages.length;
      if (count >= records) {
        last = performance.now();
        finished();
      }
    },
  });
  await done;
  await consumer.disconnect();
  return { records: count, seconds: (last - first) / 1000, peakRssBytes: Math.max(before, process.memoryUsage().rss) };
}

/** Ceiling B: the broker's own Java consumer (kafka-consumer-perf-test), fetch rate without the group join. */
export async function ceilingJava(brokers: string, topic: string, records: number): Promise<Throughput> {
  const { stdout } = await runKafkaTool('org.apache.kafka.tools.ConsumerPerformance', [
    '--bootstrap-server',
    brokers,
    '--topic',
    topic,
    '--num-records',
    String(records),
    '--group',
    `bench-java-${Date.now()}`,
    '--timeout',
    '60000',
  ]);
  // start.time, end.time, data.consumed.in.MB, MB.sec, data.consumed.in.nMsg, nMsg.sec, rebalance.time.ms, fetch.time.ms, fetch.MB.sec, fetch.nMsg.sec
  const line = stdout.trim().split('\n').pop() ?? '';
  const cols = line.split(',').map((c) => c.trim());
  const consumed = Number(cols[4]);
  const fetchMs = Number(cols[7]);
  if (!(consumed > 0) || !(fetchMs > 0)) throw new Error(`unexpected ConsumerPerformance output: ${stdout}`);
  return { records: consumed, seconds: fetchMs / 1000 };
}

export interface SluiceRun {
  url: string;
  pid: number;
  /** startedAt of the first batch that had records. */
  firstBatchAt(): Promise<number>;
  /** The service's batch history (`/api/batches`), oldest first. */
  batches(): Promise<BatchRecord[]>;
  stop(): Promise<number>;
}

export interface BatchRecord {
  id: number;
  scheduledAt: number;
  startedAt: number;
  records: number;
  inputRecords: number;
  processingMs: number;
  schedulingDelayMs: number;
}

/** Starts the built service (`bin/sluice.js`, as in the container) on a job of bench/jobs. */
export async function startSluice(job: string, env: Record<string, string>, profileDir?: string): Promise<SluiceRun> {
  const port = await freePort();
  const args = [...(profileDir ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : []), 'bin/sluice.js', 'run', job];
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: {
      ...process.env,
      SLUICE_HTTP_HOST: '127.0.0.1',
      SLUICE_HTTP_PORT: String(port),
      SLUICE_LOG_LEVEL: 'warn',
      KAFKAJS_NO_PARTITIONER_WARNING: '1',
      ...env,
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  const url = `http://127.0.0.1:${port}`;
  const sampler = rssSampler(child.pid!);
  return {
    url,
    pid: child.pid!,
    async firstBatchAt() {
      for (;;) {
        try {
          const { batches } = (await (await fetch(`${url}/api/batches?limit=10000`)).json()) as {
            batches: Array<{ startedAt: number; records: number }>;
          };
          const first = batches.find((b) => b.records > 0);
          if (first) return first.startedAt;
        } catch {
          // not up yet
        }
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    async batches() {
      const { batches } = (await (await fetch(`${url}/api/batches?limit=10000`)).json()) as {
        batches: BatchRecord[];
      };
      return batches;
    },
    async stop() {
      child.kill('SIGTERM');
      await exited;
      return sampler.stop();
    },
  };
}

/** Reads an output topic until `expected` records arrived; returns them and the wall time of the last. */
export async function readOutputs(
  kafka: Kafka,
  topic: string,
  complete: (records: OutputRecord[]) => boolean,
  timeoutMs = 600_000,
  quietMs = 20_000,
): Promise<{ records: OutputRecord[]; lastAt: number }> {
  const records: OutputRecord[] = [];
  let lastAt = 0;
  // A system that drops records never reaches the expected output: stop once the output has been
  // quiet for `quietMs` (the check then reports what is missing).
  await consumeUntil(
    kafka,
    topic,
    `bench-reader-${Date.now()}-${Math.random().toString(36).slice(2)}`,
    (r) => {
      records.push(r);
      lastAt = r.receivedAt;
    },
    () => complete(records) || (lastAt > 0 && Date.now() - lastAt > quietMs),
    timeoutMs,
  );
  return { records, lastAt };
}
