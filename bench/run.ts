/**
 * `npm run bench`: Sluice beside the raw-consume ceilings and its peers, on one broker, one topic,
 * one data set, in one run. Every system's output is checked against the reference recomputation
 * before its figure counts. Prints a table and writes it as JSON under bench/results/.
 *
 * Options: --records N (1000000) --partitions P (8) --record-size B (100) --workers W
 *          --peers kafka-streams,spark|none --latency-seconds S (30, the shortest that measures windows; 0 = skip latency mode)
 *          --latency-intervals 1000,250,100 --latency-fractions 0.2,0.5,0.8 (Sluice's latency grid, each delivery mode)
 *          --smoke (small and quick: 20000 records, no peers, one short latency run) --profile
 */
// First, before kafkajs loads: the harness's producers (input fill, live input) publish like Sluice's workers.
import '../src/kafka/kafkajs-fixes.ts';
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Admin, type Kafka } from 'kafkajs';
import { allWindowsIn, checkWindows, createTopics, fillInput, type BenchData } from './lib/data.ts';
import { buildAndConnect, log } from './lib/setup.ts';
import { runLatency, type LatencyResult, type LatencySystem } from './lib/latency.ts';
import { type StateMemory } from './state-memory.ts';
import {
  ceilingJava,
  ceilingKafkajs,
  readOutputs,
  startSluice,
  type BatchRecord,
  type SluiceRun,
  type Throughput,
} from './lib/systems.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    partitions: { type: 'string', default: '8' },
    'record-size': { type: 'string', default: '100' },
    workers: { type: 'string' },
    peers: { type: 'string', default: 'kafka-streams,spark' },
    'latency-seconds': { type: 'string', default: '30' },
    'latency-intervals': { type: 'string', default: '1000,250,100' },
    'latency-fractions': { type: 'string', default: '0.2,0.5,0.8' },
    smoke: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
  },
});
const smoke = values.smoke;
const records = smoke ? 20_000 : Number(values.records);
const partitions = Number(values.partitions);
const recordSize = Number(values['record-size']);
// 30 s: the first measured window starts 10–20 s in and must end before production stops.
const latencySeconds = smoke ? 30 : Number(values['latency-seconds']);
const peers = smoke || values.peers === 'none' ? [] : (values.peers ?? '').split(',').filter(Boolean);
const workers = values.workers;
const latencyIntervals = (values['latency-intervals'] ?? '')
  .split(',')
  .map(Number)
  .filter((n) => n > 0);
const latencyFractions = (values['latency-fractions'] ?? '')
  .split(',')
  .map(Number)
  .filter((n) => n > 0);

interface Row {
  system: string;
  check: string;
  recordsPerSec: number;
  mbPerSec: number;
  ratioA: number | null;
  ratioB: number | null;
  peakRssMb: number | null;
  note?: string;
}

const mb = (bytes: number): number => bytes / 1e6;

