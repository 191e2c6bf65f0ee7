/**
 * `node bench/nexmark/run.ts`: Nexmark on Sluice. Builds the service, writes N events of the Nexmark model
 * to Kafka (bench/nexmark/write.ts), then for each query starts the built service on its job
 * (bench/nexmark/queries/<q>.ts), reads its whole output, checks it against the reference recomputation
 * (bench/nexmark/reference.ts) and measures events/s from the first batch with records to the last result
 * read, as bench/run.ts does. Prints a table beside the suite's published Flink figures and writes it as
 * JSON under bench/results/. Topics and groups of the run are deleted at the end (--keep-topics keeps them).
 *
 * Options: --events N (1000000) --queries q0,q1,q2,q5,q7,q3,q11 --partitions P (4) --rate R (10000 events/s
 *          of event time) --seed S (42) --out-of-order-group G (1: in order) --workers W
 *          --delivery exactly-once|at-least-once (exactly-once) --batch-interval-ms B (1000) --keep-topics
 */
// First, before kafkajs loads: the writer publishes like Sluice's workers.
import '../../src/kafka/kafkajs-fixes.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Admin, type Kafka } from 'kafkajs';
import { consumeUntil } from '../lib/measure.ts';
import { buildAndConnect, log } from '../lib/setup.ts';
import { startSluice } from '../lib/systems.ts';
import { generateEvents, maxOutOfOrdernessMs, type NexmarkConfig, type NexmarkEvent } from './model.ts';
import { Checker, type Query, QUERIES, Reference } from './reference.ts';
import { createNexmarkTopics, type NexmarkTopics, plan, withEndBids, type WriteStats, writeNexmark } from './write.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const { values } = parseArgs({
  options: {
    events: { type: 'string', default: '1000000' },
    queries: { type: 'string', default: 'q0,q1,q2,q5,q7,q3,q11' },
    partitions: { type: 'string', default: '4' },
    rate: { type: 'string', default: '10000' },
    seed: { type: 'string', default: '42' },
    'out-of-order-group': { type: 'string', default: '1' },
    workers: { type: 'string' },
    delivery: { type: 'string', default: 'exactly-once' },
    'batch-interval-ms': { type: 'string', default: '1000' },
    'keep-topics': { type: 'boolean', default: false },
  },
});
const events = Number(values.events);
const partitions = Number(values.partitions);
const queries = values.queries.split(',').filter(Boolean) as Query[];
for (const q of queries) if (!QUERIES.includes(q)) throw new Error(`unknown query ${q} (known: ${QUERIES.join(', ')})`);
if (values.delivery !== 'exactly-once' && values.delivery !== 'at-least-once') throw new Error('--delivery');
const config: Partial<NexmarkConfig> = {
  seed: Number(values.seed),
  firstEventRate: Number(values.rate),
  outOfOrderGroupSize: Number(values['out-of-order-group']),
};
const latenessMs = maxOutOfOrdernessMs(config);
const cores = availableParallelism();

/**
 * The suite's Flink figures: "Throughput/Cores" of the example result table in nexmark/nexmark's
 * GUIDE_V1.md ("Nexmark Benchmark Result", linked from its README; commit 6b3646c): Flink 1.13–2.0, 3
 * workers of 8 cores, parallelism 8, 100 M events from the datagen source (not Kafka), every event counted
 * for every query; cores = the CPU the cluster used.
 */
const FLINK_PER_CORE: Record<Query, number> = {
  q0: 155_020,
  q1: 157_940,
  q2: 175_210,
  q3: 152_120,
  q5: 22_140,
  q7: 12_330,
  q11: 39_700,
};

interface Row {
  query: Query;
  events: number;
  results: number;
  eventsPerSec: number | null;
  eventsPerSecPerCore: number | null;
  peakRssMb: number | null;
  check: string;
  flinkPerCore: number;
}

