/**
 * The worker pool with real worker threads and the shared broker (each worker connects its own
 * producer at start-up): the READY handshake, batches answered and published, the tasks each worker
 * holds, the watchdog that replaces a worker hung in user code (never one that is publishing), a
 * worker that exits in user code, and closing.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { IllegalStateError, JobLoadError, UserCodeTimeoutError, WorkerCrashedError } from '../../src/errors.ts';
import { type PartitionStart, type PartitionWork } from '../../src/pool/protocol.ts';
import { type BatchAnswer, WorkerPool } from '../../src/pool/worker-pool.ts';
import { RecordWriter } from '../../src/wire/record-codec.ts';
import { admin, createTopic, onCleanup, testBrokers, uniqueName, waitFor } from '../helpers.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const JOB = path.join(root, 'test/fixtures/jobs/misbehaving-map.ts');
const INPUT = 'items';
const RECORD_TIMEOUT_MS = 400;
/** The watchdog looks every recordTimeoutMs / 4. */
const WATCHDOG_MS = RECORD_TIMEOUT_MS / 4;
const NO_START: PartitionStart = { committedOffset: null, metadata: null };

const encoder = new TextEncoder();
type Item = { n: number; act?: 'hang' | 'exit' };

function work(partition: number, firstOffset: number, items: Item[], start: PartitionStart = NO_START): PartitionWork {
  const writer = new RecordWriter();
  items.forEach((item, i) => writer.write(firstOffset + i, 1_000 + i, null, encoder.encode(JSON.stringify(item)), []));
  return { topic: INPUT, partition, records: writer.finish(), count: writer.count, caughtUp: true, start };
}

const items = (n: number): Item[] => Array.from({ length: n }, (_, i) => ({ n: i }));

let batchId = 0;
function run(pool: WorkerPool, worker: number, ...partitions: PartitionWork[]): Promise<BatchAnswer> {
  return pool.runBatch(worker, { batchId: ++batchId, batchTime: Date.now(), partitions });
}

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected the batch to fail');
}

async function createPool(size: number, output: string, crashes: Array<{ index: number; error: Error }> = []) {
  const pool = await WorkerPool.create({
    size,
    jobPath: JOB,
    maxRecordBytes: 1024 * 1024,
    batchIntervalMs: undefined,
    sources: Array.from({ length: 4 }, (_, p) => `${INPUT}:${p}`),
    kafka: {
      connection: { brokers: testBrokers(), clientId: uniqueName('pool-test'), ssl: false, sasl: undefined },
      topics: { output, dlq: `${output}-dlq`, repartition: undefined, repartitionPartitions: 0 },
      logLevel: 'silent',
    },
    recordTimeoutMs: RECORD_TIMEOUT_MS,
    onCrash: (index, error) => crashes.push({ index, error }),
  });
  onCleanup(() => pool.close());
  return pool;
}

/** Records published to a topic so far (sum of its partitions' high watermarks). */
async function published(topic: string): Promise<number> {
  const offsets = await (await admin()).fetchTopicOffsets(topic);
  return offsets.reduce((n, o) => n + Number(o.high), 0);
}

const heldIds = (pool: WorkerPool): string[][] =>
  pool.held().map((tasks) => tasks.map((t) => `${t.topic}:${t.partition}`).sort());