async function main(): Promise<void> {
  const { broker, brokers, kafka } = await buildAndConnect(root, 'bench');
  const admin = kafka.admin();
  await admin.connect();
  const run = Date.now().toString(36);
  const rows: Row[] = [];
  const latency: LatencyResult[] = [];
  try {
    const input = `bench-input-${run}`;
    await createTopics(admin, [{ topic: input, partitions }]);
    log(`producing ${records} records of ~${recordSize} bytes to ${input} (${partitions} partitions)`);
    const fillStarted = performance.now();
    const data = await fillInput(kafka, input, { records, partitions, recordSize });
    const produce: Throughput = { records: data.records, seconds: (performance.now() - fillStarted) / 1000 };
    const mbTotal = mb(data.bytes);

    log('ceiling A: kafkajs consumer, no processing');
    const a = await ceilingKafkajs(kafka, input, data.records);
    const aRate = a.records / a.seconds;
    log('ceiling B: kafka-consumer-perf-test (Java consumer)');
    const b = await ceilingJava(brokers, input, data.records);
    const bRate = b.records / b.seconds;
    const row = (system: string, t: Throughput, check: string, note?: string): Row => {
      const rate = t.records / t.seconds;
      return {
        system,
        check,
        recordsPerSec: Math.round(rate),
        mbPerSec: Number((mbTotal / t.seconds).toFixed(1)),
        ratioA: Number((rate / aRate).toFixed(2)),
        ratioB: Number((rate / bRate).toFixed(2)),
        peakRssMb: t.peakRssBytes ? Math.round(mb(t.peakRssBytes)) : null,
        ...(note ? { note } : {}),
      };
    };
    rows.push(row('ceiling A: kafkajs consume', a, 'n/a', 'the same client Sluice uses'));
    rows.push(row('ceiling B: Java consumer', b, 'n/a', 'kafka-consumer-perf-test, fetch time'));
    rows.push(
      row(
        'kafkajs produce (input fill)',
        produce,
        'n/a',
        'one producer, sequential 10 000-record sends, with Sluice’s kafkajs grouping fix',
      ),
    );

    const profileDir = values.profile ? join(root, 'bench', 'results', 'profiles') : undefined;
    if (profileDir) mkdirSync(profileDir, { recursive: true });
    // Both delivery modes: what exactly-once (a transaction per task and batch) costs.
    for (const delivery of ['exactly-once', 'at-least-once'] as const) {
      rows.push(await sluiceWindowed(kafka, brokers, data, run, delivery, profileDir));
      rows.push(await sluiceStateless(kafka, brokers, data, run, delivery, profileDir));
    }
    // The join's cost per record: the stateless job with one table lookup per record, beside it.
    rows.push(await sluiceStatelessJoin(kafka, admin, brokers, data, run, 'at-least-once'));
    for (const r of rows.slice(2)) Object.assign(r, recompute(r, aRate, bRate));

    for (const peer of peers) rows.push(await runPeer(peer, kafka, brokers, data, run, aRate, bRate));

    if (latencySeconds > 0) {
      const max = rows.find((r) => r.system.startsWith('Sluice page-views'))?.recordsPerSec ?? 10_000;
      const systems: LatencySystem[] = [];
      for (const delivery of smoke ? (['exactly-once'] as const) : (['exactly-once', 'at-least-once'] as const)) {
        for (const interval of smoke ? [250] : latencyIntervals) {
          for (const fraction of smoke ? [0.2] : latencyFractions) {
            const rate = Math.round(max * fraction);
            systems.push({ kind: 'sluice', setting: interval, rate, fraction, workers, delivery });
          }
        }
      }
      // Peers at Sluice's two lower rates: compared at equal input, including one they can sustain.
      for (const peer of peers) {
        for (const setting of [1000, 250, 100]) {
          for (const fraction of [0.2, 0.5]) {
            systems.push({
              kind: peer as 'kafka-streams' | 'spark',
              setting,
              rate: Math.round(max * fraction),
              fraction,
            });
          }
        }
      }
      for (const system of systems) {
        log(`latency: ${system.kind} setting ${system.setting} ms at ${system.rate} records/s`);
        latency.push(
          await runLatency(kafka, admin, brokers, system, { seconds: latencySeconds, partitions, recordSize, run }),
        );
      }
    }
  } finally {
    await admin.disconnect();
    await broker?.stop();
  }
  report(rows, latency, measureState(smoke ? 100_000 : 1_000_000));
}

async function createOutput(kafka: Kafka, topic: string): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  await createTopics(admin, [{ topic, partitions }]);
  await admin.disconnect();
}

function recompute(r: Row, aRate: number, bRate: number): Partial<Row> {
  return { ratioA: Number((r.recordsPerSec / aRate).toFixed(2)), ratioB: Number((r.recordsPerSec / bRate).toFixed(2)) };
}

