/**
 * Bounded memory at default settings: each example job, as shipped (only its topic names changed), with
 * every setting at its default, on a backlog of 300 000 page views (all produced before it starts). The
 * service's peak resident memory (VmHWM from /proc: the kernel's high-water mark, so no peak is missed
 * between samples) stays within what it takes idle (measured in the same run: the same job started on
 * the empty input) plus an allowance derived from the default configuration term by term; and its
 * output is exact, compared with a recomputation of the input.
 *
 * The allowance (each term names the setting it follows; src/process-memory.ts, src/pool/worker-slot.ts):
 * - the buffer: SLUICE_BUFFER_MAX_RECORDS records as packed (~135 bytes each for these views; 32 MiB,
 *   SLUICE_BUFFER_MAX_BYTES, at most), plus one fetch per partition;
 * - a fetch being decoded: kafkajs makes objects of up to 4 MiB of response before it is packed: ×8;
 * - the main heap's young generation (3 × 2 MiB semi-spaces) and each worker's (WORKER_YOUNG_GENERATION_MB);
 * - a batch of maxBatchRecords (50 000) in a worker in four forms at once (input, decoded, outputs, produce
 *   requests), ~135 bytes each;
 * - 32 MiB of old-generation growth per heap before V8 collects it, and 16 MiB of allocator slack.
 * Measured on a 2-core host: 76–93 MB above idle (idle 140–148 MB, running the sources); before records
 * were packed at fetch and the heaps were sized, the built service peaked at 750–850 MB on a backlog of
 * 1 000 000; now at 235–257 MB (docs/benchmarks.md, "Bounded memory").
 */
import { readFileSync, writeFileSync, mkdirSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { type Message } from 'kafkajs';
import { onCleanup, uniqueName } from '../helpers.ts';
import { ENV } from '../../src/config/schema.ts';
import { DEFAULT_MAX_BATCH_RECORDS } from '../../src/job/field-checks.ts';
import { WORKER_YOUNG_GENERATION_MB } from '../../src/pool/worker-slot.ts';
import { residentBytes, startService } from '../support/service.ts';
import { newTopic, readTopic, testProducer } from '../support/topics.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');
const MIB = 1024 * 1024;
const RECORDS = 300_000;
const PARTITIONS = 8;
const PAGES = 60;
/** Event time advances 2 000 events per second, in order per partition. */
const EVENTS_PER_SECOND = 2_000;
const WINDOW_MS = 10_000;
const LATENESS_MS = 5_000;

interface PageView {
  page: string;
  user: string;
  ts: number;
}

const T0 = 1_700_000_000_000;
function pageView(i: number): PageView {
  const user = i % 10 === 3 ? `bot-${i % 97}` : `user-${(i * 7919) % 50_000}`;
  return { page: `/page/${(i * 31) % PAGES}`, user, ts: T0 + Math.floor((i * 1000) / EVENTS_PER_SECOND) };
}

/** The example job with its topics renamed, where it can import `sluice` (inside the package). */
function exampleWith(file: string, topics: Record<string, string>): string {
  let source = readFileSync(path.join(root, 'examples', file), 'utf8');
  for (const [from, to] of Object.entries(topics)) {
    const quoted = `'${from}'`;
    expect(source).toContain(quoted);
    source = source.replaceAll(quoted, `'${to}'`);
  }
  const dir = path.join(root, 'test', 'artifacts', uniqueName('memory'));
  mkdirSync(dir, { recursive: true });
  const job = path.join(dir, file);
  writeFileSync(job, source);
  return path.relative(root, job);
}

async function produceBacklog(topic: string): Promise<void> {
  const producer = await testProducer();
  for (let start = 0; start < RECORDS; start += 10_000) {
    const messages: Message[] = [];
    for (let i = start; i < Math.min(RECORDS, start + 10_000); i++) {
      const view = pageView(i);
      messages.push({ partition: i % PARTITIONS, key: view.user, value: JSON.stringify(view) });
    }
    await producer.send({ topic, messages });
  }
}

/** The defaults the allowance follows (src/config/schema.ts, src/job/field-checks.ts). */
const WORKERS = Math.max(1, availableParallelism() - 1);
const BUFFER_MAX_RECORDS = Number(ENV.SLUICE_BUFFER_MAX_RECORDS.default);
const RECORD_BYTES = 135;
const ALLOWANCE_BYTES =
  Math.min(BUFFER_MAX_RECORDS * RECORD_BYTES, 32 * MIB) +
  PARTITIONS * 256 * 1024 +
  8 * 4 * MIB +
  3 * 2 * MIB +
  WORKERS * WORKER_YOUNG_GENERATION_MB * MIB +
  WORKERS * 4 * DEFAULT_MAX_BATCH_RECORDS * RECORD_BYTES +
  (1 + WORKERS) * 32 * MIB +
  16 * MIB;

/** Starts the job with default settings (startService's test default is two workers). */
async function start(job: string) {
  const service = await startService({
    job,
    env: { SLUICE_GROUP_ID: uniqueName('memory'), SLUICE_WORKERS: String(WORKERS) },
  });
  onCleanup(() => service.stop('SIGKILL'));
  await service.waitReady();
  return service;
}

