/**
 * The worker pool with real worker threads and the shared broker (each worker connects its own
 * producer at start-up): the READY handshake, partitions opened and their tasks restored before their
 * batches (a worker refuses a batch for a partition it did not restore), batches answered and
 * published, the tasks each worker holds, the watchdog that replaces a worker hung in user code
 * (never one that is publishing; the replacement holds no task until restored), a worker that exits
 * in user code, and closing. At-least-once delivery: the worker's producer publishes, nothing is
 * committed by the workers.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { IllegalStateError, JobLoadError, UserCodeTimeoutError, WorkerCrashedError } from '../../src/errors.ts';
import { type PartitionWork, type RestoredTask, type WorkerKafka } from '../../src/pool/protocol.ts';
import { type BatchAnswer, WorkerPool } from '../../src/pool/worker-pool.ts';
import { RecordWriter } from '../../src/wire/record-codec.ts';
import { admin, createTopic, onCleanup, testBrokers, uniqueName, waitFor } from '../helpers.ts';
import { readTopic } from '../support/topics.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const JOB = path.join(root, 'test/fixtures/jobs/misbehaving-map.ts');
const INPUT = 'items';
const RECORD_TIMEOUT_MS = 400;
/** The watchdog looks every recordTimeoutMs / 4. */
const WATCHDOG_MS = RECORD_TIMEOUT_MS / 4;
const encoder = new TextEncoder();
type Item = { n: number; act?: 'hang' | 'exit' | 'oom' };

function work(partition: number, firstOffset: number, items: Item[]): PartitionWork {
  const writer = new RecordWriter();
  items.forEach((item, i) => writer.write(firstOffset + i, 1_000 + i, null, encoder.encode(JSON.stringify(item)), []));
  return { topic: INPUT, partition, records: writer.finish(), count: writer.count, caughtUp: true };
}

/** How the workers reach Kafka: by default a stateless job (no changelog), at-least-once. */
function kafkaFor(output: string, clientId = uniqueName('pool-test'), extra: Partial<WorkerKafka> = {}): WorkerKafka {
  return {
    connection: { brokers: testBrokers(), clientId, ssl: false, sasl: undefined },
    topics: { output, dlq: `${output}-dlq`, repartition: undefined, repartitionPartitions: 0, changelog: undefined },
    logLevel: 'silent',
    groupId: 'pool-test',
    delivery: 'at-least-once',
    transactionTimeoutMs: 10_000,
    ...extra,
  };
}