/** Starts the built service on `bench/jobs/<job>.ts`, reading the bench input, writing a fresh output topic. */
async function launchSluice(
  kafka: Kafka,
  brokers: string,
  data: BenchData,
  job: 'page-views' | 'stateless' | 'stateless-join',
  name: string,
  delivery: 'exactly-once' | 'at-least-once',
  profileDir?: string,
  extraEnv: Record<string, string> = {},
): Promise<{ service: SluiceRun; output: string }> {
  const output = `${name}-out`;
  await createOutput(kafka, output);
  const env = {
    KAFKA_BROKERS: brokers,
    BENCH_JOB_NAME: name,
    BENCH_INPUT: data.topic,
    BENCH_OUTPUT: output,
    BENCH_BATCH_INTERVAL_MS: '1000',
    SLUICE_DELIVERY: delivery,
    ...(workers ? { SLUICE_WORKERS: workers } : {}),
    ...extraEnv,
  };
  return { service: await startSluice(`bench/jobs/${job}.ts`, env, profileDir), output };
}

async function sluiceWindowed(
  kafka: Kafka,
  brokers: string,
  data: BenchData,
  run: string,
  delivery: 'exactly-once' | 'at-least-once',
  profileDir?: string,
): Promise<Row> {
  log(`Sluice: page-views job (keyBy page → repartition → tumbling 10 s count, final), ${delivery}`);
  const name = `bench-pv-${delivery === 'exactly-once' ? 'eo' : 'alo'}-${run}`;
  const { service, output } = await launchSluice(kafka, brokers, data, 'page-views', name, delivery, profileDir);
  const { records: out, lastAt } = await readOutputs(kafka, output, allWindowsIn(data));
  const first = await service.firstBatchAt();
  if (profileDir) logBatches('page-views', await service.batches(), first, lastAt);
  const rss = await service.stop();
  const check = checkWindows(
    out.map(
      (r) => JSON.parse(r.value!.toString()) as { key: string; windowStart: number; windowEnd: number; value: number },
    ),
    data.expectedWindows,
  );
  return {
    system: `Sluice page-views (windowed, ${delivery})`,
    check,
    recordsPerSec: Math.round(data.records / ((lastAt - first) / 1000)),
    mbPerSec: Number((mb(data.bytes) / ((lastAt - first) / 1000)).toFixed(1)),
    ratioA: null,
    ratioB: null,
    peakRssMb: Math.round(mb(rss)),
    note: `first record read → last result acknowledged; workers ${workers ?? 'default'}`,
  };
}

/** With --profile: how the run's time splits between batches' processing and the gaps between them. */
function logBatches(job: string, all: BatchRecord[], first: number, lastAt: number): void {
  const batches = all.filter((b) => b.startedAt >= first && b.startedAt <= lastAt);
  if (batches.length === 0) return;
  const busy = batches.reduce((n, b) => n + b.processingMs, 0);
  const records = batches.reduce((n, b) => n + b.records, 0);
  const span = lastAt - first;
  const biggest = Math.max(...batches.map((b) => b.records));
  log(
    `${job}: ${batches.length} batches in ${span} ms, ${Math.round(busy)} ms inside batches ` +
      `(${Math.round((100 * busy) / span)} %), ${records} records incl. repartition, largest batch ${biggest}`,
  );
  for (const b of batches) {
    log(`  batch ${b.id}: +${b.startedAt - first} ms, ${b.records} records, ${Math.round(b.processingMs)} ms`);
  }
}

async function sluiceStateless(
  kafka: Kafka,
  brokers: string,
  data: BenchData,
  run: string,
  delivery: 'exactly-once' | 'at-least-once',
  profileDir?: string,
): Promise<Row> {
  log(`Sluice: stateless map/filter job, ${delivery}`);
  const name = `bench-sl-${delivery === 'exactly-once' ? 'eo' : 'alo'}-${run}`;
  const { service, output } = await launchSluice(kafka, brokers, data, 'stateless', name, delivery, profileDir);
  const { records: out, lastAt } = await readOutputs(kafka, output, (recs) => recs.length >= data.expectedStateless);
  const first = await service.firstBatchAt();
  const rss = await service.stop();
  const seconds = (lastAt - first) / 1000;
  return {
    system: `Sluice stateless map/filter (${delivery})`,
    check: out.length === data.expectedStateless ? 'exact' : `expected ${data.expectedStateless}, got ${out.length}`,
    recordsPerSec: Math.round(data.records / seconds),
    mbPerSec: Number((mb(data.bytes) / seconds).toFixed(1)),
    ratioA: null,
    ratioB: null,
    peakRssMb: Math.round(mb(rss)),
  };
}