describe('WorkerPool with two workers', () => {
  let pool: WorkerPool;
  let output: string;
  const crashes: Array<{ index: number; error: Error }> = [];

  beforeAll(async () => {
    output = await createTopic(uniqueName('pool-out'), 1);
    await createTopic(`${output}-dlq`, 1);
    pool = await createPool(2, output, crashes);
  });
  afterAll(async () => {
    await pool?.close();
  });

  test('READY: create resolves once every worker has loaded the job and connected its producer', () => {
    expect(pool.state).toBe('running');
    expect(pool.size).toBe(2);
    expect(pool.restarts).toBe(0);
    expect(pool.held()).toEqual([[], []]);
    expect(pool.busyMs()).toEqual([0, 0]);
    for (let p = 0; p < 8; p++) expect([0, 1]).toContain(pool.route(INPUT, p));
  });

  test('a batch is answered per partition once published, and held() shows the tasks each worker holds', async () => {
    const before = await published(output);
    const [first, second] = await Promise.all([
      run(pool, 0, work(0, 0, items(3)), work(2, 100, items(2))),
      run(pool, 1, work(1, 50, items(4))),
    ]);
    expect(first.partitions.map((r) => [r.partition, r.outputCount, r.commit])).toEqual([
      [0, 3, { offset: 3, metadata: null }],
      [2, 2, { offset: 102, metadata: null }],
    ]);
    expect(second.partitions.map((r) => [r.partition, r.outputCount, r.commit])).toEqual([
      [1, 4, { offset: 54, metadata: null }],
    ]);
    // Answered only once Kafka acknowledged them: all 9 are on the output topic already.
    expect((await published(output)) - before).toBe(9);
    expect(pool.held()).toEqual([
      [
        { topic: INPUT, partition: 0, kind: 'stateless', openWindows: 0 },
        { topic: INPUT, partition: 2, kind: 'stateless', openWindows: 0 },
      ],
      [{ topic: INPUT, partition: 1, kind: 'stateless', openWindows: 0 }],
    ]);
    expect(pool.busyMs().every((ms) => ms > 0)).toBe(true);
  });

  test('dropAll forgets the partitions on every worker, and only those', async () => {
    await pool.dropAll([
      { topic: INPUT, partition: 0 },
      { topic: INPUT, partition: 1 },
    ]);
    expect(heldIds(pool)).toEqual([['items:2'], []]);
  });

  test('a hang in user code: UserCodeTimeoutError after about recordTimeoutMs, naming the record; the worker is replaced', async () => {
    const started = performance.now();
    const error = await rejection(
      run(pool, 1, work(1, 10, items(2)), work(3, 20, [{ n: 0 }, { n: 1, act: 'hang' }, { n: 2 }])),
    );
    const elapsed = performance.now() - started;
    expect(error).toBeInstanceOf(UserCodeTimeoutError);
    expect(error.message).toContain(`items:3 offset 21`);
    expect(pool.suspectOf(error)).toEqual({ topic: INPUT, partition: 3, offset: 21, sub: -1 });
    expect(elapsed).toBeGreaterThanOrEqual(RECORD_TIMEOUT_MS);
    expect(elapsed).toBeLessThan(RECORD_TIMEOUT_MS + 2 * WATCHDOG_MS + 1_000);
    expect(pool.restarts).toBe(1);
    expect(crashes.map((c) => [c.index, c.error])).toEqual([[1, error]]);
    expect(pool.held()[1]).toEqual([]); // the new thread holds nothing yet

    // The replacement takes the next batch on that index (it queues until the worker is READY).
    const again = await run(pool, 1, work(3, 20, [{ n: 0 }], { committedOffset: 20, metadata: null }));
    expect(again.partitions.map((r) => [r.partition, r.commit?.offset])).toEqual([[3, 21]]);
    expect(heldIds(pool)).toEqual([['items:2'], ['items:3']]);
    expect(pool.state).toBe('running');
  });

  test('process.exit in user code: WorkerCrashedError naming the record; the worker is replaced', async () => {
    const error = await rejection(run(pool, 0, work(2, 102, [{ n: 0 }, { n: 1 }, { n: 2, act: 'exit' }])));
    expect(error).toBeInstanceOf(WorkerCrashedError);
    expect(pool.suspectOf(error)).toEqual({ topic: INPUT, partition: 2, offset: 104, sub: -1 });
    expect(pool.restarts).toBe(2);
    expect(crashes.map((c) => c.index)).toEqual([1, 0]);
    expect(crashes[1]!.error).toBe(error);

    const again = await run(pool, 0, work(2, 102, items(2), { committedOffset: 102, metadata: null }));
    expect(again.partitions[0]!.commit).toEqual({ offset: 104, metadata: null });
    expect(heldIds(pool)).toEqual([['items:2'], ['items:3']]);
  });

  test('no suspect for an error the pool did not raise', () => {
    expect(pool.suspectOf(new Error('elsewhere'))).toBeUndefined();
    expect(pool.suspectOf('not an error')).toBeUndefined();
  });

  test('close() twice is safe; afterwards batches are refused', async () => {
    await Promise.all([pool.close(), pool.close()]);
    expect(pool.state).toBe('closed');
    await pool.close();
    const refused = await rejection(run(pool, 0, work(0, 0, items(1))));
    expect(refused).toBeInstanceOf(IllegalStateError);
    expect(pool.restarts).toBe(2); // closing is no crash
  });
});

