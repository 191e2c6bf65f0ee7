/**
 * `npm run bench:scaling`: the page-views job (bench/jobs/page-views.ts, exactly-once) on a backlog
 * with 1, 2 and 4 worker threads (`SLUICE_WORKERS`) over inputs of 8 and 32 partitions: one input
 * topic per partition count, filled once, read by every worker count. A cell counts only when its
 * output is `exact`. Prints the table, writes bench/results/scaling-<iso>.json and its chart.
 *
 * Options: --records N (1000000) --workers 1,2,4 --partitions 8,32 --delivery exactly-once|at-least-once
 */
// First, before kafkajs loads: the harness's producer (input fill) publishes like Sluice's workers.
import '../src/kafka/kafkajs-fixes.ts';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { writeCharts, type ScalingRow } from './lib/charts.ts';
import { type Admin, type Kafka } from 'kafkajs';
import { createTopics, fillInput, type BenchData } from './lib/data.ts';
import { buildAndConnect, log } from './lib/setup.ts';
import { runSluiceWindowed } from './lib/sluice-runs.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    workers: { type: 'string', default: '1,2,4' },
    partitions: { type: 'string', default: '8,32' },
    delivery: { type: 'string', default: 'exactly-once' },
  },
});
const list = (s: string | undefined): number[] =>
  (s ?? '')
    .split(',')
    .map(Number)
    .filter((n) => Number.isInteger(n) && n > 0);
const records = Number(values.records);
const workerCounts = list(values.workers);
const partitionCounts = list(values.partitions);
const RECORD_SIZE = 100;
const delivery = values.delivery === 'at-least-once' ? 'at-least-once' : 'exactly-once';
if (values.delivery !== delivery) throw new Error('--delivery is exactly-once or at-least-once');
if (!(records > 0) || workerCounts.length === 0 || partitionCounts.length === 0) {
  throw new Error('--records, --workers and --partitions need positive numbers (lists: comma-separated)');
}

async function main(): Promise<void> {
  const { broker, brokers, kafka } = await buildAndConnect(root, 'bench-scaling');
  const admin = kafka.admin();
  await admin.connect();
  const run = Date.now().toString(36);
  const scaling: ScalingRow[] = [];
  try {
    for (const partitions of partitionCounts) {
      const data = await fillChecked(kafka, admin, `bench-scaling-in-p${partitions}-${run}`, partitions);
      for (const workers of workerCounts) {
        log(`Sluice page-views, ${delivery}: ${workers} worker(s), ${partitions} partitions`);
        const r = await runSluiceWindowed(kafka, brokers, data, {
          name: `bench-scaling-w${workers}-p${partitions}-${run}`,
          delivery,
          partitions,
          workers: String(workers),
        });
        const cell: ScalingRow = {
          workers,
          partitions,
          recordsPerSec: Math.round(r.records / r.seconds),
          peakRssMb: Math.round(r.peakRssBytes / 1e6),
          check: r.check,
        };
        log(`  ${cell.recordsPerSec} records/s, peak RSS ${cell.peakRssMb} MB, ${cell.check}`);
        scaling.push(cell);
      }
    }
  } finally {
    await admin.disconnect();
    await broker?.stop();
  }
  await report(scaling);
}

/** Fills a fresh input topic and checks that it holds exactly the records the reference counts. */
async function fillChecked(kafka: Kafka, admin: Admin, topic: string, partitions: number): Promise<BenchData> {
  await createTopics(admin, [{ topic, partitions }]);
  log(`producing ${records} records of ~${RECORD_SIZE} bytes to ${topic} (${partitions} partitions)`);
  const data = await fillInput(kafka, topic, { records, partitions, recordSize: RECORD_SIZE });
  const offsets = await admin.fetchTopicOffsets(topic);
  const held = offsets.reduce((n, p) => n + Number(p.high) - Number(p.low), 0);
  if (held !== data.records) throw new Error(`${topic} holds ${held} records, ${data.records} were produced`);
  return data;
}

async function report(scaling: ScalingRow[]): Promise<void> {
  const pad = (s: string | number, n: number): string => String(s).padEnd(n);
  const lines = [
    `records: ${records}, record size: ~${RECORD_SIZE} B, page-views job, ${delivery}, machine: ${process.env['BENCH_MACHINE'] ?? 'local'}`,
    '',
    `${pad('workers', 9)}${pad('partitions', 12)}${pad('records/s', 12)}${pad('×1 worker', 11)}${pad('peak RSS MB', 13)}check`,
  ];
  for (const c of scaling) {
    const one = scaling.find((o) => o.partitions === c.partitions && o.workers === 1 && o.check === 'exact');
    const ratio = one && c.check === 'exact' ? (c.recordsPerSec / one.recordsPerSec).toFixed(2) : '-';
    lines.push(
      `${pad(c.workers, 9)}${pad(c.partitions, 12)}${pad(c.recordsPerSec, 12)}${pad(ratio, 11)}${pad(c.peakRssMb ?? '-', 13)}${c.check}`,
    );
  }
  console.log(lines.join('\n'));
  const dir = join(root, 'bench', 'results');
  mkdirSync(dir, { recursive: true });
  const name = `scaling-${new Date().toISOString().replace(/[:.]/g, '-')}`;
  const file = join(dir, `${name}.json`);
  const result = { records, delivery, scaling };
  writeFileSync(file, JSON.stringify(result, null, 2));
  console.log(`\nresults: ${file}`);
  for (const chart of await writeCharts(result, dir, name)) console.log(`chart: ${chart}`);
}

const started = Date.now();
await main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
log(`done in ${Math.round((Date.now() - started) / 1000)} s`);