async function main(): Promise<void> {
  const { broker, brokers, kafka } = await buildAndConnect(root, 'nexmark');
  const admin = kafka.admin();
  await admin.connect();
  const run = Date.now().toString(36);
  const topics: NexmarkTopics = {
    bids: `nexmark-bids-${run}`,
    auctions: `nexmark-auctions-${run}`,
    persons: `nexmark-persons-${run}`,
  };
  const groups: string[] = [];
  const rows: Row[] = [];
  let written: WriteStats | undefined;
  let deviations: ReturnType<Reference['deviations']> | undefined;
  try {
    await createNexmarkTopics(admin, topics, partitions);
    log(`writing ${events} Nexmark events (${partitions} partitions, ${config.firstEventRate} events/s of event time)`);
    const reference = new Reference({ latenessMs, queries });
    function* observed(all: Iterable<NexmarkEvent>): Generator<NexmarkEvent> {
      for (const e of all) {
        reference.add(e);
        yield e;
      }
    }
    const stream = observed(withEndBids(generateEvents(events, config), partitions));
    written = await writeNexmark(kafka, topics, plan(stream, partitions));
    const total = written.records.bids + written.records.auctions + written.records.persons;
    log(
      `wrote ${written.records.persons} persons, ${written.records.auctions} auctions, ${written.records.bids} bids ` +
        `(incl. ${partitions} end bids), ${(written.bytes / 1e6).toFixed(0)} MB in ${written.seconds.toFixed(1)} s ` +
        `(${Math.round(total / written.seconds)} records/s, generation included)`,
    );
    deviations = reference.deviations();
    for (const query of queries) {
      const input = query === 'q3' ? written.records.auctions : written.records.bids;
      const row = await runQuery(
        kafka,
        admin,
        brokers,
        topics,
        run,
        query,
        new Checker(query, reference.results(query)),
      );
      groups.push(`nexmark-${query}-${run}`, `nexmark-reader-${query}-${run}`);
      rows.push({ ...row, events: input, ...rates(input, row.seconds), flinkPerCore: FLINK_PER_CORE[query] });
      log(`${query}: ${rows.at(-1)!.check}`);
    }
  } finally {
    if (!values['keep-topics']) await cleanUp(admin, run, groups);
    await admin.disconnect();
    await broker?.stop();
  }
  report(rows, written!, deviations!);
}

function rates(input: number, seconds: number | null): Pick<Row, 'eventsPerSec' | 'eventsPerSecPerCore'> {
  if (seconds === null || !(seconds > 0)) return { eventsPerSec: null, eventsPerSecPerCore: null };
  return { eventsPerSec: Math.round(input / seconds), eventsPerSecPerCore: Math.round(input / seconds / cores) };
}

/** One query: a fresh job (group, internal topics) and output topic, the whole output read and checked. */
async function runQuery(
  kafka: Kafka,
  admin: Admin,
  brokers: string,
  topics: NexmarkTopics,
  run: string,
  query: Query,
  checker: Checker,
): Promise<{ query: Query; results: number; seconds: number | null; peakRssMb: number; check: string }> {
  const name = `nexmark-${query}-${run}`;
  const output = `${name}-out`;
  await admin.createTopics({
    waitForLeaders: true,
    topics: [{ topic: output, numPartitions: partitions, replicationFactor: 1 }],
  });
  log(`${query}: starting the service (${checker.expected} results expected)`);
  const service = await startSluice(`bench/nexmark/queries/${query}.ts`, {
    KAFKA_BROKERS: brokers,
    NEXMARK_JOB_NAME: name,
    NEXMARK_BIDS: topics.bids,
    NEXMARK_AUCTIONS: topics.auctions,
    NEXMARK_PERSONS: topics.persons,
    NEXMARK_OUTPUT: output,
    NEXMARK_LATENESS_MS: String(latenessMs),
    NEXMARK_BATCH_INTERVAL_MS: values['batch-interval-ms'],
    SLUICE_DELIVERY: values.delivery,
    ...(values.workers ? { SLUICE_WORKERS: values.workers } : {}),
  });
  // Kept as read and checked after the run, so that the check costs the shared cores nothing meanwhile.
  const read: Array<{ key: string | null; value: Buffer | null }> = [];
  let lastAt = 0;
  let note = '';
  try {
    // Until as many records as results expected were read, or nothing came for 20 s.
    await consumeUntil(
      kafka,
      output,
      `nexmark-reader-${query}-${run}`,
      (r) => {
        read.push(r);
        lastAt = r.receivedAt;
      },
      () => read.length >= checker.expected || (lastAt > 0 && Date.now() - lastAt > 20_000),
      600_000,
    );
  } catch (error) {
    note = ` (${(error as Error).message})`;
  }
  const first = lastAt > 0 ? await service.firstBatchAt() : 0;
  const rss = await service.stop();
  for (const r of read) checker.offer(r.key, r.value === null ? null : JSON.parse(r.value.toString()));
  return {
    query,
    results: checker.offered,
    seconds: lastAt > 0 ? (lastAt - first) / 1000 : null,
    peakRssMb: Math.round(rss / 1e6),
    check: `${checker.summary()}${note}`,
  };
}

