/**
 * Smoke test of the benchmark peers (not part of the Jest suite):
 *
 *   node bench/peers/smoke.ts [kafka-streams|spark|flink ...] [--count 50000]
 *
 * Builds the peers, uses the broker in KAFKA_BROKERS (topics named for this run, deleted at the end)
 * or else starts a local one, produces a generated clickstream to an 8-partition topic (plus flush
 * records far in the future that reach every partition of a page-keyed repartition topic), runs each
 * peer on it and checks its output against a recomputation from the generated records:
 * for every (page, window) the peer emitted, full count − records planted late ≤ value ≤ full count,
 * where "full count" counts the records the peer can parse (see eventAsReadBy); at most one value per
 * (page, window); and every window that must have a result has one. Prints timings and peak RSS.
 * Exits 1 on a mismatch.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Kafka, Partitioners, logLevel, type Admin } from 'kafkajs';
import {
  flushPages,
  flushRecords,
  generateClickstream,
  maxEventTime,
  produceClickstream,
  type GeneratedRecord,
} from '../../examples/generator/clickstream.ts';
import { startLocalBroker } from '../../scripts/kafka/local-broker.ts';
import {
  buildPeers,
  eventAsReadBy,
  startFlink,
  startKafkaStreams,
  startSpark,
  type PeerName,
  type PeerRun,
} from './peers.ts';

const PARTITIONS = 8;
const WINDOW_MS = 10_000;
const NO_OUTPUT_TIMEOUT_MS = 30_000;

interface Output {
  key: string;
  windowStart: number;
  windowEnd: number;
  value: number;
}

interface Seen {
  kafkaKey: string | null;
  output: Output;
  /** LogAppendTime of the output record: when the broker received it. */
  appendedAt: number;
}

interface Options {
  peers: PeerName[];
  count: number;
  /** `--ks-config key=value`: extra Kafka Streams properties, for experiments. */
  ksConfig: Record<string, string>;
}

function parseArgs(argv: string[]): Options {
  const peers: PeerName[] = [];
  let count = 50_000;
  const ksConfig: Record<string, string> = {};
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    if (arg === '--count') count = Number(argv[++i]);
    else if (arg === '--ks-config') {
      const [key, ...value] = (argv[++i] ?? '').split('=');
      ksConfig[key!] = value.join('=');
    } else if (arg === 'kafka-streams' || arg === 'spark' || arg === 'flink') peers.push(arg);
    else throw new Error(`unknown argument ${arg}`);
  }
  return { peers: peers.length > 0 ? peers : ['kafka-streams', 'spark', 'flink'], count, ksConfig };
}