describe('WorkerPool: publishing is never timed', () => {
  test('a publish slower than recordTimeoutMs (its topic does not exist yet) is waited for, not killed', async () => {
    const output = uniqueName('pool-late-out');
    const pool = await createPool(1, output);
    let settled = false;
    const batch = run(pool, 0, work(0, 0, items(3))).finally(() => (settled = true));
    // The worker is publishing (its producer retries the missing topic) for several timeouts.
    await new Promise((resolve) => setTimeout(resolve, 4 * RECORD_TIMEOUT_MS));
    expect(settled).toBe(false);
    expect(pool.restarts).toBe(0);
    await createTopic(output, 1);
    const answer = await batch;
    expect(answer.partitions[0]!.commit).toEqual({ offset: 3, metadata: null });
    expect(answer.publishMs).toBeGreaterThan(4 * RECORD_TIMEOUT_MS - 100);
    expect(pool.restarts).toBe(0);
    await pool.close();
  });
});

describe('WorkerPool: start-up', () => {
  test('a job that throws while loading: create rejects with JobLoadError', async () => {
    const error = await rejection(
      WorkerPool.create({
        size: 1,
        jobPath: path.join(root, 'test/fixtures/jobs/throws-on-load.ts'),
        maxRecordBytes: 1024,
        batchIntervalMs: undefined,
        sources: [],
        kafka: {
          connection: { brokers: testBrokers(), clientId: 'pool-test', ssl: false, sasl: undefined },
          topics: { output: 'out', dlq: 'dlq', repartition: undefined, repartitionPartitions: 0 },
          logLevel: 'silent',
        },
        recordTimeoutMs: RECORD_TIMEOUT_MS,
      }),
    );
    expect(error).toBeInstanceOf(JobLoadError);
    expect(error.message).toContain('boom while loading the job module');
  });
});

describe('WorkerPool: a replacement that cannot start', () => {
  test('batches for its index fail at once instead of waiting for a worker that is gone', async () => {
    // A job that loads once: the replacement of its first worker fails to start.
    const dir = mkdtempSync(path.join(tmpdir(), 'sluice-pool-'));
    onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
    const jobPath = path.join(dir, 'job.mjs');
    writeFileSync(
      jobPath,
      `import { existsSync, writeFileSync } from 'node:fs';
const marker = new URL('./loaded', import.meta.url);
if (existsSync(marker)) throw new Error('this job loads only once');
writeFileSync(marker, '');
export default {
  name: 'loads-once',
  input: { topics: ['items'] },
  pipeline: (s) => s.map((v) => { if (v.act === 'exit') process.exit(1); return v; }),
  output: { topic: 'out' },
};
`,
    );
    const output = await createTopic(uniqueName('pool-once-out'), 1);
    const crashes: Array<{ index: number; error: Error }> = [];
    const pool = await WorkerPool.create({
      size: 1,
      jobPath,
      maxRecordBytes: 1024 * 1024,
      batchIntervalMs: undefined,
      sources: [`${INPUT}:0`],
      kafka: {
        connection: { brokers: testBrokers(), clientId: uniqueName('pool-test'), ssl: false, sasl: undefined },
        topics: { output, dlq: `${output}-dlq`, repartition: undefined, repartitionPartitions: 0 },
        logLevel: 'silent',
      },
      recordTimeoutMs: RECORD_TIMEOUT_MS,
      onCrash: (index, error) => crashes.push({ index, error }),
    });
    onCleanup(() => pool.close());
    expect(await rejection(run(pool, 0, work(0, 0, [{ n: 0, act: 'exit' }])))).toBeInstanceOf(WorkerCrashedError);
    await waitFor('the replacement to fail', () => (crashes.length >= 2 ? true : undefined), 10_000);
    expect(crashes[1]!.error).toBeInstanceOf(JobLoadError);

    const next = run(pool, 0, work(0, 0, items(1)));
    const outcome = await Promise.race([
      next.then(
        () => 'answered',
        (error: unknown) => error,
      ),
      new Promise((resolve) => setTimeout(() => resolve('no answer'), 3_000)),
    ]);
    expect(outcome).toBeInstanceOf(WorkerCrashedError);
    expect((outcome as Error).message).toContain('this job loads only once');
    await pool.close();
  });
});
