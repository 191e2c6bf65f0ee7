/**
 * `npm run bench:memory`: the service's memory on a backlog. Fills one topic, then runs each bench job
 * (bench/jobs) on it from the beginning, at default settings unless a variant says otherwise, and
 * prints per run: records/s (first batch with records → last result read), the peak resident memory (VmHWM, the kernel's high-water mark), the resident memory
 * when the service turned ready, and the peaks of its heaps as its /metrics show them every 250 ms (main
 * thread: nodejs_heap_*, nodejs_external_memory_bytes; each worker: sluice_worker_heap_bytes).
 *
 * Options: --records N (1000000) --jobs stateless,page-views
 *          --variants '[{"name":"small buffer","env":{"SLUICE_BUFFER_MAX_RECORDS":"20000"}}]'
 */
// First, before kafkajs loads: the fill producer publishes like Sluice's workers.
import '../src/kafka/kafkajs-fixes.ts';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { allWindowsIn, createTopics, fillInput, type BenchData } from './lib/data.ts';
import { buildAndConnect, log } from './lib/setup.ts';
import { residentBytes } from './lib/measure.ts';
import { readOutputs, startSluice } from './lib/systems.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    records: { type: 'string', default: '1000000' },
    jobs: { type: 'string', default: 'stateless,page-views' },
    variants: { type: 'string', default: '[{"name":"defaults","env":{}}]' },
  },
});
const records = Number(values.records);
const jobs = (values.jobs ?? '').split(',').filter(Boolean) as Array<'stateless' | 'page-views'>;
const variants = JSON.parse(values.variants ?? '[]') as Array<{ name: string; env: Record<string, string> }>;

const PEAKS =
  /^(nodejs_heap_size_total_bytes|nodejs_heap_size_used_bytes|nodejs_external_memory_bytes|sluice_worker_heap_bytes\{worker="\d+",kind="(?:used|total|external)"\}|sluice_buffer_bytes) (\S+)/;

async function runOne(
  brokers: string,
  kafka: Parameters<typeof readOutputs>[0],
  data: BenchData,
  job: 'stateless' | 'page-views',
  variant: { name: string; env: Record<string, string> },
): Promise<string> {
  const name = `bench-mem-${job}-${Date.now().toString(36)}`;
  const output = `${name}-out`;
  const admin = kafka.admin();
  await admin.connect();
  await createTopics(admin, [{ topic: output, partitions: 8 }]);
  await admin.disconnect();
  const service = await startSluice(`bench/jobs/${job}.ts`, {
    KAFKA_BROKERS: brokers,
    BENCH_JOB_NAME: name,
    BENCH_INPUT: data.topic,
    BENCH_OUTPUT: output,
    ...variant.env,
  });
  const peaks = new Map<string, number>();
  let ready = 0;
  const poll = setInterval(() => {
    void (async () => {
      try {
        if (ready === 0 && (await fetch(`${service.url}/readyz`)).ok) ready = residentBytes(service.pid, 'VmRSS');
        for (const line of (await (await fetch(`${service.url}/metrics`)).text()).split('\n')) {
          const m = PEAKS.exec(line);
          if (m) peaks.set(m[1]!, Math.max(peaks.get(m[1]!) ?? 0, Number(m[2])));
        }
      } catch {
        // starting, or stopping
      }
    })();
  }, 250);
  let lastAt = 0;
  try {
    if (job === 'stateless') {
      ({ lastAt } = await readOutputs(kafka, output, (r) => r.length >= data.expectedStateless, 600_000, 20_000));
    } else {
      ({ lastAt } = await readOutputs(kafka, output, allWindowsIn(data), 600_000, 20_000));
    }
  } finally {
    clearInterval(poll);
  }
  const peak = residentBytes(service.pid, 'VmHWM');
  const first = await service.firstBatchAt();
  await service.stop();
  const mb = (n: number | undefined): string => (n === undefined ? '-' : String(Math.round(n / 1e6)));
  const worker = (kind: string): string => mb(peaks.get(`sluice_worker_heap_bytes{worker="0",kind="${kind}"}`));
  return [
    `${job.padEnd(11)} ${variant.name.padEnd(24)} peak RSS ${mb(peak).padStart(4)} MB`,
    `${Math.round(data.records / ((lastAt - first) / 1000))} records/s`,
    `ready ${mb(ready).padStart(4)} MB`,
    `main heap ${mb(peaks.get('nodejs_heap_size_total_bytes'))} (used ${mb(peaks.get('nodejs_heap_size_used_bytes'))}) + external ${mb(peaks.get('nodejs_external_memory_bytes'))} MB`,
    `worker 0 heap ${worker('total')} (used ${worker('used')}) + external ${worker('external')} MB`,
    `buffer ${mb(peaks.get('sluice_buffer_bytes'))} MB`,
  ].join(' · ');
}

const { broker, brokers, kafka } = await buildAndConnect(root, 'bench-memory');
const lines: string[] = [];
try {
  const admin = kafka.admin();
  await admin.connect();
  const input = `bench-mem-input-${Date.now().toString(36)}`;
  await createTopics(admin, [{ topic: input, partitions: 8 }]);
  await admin.disconnect();
  log(`producing ${records} records to ${input}`);
  const data = await fillInput(kafka, input, { records, partitions: 8, recordSize: 100 });
  for (const variant of variants) {
    for (const job of jobs) {
      log(`${job}, ${variant.name}`);
      lines.push(await runOne(brokers, kafka, data, job, variant));
      log(lines[lines.length - 1]!);
    }
  }
} finally {
  await broker?.stop();
}
console.log(
  `\n${records} records backlog, 8 partitions, ~100-byte page views; peaks over each run:\n${lines.join('\n')}`,
);