/**
 * What the job takes idle (ready, its input empty), then its peak on the whole backlog, produced before
 * it starts again; resolves once `done` holds, with the output.
 */
async function runOnBacklog(job: string, input: string, output: string, done: Parameters<typeof readTopic>[1]) {
  const idleService = await start(job);
  let idle = 0;
  for (let i = 0; i < 10; i++) {
    idle = Math.max(idle, residentBytes(idleService.process.pid!, 'VmRSS'));
    await new Promise((r) => setTimeout(r, 150));
  }
  expect((await idleService.stop('SIGTERM')).code).toBe(0);
  await produceBacklog(input);
  const service = await start(job);
  const records = await readTopic(output, done, { timeoutMs: 180_000, settleMs: 1000 });
  const pid = service.process.pid!;
  const peak = residentBytes(pid, 'VmHWM');
  // The heap was sized as the service sizes it (src/process-memory.ts): the flags are in its command line.
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
  expect(cmdline).toContain('--max-old-space-size=128');
  expect((await service.stop('SIGTERM')).code).toBe(0);
  console.log(
    `memory: ${path.basename(job)}: idle ${(idle / 1e6).toFixed(0)} MB, peak ${(peak / 1e6).toFixed(0)} MB ` +
      `(+${((peak - idle) / 1e6).toFixed(0)} MB; allowance ${(ALLOWANCE_BYTES / 1e6).toFixed(0)} MB)`,
  );
  return { records, peak, idle };
}

describe('memory at default settings', () => {
  test('the stateless example on a 300 000-record backlog: peak RSS within idle + the allowance, every kept record once', async () => {
    const input = await newTopic('mem-sl-in', PARTITIONS);
    const output = await newTopic('mem-sl-out', PARTITIONS);
    let kept = 0;
    for (let i = 0; i < RECORDS; i++) if (!pageView(i).user.startsWith('bot-')) kept++;
    const job = exampleWith('page-views-stateless.ts', { 'page-views': input, 'page-views-clean': output });
    const { records, peak, idle } = await runOnBacklog(job, input, output, (r) => r.length >= kept);
    // Exact: each kept view once, as the job maps it.
    const seen = new Map<string, number>();
    for (const r of records) seen.set(r.value!.toString(), (seen.get(r.value!.toString()) ?? 0) + 1);
    const want = new Map<string, number>();
    for (let i = 0; i < RECORDS; i++) {
      const v = pageView(i);
      if (v.user.startsWith('bot-')) continue;
      const out = JSON.stringify({ page: v.page, user: v.user, ts: v.ts, path: v.page.toLowerCase() });
      want.set(out, (want.get(out) ?? 0) + 1);
    }
    expect(records).toHaveLength(kept);
    expect(seen).toEqual(want);
    expect(peak - idle).toBeLessThanOrEqual(ALLOWANCE_BYTES);
  });

  test('the page-views example on a 300 000-record backlog: peak RSS within idle + the allowance, every closed window exact', async () => {
    const input = await newTopic('mem-pv-in', PARTITIONS);
    const output = await newTopic('mem-pv-out', PARTITIONS);
    // Independent recomputation: counts per (page, window); a window is closed (final, emitted) once the
    // stream time of the aggregating stage — the smallest of the input partitions' largest event times —
    // reaches its end plus the lateness.
    const counts = new Map<string, number>();
    const latest = new Array<number>(PARTITIONS).fill(-Infinity);
    for (let i = 0; i < RECORDS; i++) {
      const v = pageView(i);
      const start = v.ts - (v.ts % WINDOW_MS);
      const key = `${v.page}|${start}`;
      counts.set(key, (counts.get(key) ?? 0) + 1);
      latest[i % PARTITIONS] = Math.max(latest[i % PARTITIONS]!, v.ts);
    }
    const streamTime = Math.min(...latest);
    const closed = new Map(
      [...counts].filter(([key]) => Number(key.split('|')[1]) + WINDOW_MS + LATENESS_MS <= streamTime),
    );
    expect(closed.size).toBeGreaterThan(PAGES * 10);
    const job = exampleWith('page-views.ts', { 'page-views': input, 'page-views-per-10s': output });
    const windowOf = (value: Buffer) => {
      const w = JSON.parse(value.toString()) as { key: string; windowStart: number; value: number };
      return { id: `${w.key}|${w.windowStart}`, count: w.value };
    };
    const { records, peak, idle } = await runOnBacklog(job, input, output, (r) => r.length >= closed.size);
    const got = new Map<string, number>();
    const repeated: string[] = [];
    for (const r of records) {
      const { id, count } = windowOf(r.value!);
      if (got.has(id)) repeated.push(id);
      got.set(id, count);
    }
    expect(repeated).toEqual([]);
    expect(got).toEqual(closed);
    expect(peak - idle).toBeLessThanOrEqual(ALLOWANCE_BYTES);
  });
});
