/**
 * `npm run bench`: Sluice beside the raw-consume ceilings and its peers, on one broker, one topic,
 * one data set, in one run. Every system's output is checked against the reference recomputation
 * before its figure counts. Prints a table and writes it as JSON under bench/results/.
 *
 * Options: --records N (1000000) --partitions P (8) --record-size B (100) --workers W
 *          --peers kafka-streams,spark,flink|none
 *          --latency-seconds S (30; at least 20, two whole windows; 0 = no latency runs)
 *          --latency-jobs windowed,stateless --latency-fractions 0.2,0.5,0.8 (of each system's own maximum)
 *          --latency-intervals 1000,250,100 (Sluice's batch intervals) --latency-delivery exactly-once,at-least-once
 *          --peer-settings 1000,100 (Kafka Streams' commit interval, Spark's trigger, Flink's setting)
 *          --throughput false (latency runs only, at fractions of --max-rates)
 *          --max-rates system=rate,… (e.g. "sluice-eo-windowed=120000"; else measured in this run)
 *          --smoke (small and quick: 20000 records, no peers, one short latency run) --profile
 */
// First, before kafkajs loads: the harness's producers (input fill, live input) publish like Sluice's workers.
import '../src/kafka/kafkajs-fixes.ts';
import { execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { join, resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Admin, type Kafka } from 'kafkajs';
import { createTopics, fillInput, type BenchData } from './lib/data.ts';
import { buildAndConnect, log } from './lib/setup.ts';
import {
  latencyDurationProblem,
  runLatency,
  type LatencyJob,
  type LatencyResult,
  type LatencySystem,
} from './lib/latency.ts';
import { PEER_NAMES, peerThroughput, type PeerKind, type Row } from './lib/peer-runs.ts';
import { writeReport } from './lib/report.ts';
import {
  launchSluice,
  runSluiceWindowed,
  type BenchJob,
  type Delivery,
  type LaunchOptions,
} from './lib/sluice-runs.ts';
import { type StateMemory } from './state-memory.ts';
import { ceilingJava, ceilingKafkajs, readOutputs, type BatchRecord, type Throughput } from './lib/systems.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    partitions: { type: 'string', default: '8' },
    'record-size': { type: 'string', default: '100' },
    workers: { type: 'string' },
    peers: { type: 'string', default: 'kafka-streams,spark,flink' },
    'latency-seconds': { type: 'string', default: '30' },
    'latency-jobs': { type: 'string', default: 'windowed,stateless' },
    'latency-intervals': { type: 'string', default: '1000,250,100' },
    'latency-delivery': { type: 'string', default: 'exactly-once,at-least-once' },
    'latency-fractions': { type: 'string', default: '0.2,0.5,0.8' },
    'peer-settings': { type: 'string', default: '1000,100' },
    throughput: { type: 'string', default: 'true' },
    'max-rates': { type: 'string', default: '' },
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
const list = (name: keyof typeof values): string[] =>
  String(values[name] ?? '')
    .split(',')
    .map((v) => v.trim())
    .filter(Boolean);
const numbers = (name: keyof typeof values): number[] =>
  list(name)
    .map(Number)
    .filter((n) => n > 0);
const peers = (smoke || values.peers === 'none' ? [] : list('peers')) as PeerKind[];
for (const peer of peers)
  if (!(peer in PEER_NAMES)) throw new Error(`--peers: unknown peer ${peer} (kafka-streams, spark, flink or none)`);
const workers = values.workers;
const latencyJobs = (smoke ? ['windowed'] : list('latency-jobs')) as LatencyJob[];
const latencyIntervals = smoke ? [250] : numbers('latency-intervals');
const latencyDelivery = (smoke ? ['exactly-once'] : list('latency-delivery')) as Array<
  'exactly-once' | 'at-least-once'
>;
const latencyFractions = smoke ? [0.2] : numbers('latency-fractions');
const peerSettings = numbers('peer-settings');
const throughput = values.throughput !== 'false';
const givenRates = new Map(
  list('max-rates').map((entry) => {
    const [key, rate] = entry.split('=');
    return [key!, Number(rate)] as const;
  }),
);
if (latencySeconds !== 0) {
  const problem = latencyDurationProblem(latencySeconds);
  if (problem) {
    console.error(problem);
    process.exit(2);
  }
}

const mb = (bytes: number): number => bytes / 1e6;

async function main(): Promise<void> {
  const { broker, brokers, kafka } = await buildAndConnect(root, 'bench');
  const admin = kafka.admin();
  await admin.connect();
  const run = Date.now().toString(36);
  const rows: Row[] = [];
  const latency: LatencyResult[] = [];
  // Each system's own maximum, `<system>-<job>`: what the latency runs take their fractions of.
  const maxRates = new Map(givenRates);
  try {
    if (throughput) await backlog(kafka, admin, brokers, run, rows, maxRates);
    if (latencySeconds > 0) {
      const systems: LatencySystem[] = [];
      const add = (key: string, system: Omit<LatencySystem, 'rate' | 'fraction'>): void => {
        const max = maxRates.get(key);
        if (!(max !== undefined && max > 0)) {
          log(`latency: no exact maximum for ${key} in this run (or --max-rates): its latency runs are skipped`);
          return;
        }
        for (const fraction of latencyFractions)
          systems.push({ ...system, rate: Math.round(max * fraction), fraction });
      };
      for (const job of latencyJobs) {
        for (const delivery of latencyDelivery) {
          for (const interval of latencyIntervals) {
            add(`sluice-${delivery === 'exactly-once' ? 'eo' : 'alo'}-${job}`, {
              kind: 'sluice',
              job,
              setting: interval,
              workers,
              delivery,
            });
          }
        }
        for (const peer of peers)
          for (const setting of peerSettings) add(`${peer}-${job}`, { kind: peer, job, setting });
      }
      for (const system of systems) {
        log(
          `latency: ${system.kind} ${system.delivery ?? ''} ${system.job}, setting ${system.setting} ms, ` +
            `${system.rate} records/s (${Math.round(system.fraction * 100)} % of its maximum)`,
        );
        latency.push(
          await runLatency(kafka, admin, brokers, system, { seconds: latencySeconds, partitions, recordSize, run }),
        );
      }
    }
  } finally {
    await admin.disconnect();
    await broker?.stop();
  }
  const state = measureState(smoke ? 100_000 : 1_000_000);
  const options = { records, partitions, recordSize, latencySeconds, maxRates: Object.fromEntries(maxRates) };
  await writeReport(join(root, 'bench', 'results'), { ...options, rows, latency, state });
}

/** The throughput table: a backlog of `records` through the ceilings, Sluice's jobs and the peers. */
async function backlog(
  kafka: Kafka,
  admin: Admin,
  brokers: string,
  run: string,
  rows: Row[],
  maxRates: Map<string, number>,
): Promise<void> {
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
  const first = rows.length;
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
  const exact = (r: Row): number | undefined => (r.check === 'exact' ? r.recordsPerSec : undefined);
  const keep = (key: string, r: Row): void => {
    const rate = exact(r);
    if (rate !== undefined && !maxRates.has(key)) maxRates.set(key, rate);
    rows.push(r);
  };
  // Both delivery modes: what exactly-once (a transaction per task and batch) costs.
  for (const delivery of ['exactly-once', 'at-least-once'] as const) {
    const mode = delivery === 'exactly-once' ? 'eo' : 'alo';
    keep(`sluice-${mode}-windowed`, await sluiceWindowed(kafka, brokers, data, run, delivery, profileDir));
    keep(`sluice-${mode}-stateless`, await sluiceStateless(kafka, brokers, data, run, delivery, profileDir));
  }
  // The join's cost per record: the stateless job with one table lookup per record, beside it.
  rows.push(await sluiceStatelessJoin(kafka, admin, brokers, data, run, 'at-least-once'));

  for (const peer of peers) {
    if (peer === 'kafka-streams') {
      // Its defaults (grace = the job's 5 s lateness) show the backlog pitfall; the row after is the
      // configuration that makes the same job exact on a backlog: a grace covering the event-time
      // spread between upstream tasks while they catch up — at most the backlog's whole event-time span.
      rows.push(
        await peerThroughput(kafka, brokers, data, run, partitions, { peer, job: 'windowed', label: 'defaults' }),
      );
      const graceMs = Math.ceil(data.eventTimeSpanMs / 1000) * 1000 + 10_000;
      const held = await fillInput(kafka, await newTopic(admin, `bench-input-held-${run}`), {
        records,
        partitions,
        recordSize,
        holdFlush: true,
      });
      keep(
        `${peer}-windowed`,
        await peerThroughput(kafka, brokers, data, run, partitions, {
          peer,
          job: 'windowed',
          graceMs,
          heldFlush: held,
          label: `grace ${graceMs / 1000} s`,
          note: 'grace and store retention covering the backlog’s event-time span; flush records sent once it caught up',
        }),
      );
    } else {
      keep(`${peer}-windowed`, await peerThroughput(kafka, brokers, data, run, partitions, { peer, job: 'windowed' }));
    }
    keep(`${peer}-stateless`, await peerThroughput(kafka, brokers, data, run, partitions, { peer, job: 'stateless' }));
  }
  for (const r of rows.slice(first + 2)) Object.assign(r, recompute(r, aRate, bRate));
}

async function newTopic(admin: Admin, topic: string): Promise<string> {
  await createTopics(admin, [{ topic, partitions }]);
  return topic;
}

function recompute(r: Row, aRate: number, bRate: number): Partial<Row> {
  return { ratioA: Number((r.recordsPerSec / aRate).toFixed(2)), ratioB: Number((r.recordsPerSec / bRate).toFixed(2)) };
}

/** The bench's launch options for one of its Sluice jobs, by name. */
const launch = (
  job: BenchJob,
  name: string,
  delivery: Delivery,
  profileDir?: string,
  env: Record<string, string> = {},
): LaunchOptions => ({ job, name, delivery, partitions, workers, profileDir, env });

async function sluiceWindowed(
  kafka: Kafka,
  brokers: string,
  data: BenchData,
  run: string,
  delivery: Delivery,
  profileDir?: string,
): Promise<Row> {
  log(`Sluice: page-views job (keyBy page → repartition → tumbling 10 s count, final), ${delivery}`);
  const name = `bench-pv-${delivery === 'exactly-once' ? 'eo' : 'alo'}-${run}`;
  const r = await runSluiceWindowed(kafka, brokers, data, {
    ...launch('page-views', name, delivery, profileDir),
    batches: !!profileDir,
  });
  if (profileDir) logBatches('page-views', r.batches!, r.firstAt, r.lastAt);
  return {
    system: `Sluice page-views (windowed, ${delivery})`,
    check: r.check,
    recordsPerSec: Math.round(r.records / r.seconds),
    mbPerSec: Number((mb(data.bytes) / r.seconds).toFixed(1)),
    ratioA: null,
    ratioB: null,
    peakRssMb: Math.round(mb(r.peakRssBytes)),
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
  delivery: Delivery,
  profileDir?: string,
): Promise<Row> {
  log(`Sluice: stateless map/filter job, ${delivery}`);
  const name = `bench-sl-${delivery === 'exactly-once' ? 'eo' : 'alo'}-${run}`;
  const { service, output } = await launchSluice(kafka, brokers, data, launch('stateless', name, delivery, profileDir));
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
  delivery: Delivery,
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
    launch('stateless-join', name, delivery, undefined, env),
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

const started = Date.now();
await main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
log(`done in ${Math.round((Date.now() - started) / 1000)} s`);