/** A country per user: what the join bench's `users` table holds. */
const countryOf = (user: string): string => ['DE', 'FR', 'JP', 'US', 'BR', 'IN'][user.length % 6]!;

async function sluiceStatelessJoin(
  kafka: Kafka,
  admin: Admin,
  brokers: string,
  data: BenchData,
  run: string,
  delivery: 'exactly-once' | 'at-least-once',
): Promise<Row> {
  log(`Sluice: stateless job with a table join, ${delivery}`);
  const name = `bench-sj-${delivery === 'exactly-once' ? 'eo' : 'alo'}-${run}`;
  // Co-partitioned with the input: as many partitions, keyed by user, the same default partitioner.
  const users = `${name}-users`;
  await createTopics(admin, [{ topic: users, partitions }]);
  const producer = kafka.producer();
  await producer.connect();
  const rows = [...data.users].map((user) => ({ key: user, value: JSON.stringify({ country: countryOf(user) }) }));
  await producer.send({ topic: users, acks: -1, messages: rows });
  await producer.disconnect();
  const env = { BENCH_USERS: users };
  const { service, output } = await launchSluice(
    kafka,
    brokers,
    data,
    'stateless-join',
    name,
    delivery,
    undefined,
    env,
  );
  const { records: out, lastAt } = await readOutputs(kafka, output, (recs) => recs.length >= data.expectedStateless);
  const first = await service.firstBatchAt();
  const rss = await service.stop();
  const seconds = (lastAt - first) / 1000;
  // Every record of a user in the table carries that user's country.
  let wrong = 0;
  for (const r of out) {
    const e = JSON.parse(r.value!.toString()) as { user?: string; country: string | null };
    if (e.user !== undefined && data.users.has(e.user) && e.country !== countryOf(e.user)) wrong++;
  }
  const check =
    out.length !== data.expectedStateless
      ? `expected ${data.expectedStateless}, got ${out.length}`
      : wrong > 0
        ? `${wrong} records without their user's row`
        : 'exact';
  return {
    system: `Sluice stateless + table join (${delivery})`,
    check,
    recordsPerSec: Math.round(data.records / seconds),
    mbPerSec: Number((mb(data.bytes) / seconds).toFixed(1)),
    ratioA: null,
    ratioB: null,
    peakRssMb: Math.round(mb(rss)),
    note: `${data.users.size} rows, partitioned, left join`,
  };
}

async function runPeer(
  peer: string,
  kafka: Kafka,
  brokers: string,
  data: BenchData,
  run: string,
  aRate: number,
  bRate: number,
): Promise<Row> {
  const output = `bench-${peer}-${run}-out`;
  const admin = kafka.admin();
  await admin.connect();
  await createTopics(admin, [{ topic: output, partitions: Number(values.partitions) }]);
  await admin.disconnect();
  const system = peer === 'spark' ? 'Spark Structured Streaming' : 'Kafka Streams';
  try {
    const peers = await import('./peers/peers.ts');
    log(`${system}: building (cached after the first run)`);
    await peers.buildPeers([peer as 'kafka-streams' | 'spark']);
    log(`${system}: page-views job`);
    const started =
      peer === 'spark'
        ? await peers.startSpark({
            brokers,
            input: data.topic,
            output,
            checkpointDir: mkdtempSync(join(tmpdir(), 'bench-spark-')),
            triggerMs: 0,
          })
        : await peers.startKafkaStreams({
            brokers,
            input: data.topic,
            output,
            applicationId: `bench-ks-${run}`,
            commitIntervalMs: 1000,
          });
    const { records: out, lastAt } = await readOutputs(kafka, output, allWindowsIn(data));
    const first = await started.firstRecordAt;
    const rss = started.peakRssBytes();
    await started.stop();
    const dropped = started.droppedRecords();
    const seconds = (lastAt - first) / 1000;
    const rate = data.records / seconds;
    return {
      system: `${system} page-views`,
      check: `${checkWindows(
        out.map((r) => JSON.parse(r.value!.toString()) as never),
        data.expectedWindows,
      )}${dropped ? `; it dropped ${dropped} records as late` : ''}`,
      recordsPerSec: Math.round(rate),
      mbPerSec: Number((mb(data.bytes) / seconds).toFixed(1)),
      ratioA: Number((rate / aRate).toFixed(2)),
      ratioB: Number((rate / bRate).toFixed(2)),
      peakRssMb: Math.round(mb(rss)),
    };
  } catch (error) {
    return {
      system: `${system} page-views`,
      check: `failed: ${(error as Error).message}`,
      recordsPerSec: 0,
      mbPerSec: 0,
      ratioA: null,
      ratioB: null,
      peakRssMb: null,
    };
  }
}