const windowOf = (ts: number): number => Math.floor(ts / WINDOW_MS) * WINDOW_MS;
const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(0)} MiB`;

/** Per (page, window): records the peer counts when none is late, and records planted late. */
function reference(
  peer: PeerName,
  records: GeneratedRecord[],
): { full: Map<string, number>; planted: Map<string, number> } {
  const full = new Map<string, number>();
  const planted = new Map<string, number>();
  for (const r of records) {
    const e = eventAsReadBy(peer, r.value);
    if (!e) continue;
    const id = `${e.page}|${windowOf(e.ts)}`;
    full.set(id, (full.get(id) ?? 0) + 1);
    if (r.kind === 'late') planted.set(id, (planted.get(id) ?? 0) + 1);
  }
  return { full, planted };
}

async function createTopic(admin: Admin, topic: string, configs: Record<string, string> = {}): Promise<void> {
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      {
        topic,
        numPartitions: PARTITIONS,
        replicationFactor: 1,
        configEntries: Object.entries(configs).map(([name, value]) => ({ name, value })),
      },
    ],
  });
}

/** Best effort: deletes this run's topics from a broker the smoke test did not start (internal topics stay). */
async function deleteTopics(kafka: Kafka, topics: string[]): Promise<void> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    const existing = new Set(await admin.listTopics());
    await admin.deleteTopics({ topics: topics.filter((t) => existing.has(t)) });
  } catch (error) {
    console.error(`could not delete the smoke topics: ${error instanceof Error ? error.message : String(error)}`);
  } finally {
    await admin.disconnect();
  }
}

interface PeerResult {
  peer: PeerName;
  startupMs: number;
  processingMs: number;
  recordsPerSecond: number;
  peakRss: number;
  stopMs: number;
  exit: number | string | null;
  outputs: number;
  /** Mismatches by kind; empty when the check passed. */
  problems: Map<string, string[]>;
  summary: string;
}

async function runPeer(
  peer: PeerName,
  kafka: Kafka,
  brokers: string,
  input: string,
  records: GeneratedRecord[],
  inputCount: number,
  ksConfig: Record<string, string>,
  runId: string,
): Promise<PeerResult> {
  const admin = kafka.admin();
  await admin.connect();
  const output = `smoke-out-${peer}-${runId}`;
  // LogAppendTime: each output record carries the time the broker got it, whatever the peer stamps.
  await createTopic(admin, output, { 'message.timestamp.type': 'LogAppendTime' });
  await admin.disconnect();

  const { full, planted } = reference(peer, records);
  const required = [...full].filter(([id, n]) => n - (planted.get(id) ?? 0) > 0).map(([id]) => id);

  const seen: Seen[] = [];
  const consumer = kafka.consumer({ groupId: `smoke-reader-${peer}-${Date.now()}`, maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics: [output], fromBeginning: true });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        seen.push({
          kafkaKey: m.key?.toString() ?? null,
          output: JSON.parse(m.value!.toString()) as Output,
          appendedAt: Number(m.timestamp),
        });
      }
    },
  });

  const checkpointDir = mkdtempSync(join(tmpdir(), 'smoke-spark-checkpoint-'));
  const spawnedAt = Date.now();
  let run: PeerRun;
  if (peer === 'kafka-streams') {
    run = await startKafkaStreams({
      brokers,
      input,
      output,
      applicationId: `smoke-${Date.now()}`,
      commitIntervalMs: 1000,
      config: ksConfig,
    });
  } else if (peer === 'spark') {
    run = await startSpark({
      brokers,
      input,
      output,
      checkpointDir: join(checkpointDir, 'cp'),
      triggerMs: 1000,
      verbose: true,
    });
  } else {
    run = await startFlink({ brokers, input, output });
  }
  console.log(`${peer}: started (log ${run.logFile})`);
  try {
    const firstRecordAt = await Promise.race([
      run.firstRecordAt,
      new Promise<never>((_, reject) =>
        setTimeout(() => reject(new Error(`${peer}: no FIRST_RECORD in 120 s`)), 120_000),
      ),
    ]);
    console.log(`${peer}: FIRST_RECORD after ${firstRecordAt - spawnedAt} ms`);

    // Wait until every window that must have a result has one (then 3 s more, for duplicates), or until
    // no new output arrived for a long time.
    const ids = (): Set<string> => new Set(seen.map((s) => `${s.output.key}|${s.output.windowStart}`));
    let lastCount = -1;
    let lastChange = Date.now();
    for (;;) {
      if (run.process.exitCode !== null)
        throw new Error(`${peer} exited with ${run.process.exitCode}; see ${run.logFile}`);
      const have = ids();
      if (required.every((id) => have.has(id))) break;
      if (seen.length !== lastCount) {
        lastCount = seen.length;
        lastChange = Date.now();
      } else if (Date.now() - lastChange > NO_OUTPUT_TIMEOUT_MS) {
        break;
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    await new Promise((r) => setTimeout(r, 3000));
    const peakRss = run.peakRssBytes();
    const stopStarted = Date.now();
    await run.stop();
    const stopMs = Date.now() - stopStarted;
    const exit = run.process.signalCode ?? run.process.exitCode;
    const dropped = run.droppedRecords();
    await consumer.disconnect();

    // The check.
    const problems = new Map<string, string[]>();
    const problem = (kind: string, text: string): void => {
      problems.set(kind, [...(problems.get(kind) ?? []), text]);
    };
    const values = new Map<string, number>();
    let duplicatesSame = 0;
    for (const { kafkaKey, output: o } of seen) {
      const id = `${o.key}|${o.windowStart}`;
      if (kafkaKey !== o.key) problem('format', `${id}: Kafka key ${kafkaKey}`);
      if (o.windowEnd - o.windowStart !== WINDOW_MS) problem('format', `${id}: windowEnd ${o.windowEnd}`);
      const before = values.get(id);
      if (before === undefined) values.set(id, o.value);
      else if (before === o.value) duplicatesSame++;
      else problem('conflicting duplicate', `${id}: emitted twice, ${before} and ${o.value}`);
    }
    let counted = 0;
    let expectedTotal = 0;
    for (const [id, value] of values) {
      counted += value;
      const n = full.get(id);
      const late = planted.get(id) ?? 0;
      if (n === undefined) problem('not in the input', `${id}: value ${value}`);
      else if (value > n) problem('over', `${id}: ${value} > ${n} records in the input`);
      else if (value < n - late)
        problem('under (more dropped than planted late)', `${id}: ${value} < ${n} records − ${late} planted late`);
    }
    for (const id of required) if (!values.has(id)) problem('missing', `${id}: no result (${full.get(id)} records)`);
    for (const [id, n] of full) if (!id.startsWith('/flush-')) expectedTotal += n;

    const lastOutputAt = seen.reduce((max, s) => Math.max(max, s.appendedAt), -Infinity);
    const processingMs = lastOutputAt - firstRecordAt;
    return {
      peer,
      startupMs: firstRecordAt - spawnedAt,
      processingMs,
      recordsPerSecond: Math.round(inputCount / (processingMs / 1000)),
      peakRss,
      stopMs,
      exit,
      outputs: seen.length,
      problems,
      summary:
        `${values.size} windows (${required.length} required, ${duplicatesSame} same-value duplicates); ` +
        `${counted} of ${expectedTotal} parseable records counted, ${expectedTotal - counted} dropped as late ` +
        `(${[...planted.values()].reduce((a, b) => a + b, 0)} planted late)` +
        (dropped === undefined ? '' : `; the peer reports ${dropped} dropped`),
    };
  } finally {
    await run.stop();
    await consumer.disconnect().catch(() => undefined);
    rmSync(checkpointDir, { recursive: true, force: true });
  }
}

async function main(): Promise<void> {
  const { peers, count, ksConfig } = parseArgs(process.argv.slice(2));

  const buildStarted = Date.now();
  await buildPeers(peers);
  console.log(`build: ${Date.now() - buildStarted} ms (skipped when up to date)`);

  const given = process.env['KAFKA_BROKERS'];
  const broker = given ? undefined : await startLocalBroker();
  const brokers = given ?? broker!.brokers;
  console.log(broker ? `broker: ${brokers} in ${broker.startupMs} ms` : `broker: ${brokers} (KAFKA_BROKERS)`);
  // Topics named for this run: a broker given in KAFKA_BROKERS may hold an earlier run's.
  const run = Date.now().toString(36);
  const input = `smoke-page-views-${run}`;
  const kafka = new Kafka({ clientId: 'peers-smoke', brokers: [brokers], logLevel: logLevel.NOTHING });
  let failed = false;
  try {
    const admin = kafka.admin();
    await admin.connect();
    await createTopic(admin, input);
    await admin.disconnect();

    const records = [...generateClickstream({ count, seed: 11, eventsPerSecond: 500, users: 300, pages: 40 })];
    const producer = kafka.producer({ idempotent: true, createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    await produceClickstream(producer, input, records, { batchSize: 5000 });
    // Flush records far ahead in event time whose pages reach every partition of the page-keyed
    // repartition topic (Kafka Streams') too: every window closes.
    const flush = flushRecords(maxEventTime(records), flushPages(PARTITIONS));
    await producer.send({ topic: input, messages: flush });
    await producer.disconnect();
    const inputCount = records.length + flush.length;
    const kinds = records.reduce<Record<string, number>>(
      (acc, r) => ({ ...acc, [r.kind]: (acc[r.kind] ?? 0) + 1 }),
      {},
    );
    console.log(`input: ${inputCount} records on ${PARTITIONS} partitions ${JSON.stringify(kinds)}`);

    for (const peer of peers) {
      try {
        const r = await runPeer(peer, kafka, brokers, input, records, inputCount, ksConfig, run);
        console.log(
          `${peer}: startup ${r.startupMs} ms, FIRST_RECORD → last output ${r.processingMs} ms ` +
            `(~${r.recordsPerSecond} records/s), peak RSS ${mb(r.peakRss)}, stop ${r.stopMs} ms (exit ${r.exit}), ${r.outputs} output records`,
        );
        console.log(`${peer}: ${r.summary}`);
        if (r.problems.size > 0) {
          failed = true;
          for (const [kind, list] of r.problems) {
            console.log(`${peer}: MISMATCH ${kind}: ${list.length} windows, e.g.`);
            for (const p of list.slice(0, 5)) console.log(`  ${p}`);
          }
        } else {
          console.log(`${peer}: output check passed`);
        }
      } catch (error) {
        failed = true;
        console.error(`${peer}: ${error instanceof Error ? error.message : String(error)}`);
      }
    }
  } finally {
    if (broker) await broker.stop();
    else await deleteTopics(kafka, [input, ...peers.map((peer) => `smoke-out-${peer}-${run}`)]);
  }
  process.exit(failed ? 1 : 0);
}

await main();