/** Deletes the run's topics (inputs, outputs, the jobs' internal ones) and consumer groups. */
async function cleanUp(admin: Admin, run: string, groups: string[]): Promise<void> {
  try {
    const mine = (await admin.listTopics()).filter((t) => t.startsWith('nexmark-') && t.includes(`-${run}`));
    if (mine.length > 0) await admin.deleteTopics({ topics: mine });
    if (groups.length > 0) await admin.deleteGroups(groups).catch(() => undefined);
    log(`deleted ${mine.length} topics of the run`);
  } catch (error) {
    log(`could not delete the run's topics: ${(error as Error).message}`);
  }
}

function report(rows: Row[], written: WriteStats, deviations: ReturnType<Reference['deviations']>): void {
  const fmt = (n: number | null): string => (n === null ? '—' : n.toLocaleString('en-US').replace(/,/g, ' '));
  const lines: string[] = [];
  lines.push(
    `Nexmark on Sluice: ${events} events (${written.records.persons} persons, ${written.records.auctions} auctions, ` +
      `${written.records.bids} bids incl. ${partitions} end bids), ${partitions} partitions, ` +
      `${config.firstEventRate} events/s of event time, seed ${config.seed}, lateness ${latenessMs} ms, ` +
      `${values.delivery}, workers ${values.workers ?? 'default'}`,
  );
  lines.push('');
  const header = [
    'query',
    'events',
    'results',
    'events/s',
    `events/s per core (÷ ${cores}; broker + harness share them)`,
    'peak RSS MB',
    'check',
    'Flink events/s per core (published; datagen, not Kafka)',
  ];
  const table = rows.map((r) => [
    r.query,
    fmt(r.events),
    fmt(r.results),
    fmt(r.eventsPerSec),
    fmt(r.eventsPerSecPerCore),
    fmt(r.peakRssMb),
    r.check,
    fmt(r.flinkPerCore),
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...table.map((t) => t[i]!.length)));
  const line = (cells: string[]): string => `| ${cells.map((c, i) => c.padEnd(widths[i]!)).join(' | ')} |`;
  lines.push(line(header));
  lines.push(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const t of table) lines.push(line(t));
  lines.push('');
  lines.push(
    '- events: records the query reads (bids, incl. the end bids; q3: auctions, its persons table read before ' +
      'the first batch); events/s: from the first batch with records to the last result read.',
  );
  lines.push(
    '- Flink: "Throughput/Cores" of the example table in nexmark/nexmark GUIDE_V1.md (Flink 1.13–2.0, 3 × 8-core ' +
      'workers, parallelism 8, 100 M events from the datagen source, all event kinds counted, cores = CPU used).',
  );
  const { q7InclusiveEnd: q7, q11TouchingSessions: q11 } = deviations;
  const differ = [
    ...(q7 === null ? [] : [`q7: ${q7} bid(s) exactly at a window's end at its highest price (inclusive BETWEEN)`]),
    ...(q11 === null ? [] : [`q11: ${q11} pair(s) of sessions exactly 10 s apart (Flink merges them)`]),
  ];
  if (differ.length > 0)
    lines.push(`- Where the suite's semantics would give other results here: ${differ.join('; ')}.`);
  const text = lines.join('\n');
  console.log(text);
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const file = join(dir, `nexmark-${new Date().toISOString().replace(/[:.]/g, '-')}.json`);
  const settings = {
    events,
    partitions,
    config,
    latenessMs,
    delivery: values.delivery,
    workers: values.workers,
    cores,
  };
  writeFileSync(file, JSON.stringify({ settings, written, rows, deviations, table: text }, null, 2));
  console.log(`\nresults: ${file}`);
}

const started = Date.now();
await main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
log(`done in ${Math.round((Date.now() - started) / 1000)} s`);