/** State memory per open (key, window) entry (bench/state-memory.ts), in a process of its own with --expose-gc. */
function measureState(keys: number): StateMemory[] {
  log(`state memory: ${keys} distinct keys in one task's window store`);
  const out = execFileSync(
    process.execPath,
    ['--expose-gc', join(root, 'bench', 'state-memory.ts'), '--keys', String(keys)],
    {
      env: { ...process.env, STATE_MEMORY_JSON: '1' },
      encoding: 'utf8',
    },
  );
  return JSON.parse(out.trim().split('\n').pop() ?? '[]') as StateMemory[];
}

function report(rows: Row[], latency: LatencyResult[], state: StateMemory[]): void {
  const pad = (s: string, n: number): string => s.padEnd(n);
  const lines: string[] = [];
  lines.push(
    `records: ${records}, partitions: ${partitions}, record size: ~${recordSize} B, machine: ${process.env['BENCH_MACHINE'] ?? 'local'}`,
  );
  lines.push('');
  lines.push(
    `${pad('system', 48)}${pad('records/s', 12)}${pad('MB/s', 8)}${pad('×A', 7)}${pad('×B', 7)}${pad('peak RSS MB', 13)}check`,
  );
  for (const r of rows) {
    lines.push(
      `${pad(r.system, 48)}${pad(String(r.recordsPerSec), 12)}${pad(String(r.mbPerSec), 8)}${pad(r.ratioA === null ? '-' : String(r.ratioA), 7)}${pad(r.ratioB === null ? '-' : String(r.ratioB), 7)}${pad(r.peakRssMb === null ? '-' : String(r.peakRssMb), 13)}${r.check}`,
    );
  }
  if (latency.length > 0) {
    lines.push('');
    lines.push(`${pad('latency (result acknowledged − last record of its window produced)', 70)}`);
    lines.push(
      `${pad('system', 18)}${pad('setting', 10)}${pad('target/s', 10)}${pad('achieved/s', 12)}${pad('windows', 9)}${pad('p50 ms', 9)}${pad('p95 ms', 9)}${pad('p99 ms', 9)}${pad('peak RSS MB', 12)}check`,
    );
    for (const l of latency) {
      lines.push(
        `${pad(l.system, 18)}${pad(`${l.setting} ms`, 10)}${pad(String(l.targetRate), 10)}${pad(String(l.achievedRate), 12)}${pad(String(l.windows), 9)}${pad(String(l.p50), 9)}${pad(String(l.p95), 9)}${pad(String(l.p99), 9)}${pad(String(l.peakRssMb ?? '-'), 12)}${l.check}`,
      );
    }
  }
  if (state.length > 0) {
    lines.push('');
    lines.push(
      `${pad('state (one task’s window store, V8 heap)', 48)}${pad('entries', 12)}${pad('MB', 8)}bytes per entry`,
    );
    for (const s of state)
      lines.push(
        `${pad(s.aggregator, 48)}${pad(String(s.entries), 12)}${pad((s.heapBytes / 1e6).toFixed(1), 8)}${Math.round(s.bytesPerEntry)}`,
      );
  }
  const text = lines.join('\n');
  console.log(text);
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  writeFileSync(file, JSON.stringify({ records, partitions, recordSize, rows, latency, state, table: text }, null, 2));
  console.log(`\nresults: ${file}`);
}

const started = Date.now();
await main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
log(`done in ${Math.round((Date.now() - started) / 1000)} s`);