/** Opens and restores partitions (partition, committed offset) on a worker, as the scheduler does first. */
async function prepare(
  pool: WorkerPool,
  worker: number,
  partitions: Array<[number, number | null]>,
  topic = INPUT,
): Promise<RestoredTask[]> {
  await pool.open(
    worker,
    partitions.map(([partition]) => ({ topic, partition })),
  );
  return pool.restore(
    worker,
    partitions.map(([partition, committedOffset]) => ({
      topic,
      partition,
      start: { committedOffset, metadata: null },
    })),
  );
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
    heapBytes: 256 * 1024 * 1024,
    batchIntervalMs: undefined,
    sources: Array.from({ length: 4 }, (_, p) => `${INPUT}:${p}`),
    kafka: kafkaFor(output),
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

  test('restore builds the tasks from their committed positions; held() shows them before any batch', async () => {
    const [restored0, restored1] = await Promise.all([
      prepare(pool, 0, [
        [0, null],
        [2, 100],
      ]),
      prepare(pool, 1, [[1, 50]]),
    ]);
    // A stateless job has no changelog to read: nothing read, each task at its committed offset.
    expect(restored0.map((r) => [r.topic, r.partition, r.records, r.position])).toEqual([
      [INPUT, 0, 0, null],
      [INPUT, 2, 0, 100],
    ]);
    expect(restored1.map((r) => [r.partition, r.records, r.position])).toEqual([[1, 0, 50]]);
    for (const r of [...restored0, ...restored1]) expect(r.ms).toBeGreaterThanOrEqual(0);
    expect(heldIds(pool)).toEqual([['items:0', 'items:2'], ['items:1']]);
  });

  test('a batch is answered per partition once published, and held() shows the tasks each worker holds', async () => {
    const before = await published(output);
    const [first, second] = await Promise.all([
      // Partition 2 was restored at 100: the two records below it are skipped.
      run(pool, 0, work(0, 0, items(3)), work(2, 98, items(4))),
      run(pool, 1, work(1, 50, items(4))),
    ]);
    expect(first.partitions.map((r) => [r.partition, r.outputCount, r.stats.skipped, r.commit])).toEqual([
      [0, 3, 0, { offset: 3, metadata: null }],
      [2, 2, 2, { offset: 102, metadata: null }],
    ]);
    expect(second.partitions.map((r) => [r.partition, r.outputCount, r.commit])).toEqual([
      [1, 4, { offset: 54, metadata: null }],
    ]);
    // At-least-once: the scheduler commits; no changelog for a stateless job.
    for (const r of [...first.partitions, ...second.partitions]) {
      expect(r.committed).toBe(false);
      expect(r.changelogPartition).toBeNull();
    }
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

  test('a batch for a partition the worker did not restore fails, and the worker stays', async () => {
    const error = await rejection(run(pool, 0, work(0, 3, items(1))));
    expect(error).toBeInstanceOf(IllegalStateError);
    expect(error.message).toContain('items:0 has no task here');
    expect(pool.restarts).toBe(0);
    expect(heldIds(pool)).toEqual([['items:2'], []]);
  });

  test('a hang in user code: UserCodeTimeoutError after about recordTimeoutMs, naming the record; the worker is replaced', async () => {
    await prepare(pool, 1, [
      [1, 10],
      [3, 20],
    ]);
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

    // The replacement takes requests on that index (they queue until it is READY), but no batch for a
    // partition it has not restored: the scheduler prepares the partition again first.
    expect(await rejection(run(pool, 1, work(3, 20, [{ n: 0 }])))).toBeInstanceOf(IllegalStateError);
    expect(await prepare(pool, 1, [[3, 20]])).toEqual([expect.objectContaining({ partition: 3, position: 20 })]);
    const again = await run(pool, 1, work(3, 20, [{ n: 0 }]));
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

    await prepare(pool, 0, [[2, 102]]);
    const again = await run(pool, 0, work(2, 102, items(2)));
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

describe('WorkerPool: a worker that reaches its heap limit', () => {
  test('is replaced, with an error that names the limit and the record it was on', async () => {
    const output = await createTopic(uniqueName('pool-oom-out'), 1);
    const crashes: Array<{ index: number; error: Error }> = [];
    const pool = await WorkerPool.create({
      size: 1,
      jobPath: JOB,
      maxRecordBytes: 1024 * 1024,
      heapBytes: 48 * 1024 * 1024,
      batchIntervalMs: undefined,
      sources: [`${INPUT}:0`],
      kafka: kafkaFor(output),
      recordTimeoutMs: 60_000,
      onCrash: (index, error) => crashes.push({ index, error }),
    });
    onCleanup(() => pool.close());
    expect((await pool.heapStatistics())[0]!.heap_size_limit).toBeLessThan(80 * 1024 * 1024);
    await prepare(pool, 0, [[0, 0]]);
    const error = await rejection(run(pool, 0, work(0, 0, [{ n: 0 }, { n: 1, act: 'oom' }])));
    expect(error).toBeInstanceOf(WorkerCrashedError);
    expect(error.message).toMatch(/worker 0 ran out of memory: its heap reached SLUICE_WORKER_HEAP \(48 MiB\)/);
    expect(pool.suspectOf(error)).toEqual({ topic: INPUT, partition: 0, offset: 1, sub: -1 });
    expect(crashes.map((c) => c.error)).toEqual([error]);
    // The replacement works: the partition is prepared again and goes on.
    await waitFor('the replacement', async () => ((await pool.heapStatistics())[0] ? true : undefined), 10_000);
    await prepare(pool, 0, [[0, 0]]);
    const again = await run(pool, 0, work(0, 0, items(2)));
    expect(again.partitions[0]!.commit).toEqual({ offset: 2, metadata: null });
    await pool.close();
  });
});

describe('WorkerPool: publishing is never timed', () => {
  test('a publish slower than recordTimeoutMs (its topic does not exist yet) is waited for, not killed', async () => {
    const output = uniqueName('pool-late-out');
    const pool = await createPool(1, output);
    await prepare(pool, 0, [[0, null]]);
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
        heapBytes: 256 * 1024 * 1024,
        batchIntervalMs: undefined,
        sources: [],
        kafka: kafkaFor('out', 'pool-test'),
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
      heapBytes: 256 * 1024 * 1024,
      batchIntervalMs: undefined,
      sources: [`${INPUT}:0`],
      kafka: kafkaFor(output),
      recordTimeoutMs: RECORD_TIMEOUT_MS,
      onCrash: (index, error) => crashes.push({ index, error }),
    });
    onCleanup(() => pool.close());
    await prepare(pool, 0, [[0, null]]);
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
    // Preparing a partition there fails at once too.
    expect(await rejection(prepare(pool, 0, [[0, null]]))).toBeInstanceOf(WorkerCrashedError);
    await pool.close();
  });
});

describe.each(['at-least-once', 'exactly-once'] as const)(
  'WorkerPool: a windowed job’s state moves between workers through the changelog (%s)',
  (delivery) => {
    test('restored on another worker, the task goes on where the first left off; records it holds are skipped', async () => {
      const dir = mkdtempSync(path.join(tmpdir(), 'sluice-pool-'));
      onCleanup(async () => rmSync(dir, { recursive: true, force: true }));
      const jobPath = path.join(dir, 'windowed.mjs');
      // Its own input topic: exactly-once commits the input offsets in the transaction, so it must exist.
      const input = await createTopic(uniqueName('pool-win-in'), 4);
      writeFileSync(
        jobPath,
        `import { custom, tumbling } from '${pathToFileURL(path.join(root, 'src/index.ts')).href}';
// A sum that also keeps a Set of the values seen: the accumulator is not plain JSON.
export default {
  name: 'pool-windowed',
  input: { topics: ['${input}'] },
  eventTime: (v) => v.ts,
  pipeline: (s) =>
    s.window(tumbling('10s'), { idleTimeout: 0 }).aggregate(
      custom({
        init: () => ({ n: 0, seen: new Set() }),
        add: (a, v) => ({ n: a.n + v.n, seen: new Set([...a.seen, v.n]) }),
        merge: (a, b) => ({ n: a.n + b.n, seen: new Set([...a.seen, ...b.seen]) }),
        result: (a) => ({ n: a.n, distinct: a.seen.size }),
      }),
    ),
  output: { topic: 'out' },
};
`,
      );
      const output = await createTopic(uniqueName('pool-win-out'), 1);
      await createTopic(`${output}-dlq`, 1);
      const changelog = await createTopic(`${output}-changelog`, 4, { 'cleanup.policy': 'compact' });
      const groupId = uniqueName('pool-group');
      const pool = await WorkerPool.create({
        size: 2,
        jobPath,
        maxRecordBytes: 1024 * 1024,
        heapBytes: 256 * 1024 * 1024,
        batchIntervalMs: undefined,
        sources: Array.from({ length: 4 }, (_, p) => `${input}:${p}`),
        kafka: kafkaFor(output, uniqueName('pool-test'), {
          topics: { output, dlq: `${output}-dlq`, repartition: undefined, repartitionPartitions: 0, changelog },
          groupId,
          delivery,
        }),
        recordTimeoutMs: 10_000,
      });
      onCleanup(() => pool.close());
      const records = (first: number, values: Array<[n: number, ts: number]>): PartitionWork => {
        const writer = new RecordWriter();
        values.forEach(([n, ts], i) =>
          writer.write(first + i, 1, encoder.encode('k'), encoder.encode(JSON.stringify({ n, ts }))),
        );
        return { topic: input, partition: 2, records: writer.finish(), count: writer.count, caughtUp: true };
      };

      // Worker 0: nothing to restore yet; one batch leaves a window open, in the changelog.
      expect(await prepare(pool, 0, [[2, null]], input)).toEqual([
        expect.objectContaining({ topic: input, partition: 2, records: 0, position: null }),
      ]);
      const [first] = (
        await run(
          pool,
          0,
          records(0, [
            [1, 1_000],
            [2, 2_000],
            [2, 3_000],
          ]),
        )
      ).partitions;
      expect(first).toMatchObject({
        outputCount: 0,
        changelogPartition: 2, // the third input partition
        commit: { offset: 3, metadata: null },
        committed: delivery === 'exactly-once', // committed with its transaction, or by the scheduler
      });
      expect(first!.stats).toMatchObject({ openWindows: 1, changelog: 2 });
      // Exactly-once: the input offset reached the group with the transaction (visible once the broker
      // has written the transaction's markers); at-least-once: the worker commits nothing.
      const expected = delivery === 'exactly-once' ? '3' : '-1';
      const groupOffset = async (): Promise<string | undefined> => {
        const answer = await (await admin()).fetchOffsets({ groupId, topics: [input] }).catch(() => undefined);
        return answer?.[0]?.partitions.find((p) => p.partition === 2)?.offset;
      };
      expect(
        await waitFor(
          'the group offset',
          async () => ((await groupOffset()) === expected ? expected : undefined),
          15_000,
        ),
      ).toBe(expected);

      // The partition moves to worker 1, as after a rebalance; in at-least-once its commit was lost.
      await pool.dropAll([{ topic: input, partition: 2 }]);
      const committed = delivery === 'exactly-once' ? 3 : null;
      const [restored] = await prepare(pool, 1, [[2, committed]], input);
      expect(restored).toMatchObject({ partition: 2, position: 3 });
      expect(restored!.records).toBeGreaterThanOrEqual(2);
      expect(heldIds(pool)).toEqual([[], [`${input}:2`]]);
      const from = committed ?? 0;
      const all: Array<[number, number]> = [
        [1, 1_000],
        [2, 2_000],
        [2, 3_000],
        [4, 4_000],
        [0, 50_000],
      ];
      const [second] = (await run(pool, 1, records(from, all.slice(from)))).partitions;
      expect(second!.stats).toMatchObject({ skipped: 3 - from, recordsIn: 2, openWindows: 1 });
      expect(second).toMatchObject({ outputCount: 1, commit: { offset: 5, metadata: null } });

      // The window's result counts every record once; its Set survived the changelog.
      // Read committed, and a while longer: a result written twice would show.
      const out = await readTopic(output, (r) => r.length >= 1);
      expect(out.map((r) => JSON.parse(r.value!.toString()) as unknown)).toEqual([
        { key: 'k', windowStart: 0, windowEnd: 10_000, value: { n: 9, distinct: 3 } },
      ]);
      await pool.close();
    });
  },
);
