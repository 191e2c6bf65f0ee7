/**
 * One batch (BatchRun) against fakes: which partitions it packs and how (only those whose task is
 * restored), what it commits when a worker or the commit fails (nothing a worker committed in its
 * transaction), and that a rebalance while it runs commits nothing.
 */
import { describe, expect, test } from '@jest/globals';
import { BatchFailedError } from '../../src/errors.ts';
import { type JobPlan } from '../../src/job/plan.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { partitionId } from '../../src/pool/protocol.ts';
import { BufferQueue } from '../../src/queue/buffer-queue.ts';
import { BatchRun } from '../../src/scheduler/batch-run.ts';
import { PartitionTable } from '../../src/scheduler/partition-table.ts';
import { PoisonPills } from '../../src/scheduler/poison-pills.ts';
import { RepartitionPurger } from '../../src/scheduler/repartition-purger.ts';
import {
  answerFor,
  deferred,
  FakeAdmin,
  FakePool,
  FakeReceiver,
  ids,
  offsetsOf,
  plans,
  silent,
  tp,
  TOPIC,
  type TP,
} from './fakes.ts';

interface Setup {
  plan?: JobPlan;
  partitions: TP[];
  workers?: number;
  maxBatchRecords?: number;
  purger?: boolean;
  /** The tasks were restored on their workers (what the scheduler does before any batch); default true. */
  restored?: boolean;
}

async function setup({
  plan = plans.stateless(),
  partitions,
  workers = 2,
  maxBatchRecords = 1_000,
  purger,
  restored = true,
}: Setup) {
  const queue = new BufferQueue({ maxRecords: 100_000, maxBytes: 100_000_000 });
  const admin = new FakeAdmin();
  const receiver = new FakeReceiver(queue, admin);
  const pool = new FakePool(workers);
  const table = new PartitionTable(plan, 'group', admin.asAdmin());
  const poison = new PoisonPills();
  const metrics = new Metrics();
  table.assign({ epoch: 1, partitions });
  queue.setPartitions(partitions.map((p) => partitionId(p.topic, p.partition)));
  await table.loadStarts();
  if (restored) for (const e of table.entries()) e.needsStart = false;
  const run = new BatchRun({
    maxBatchRecords,
    queue,
    receiver: receiver.asReceiver(),
    pool: pool.asPool(),
    table,
    poison,
    purger:
      purger && plan.repartitionTopic
        ? new RepartitionPurger(admin.asAdmin(), plan.repartitionTopic, silent, 0)
        : undefined,
    metrics,
  });
  const batch = () => run.run(Date.now(), Date.now());
  return { queue, admin, receiver, pool, table, poison, metrics, run, batch };
}

const range = (from: number, to: number): number[] => Array.from({ length: to - from }, (_, i) => from + i);

describe('BatchRun: packing', () => {
  test('nothing buffered and nothing that ticks: no batch, no worker asked', async () => {
    const s = await setup({ partitions: [tp(0), tp(1)] });
    const outcome = await s.batch();
    expect(outcome).toEqual({ info: undefined, backlogged: false, wroteRepartition: false });
    expect(s.pool.calls).toEqual([]);
  });

  test('stateless: only partitions with records, in assignment order, their records in offset order', async () => {
    const s = await setup({ partitions: [tp(3), tp(1), tp(2), tp(0)], workers: 1 });
    s.receiver.deliver(tp(1), range(0, 4));
    s.receiver.deliver(tp(0), range(10, 12));
    s.receiver.deliver(tp(1), range(4, 6));
    const outcome = await s.batch();
    expect(outcome.info).toMatchObject({ id: 1, records: 8, inputRecords: 8, outcome: 'ok' });
    expect(s.pool.calls).toHaveLength(1);
    const works = s.pool.works();
    expect(works.map((w) => [w.partition, offsetsOf(w), w.count])).toEqual([
      [1, range(0, 6), 6],
      [0, [10, 11], 2],
    ]);
    expect(s.table.get(TOPIC, 1)!.position).toBe(6);
    expect(s.table.get(TOPIC, 0)!.position).toBe(12);
    // Nothing cut from partition 2: its position is still where fetching starts (no commit: the start).
    expect(s.table.get(TOPIC, 2)!.position).toBe(0);
  });

  test('each worker gets its own partitions (the pool routes), in one request', async () => {
    const s = await setup({ partitions: [tp(0), tp(1), tp(2), tp(3)], workers: 2 });
    for (const p of [0, 1, 2, 3]) s.receiver.deliver(tp(p), [0]);
    await s.batch();
    const byWorker = new Map(s.pool.calls.map((c) => [c.worker, c.batch.partitions.map((w) => w.partition)]));
    expect(byWorker).toEqual(
      new Map([
        [0, [0, 2]],
        [1, [1, 3]],
      ]),
    );
    const batchIds = new Set(s.pool.calls.map((c) => c.batch.batchId));
    expect(batchIds).toEqual(new Set([1]));
  });

  test('a partition whose task is not restored yet takes part in no batch; its work never carries a start', async () => {
    const s = await setup({ partitions: [tp(0), tp(1)] });
    s.table.get(TOPIC, 1)!.needsStart = true; // e.g. its restore is still running
    s.receiver.deliver(tp(0), [0, 1]);
    s.receiver.deliver(tp(1), [0]);
    await s.batch();
    const first = s.pool.works();
    expect(first.map((w) => w.partition)).toEqual([0]);
    expect(first[0]).not.toHaveProperty('start');
    expect(s.table.get(TOPIC, 1)!.position).toBe(0); // not taken: fetched again once it is restored

    s.pool.calls.length = 0;
    s.table.get(TOPIC, 1)!.needsStart = false;
    s.receiver.refetch([{ ...tp(1), offset: 0 }]);
    s.receiver.deliver(tp(0), [2]);
    await s.batch();
    const second = s.pool.works();
    expect(second.map((w) => [w.partition, offsetsOf(w)])).toEqual([
      [0, [2]],
      [1, [0]],
    ]);
    for (const w of second) expect(w).not.toHaveProperty('start');
  });

  test('a batch leaves restoring to the scheduler: answered or failed, no entry changes whether it needs a start', async () => {
    const s = await setup({ partitions: [tp(0), tp(1)] });
    s.pool.behaviour = (call) =>
      call.worker === 1 ? Promise.reject(new Error('worker 1 crashed')) : Promise.resolve(answerFor(call.batch));
    s.receiver.deliver(tp(0), [0]);
    s.receiver.deliver(tp(1), [0]);
    const outcome = await s.batch();
    expect(ids(outcome.failure!.rewind)).toEqual(['in:1']);
    expect(s.table.get(TOPIC, 0)!.needsStart).toBe(false);
    expect(s.table.get(TOPIC, 1)!.needsStart).toBe(false); // the rewind marks it, not the batch
  });

  test('windowed: a partition ticks (empty) once its task is restored, not before', async () => {
    const s = await setup({ plan: plans.windowed(), partitions: [tp(0), tp(1)], restored: false });
    s.receiver.deliver(tp(0), [0]);
    expect(await s.batch()).toMatchObject({ info: undefined }); // nothing restored yet: nothing runs
    expect(s.pool.calls).toEqual([]);

    s.table.get(TOPIC, 0)!.needsStart = false;
    s.receiver.refetch([{ ...tp(0), offset: 0 }]);
    await s.batch();
    expect(s.pool.works().map((w) => [w.partition, offsetsOf(w)])).toEqual([[0, [0]]]);

    s.pool.calls.length = 0;
    const outcome = await s.batch(); // no records at all
    expect(outcome.info).toMatchObject({ records: 0 });
    const works = s.pool.works();
    expect(works.map((w) => [w.partition, w.count, offsetsOf(w)])).toEqual([[0, 0, []]]);
    expect(works[0]).not.toHaveProperty('start');
  });

  test('re-keyed: restored shuffle writers and readers tick without records; unrestored ones do not', async () => {
    const repartition = 'j-repartition';
    const s = await setup({ plan: plans.rekeyed(), partitions: [tp(0), tp(1), tp(0, repartition)], restored: false });
    expect(await s.batch()).toMatchObject({ info: undefined });
    for (const e of s.table.entries()) e.needsStart = false;
    await s.batch();
    const works = s.pool.works();
    expect(works.map((w) => `${w.topic}:${w.partition}`).sort()).toEqual(['in:0', 'in:1', `${repartition}:0`]);
    for (const w of works) expect(w.count).toBe(0);
  });

  test('partitions being rewound, without their start or not restored take part in no batch, and their cut records are not sent', async () => {
    const s = await setup({ partitions: [tp(0), tp(1), tp(2), tp(3)], workers: 1 });
    s.table.get(TOPIC, 1)!.rewinding = true;
    s.table.get(TOPIC, 2)!.start = undefined;
    s.table.get(TOPIC, 3)!.needsStart = true;
    for (const p of [0, 1, 2, 3]) s.receiver.deliver(tp(p), [0, 1]);
    await s.batch();
    expect(s.pool.works().map((w) => w.partition)).toEqual([0]);
    expect(s.table.get(TOPIC, 1)!.position).toBe(0); // its cut records were not taken
    expect(s.table.get(TOPIC, 3)!.position).toBe(0);
  });

  test('the poison list of a partition goes with its work, only once the record has two strikes', async () => {
    const s = await setup({ partitions: [tp(0), tp(1)] });
    const suspect = { topic: TOPIC, partition: 1, offset: 3, sub: -1 };
    s.poison.failed(suspect, 'SLUICE_USER_CODE_TIMEOUT', 'hung');
    s.receiver.deliver(tp(0), [0]);
    s.receiver.deliver(tp(1), [0]);
    await s.batch();
    for (const w of s.pool.works()) expect(w).not.toHaveProperty('poison');

    s.pool.calls.length = 0;
    s.poison.failed(suspect, 'SLUICE_USER_CODE_TIMEOUT', 'hung again');
    s.receiver.deliver(tp(0), [1]);
    s.receiver.deliver(tp(1), [1, 2, 3, 4]);
    await s.batch();
    const works = s.pool.works();
    expect(works.find((w) => w.partition === 0)).not.toHaveProperty('poison');
    expect(works.find((w) => w.partition === 1)!.poison).toEqual([
      { offset: 3, sub: -1, code: 'SLUICE_USER_CODE_TIMEOUT', message: 'hung again' },
    ]);
    // The batch got past offset 3: the record is settled.
    expect(s.poison.forPartition('in:1')).toBeUndefined();
  });
});

describe('BatchRun: caught up and backlogged', () => {
  test('caught up: nothing buffered or paused and read up to the high watermark while fetches are answered', async () => {
    const s = await setup({ partitions: [tp(0), tp(1)] });
    s.table.get(TOPIC, 0)!.highWatermark = 3;
    s.table.get(TOPIC, 1)!.highWatermark = 10; // more on the broker
    s.receiver.deliver(tp(0), [0, 1, 2]);
    s.receiver.deliver(tp(1), [0, 1, 2]);
    const outcome = await s.batch();
    const works = s.pool.works();
    expect(works.find((w) => w.partition === 0)!.caughtUp).toBe(true);
    expect(works.find((w) => w.partition === 1)!.caughtUp).toBe(false);
    expect(outcome.backlogged).toBe(true); // partition 1 read records and is behind
  });

  test('no partition is caught up while the brokers do not answer fetches', async () => {
    const s = await setup({ partitions: [tp(0)] });
    s.table.get(TOPIC, 0)!.highWatermark = 3;
    s.receiver.healthy = false;
    s.receiver.deliver(tp(0), [0, 1, 2]);
    const outcome = await s.batch();
    expect(s.pool.works()[0]!.caughtUp).toBe(false);
    expect(outcome.backlogged).toBe(true);

    s.receiver.healthy = true;
    s.pool.calls.length = 0;
    s.receiver.deliver(tp(0), [3]);
    s.table.get(TOPIC, 0)!.highWatermark = 4;
    expect((await s.batch()).backlogged).toBe(false);
    expect(s.pool.works()[0]!.caughtUp).toBe(true);
  });

  test('a partition with records left in the buffer is not caught up; a full cut is a backlog', async () => {
    const s = await setup({ partitions: [tp(0), tp(1)], maxBatchRecords: 4 });
    s.table.get(TOPIC, 0)!.highWatermark = 2;
    s.table.get(TOPIC, 1)!.highWatermark = 2;
    s.receiver.deliver(tp(0), [0, 1]);
    s.receiver.deliver(tp(1), [0, 1]);
    const full = await s.batch();
    expect(s.pool.works().every((w) => w.caughtUp)).toBe(true);
    expect(full.backlogged).toBe(true); // the cut held maxBatchRecords: more may be waiting

    s.pool.calls.length = 0;
    s.table.get(TOPIC, 0)!.highWatermark = 3;
    s.table.get(TOPIC, 1)!.highWatermark = 6;
    s.receiver.deliver(tp(0), [2]);
    s.receiver.deliver(tp(1), [2, 3, 4, 5]); // 5 buffered, 4 cut: one of partition 1's stays behind
    const behind = await s.batch();
    const works = s.pool.works();
    expect(works.map((w) => [w.partition, w.count, w.caughtUp])).toEqual([
      [0, 1, true],
      [1, 3, false],
    ]);
    expect(behind.backlogged).toBe(true);
  });

  test('a paused partition the receiver has not resumed is not caught up', async () => {
    const s = await setup({ partitions: [tp(0)] });
    s.receiver.resumeDrained = () => undefined; // still paused after the cut
    s.table.get(TOPIC, 0)!.highWatermark = 1;
    s.receiver.deliver(tp(0), [0]);
    s.queue.markPaused('in:0');
    await s.batch();
    expect(s.pool.works()[0]!.caughtUp).toBe(false);
  });
});

describe('BatchRun: failures and commits', () => {
  test('every partition answered: its commit offsets are committed and the purger is told', async () => {
    const repartition = 'j-repartition';
    const s = await setup({ plan: plans.rekeyed(), partitions: [tp(0), tp(0, repartition)], purger: true });
    s.receiver.deliver(tp(0), [0, 1, 2]);
    s.receiver.deliver(tp(0, repartition), [0, 1]);
    s.pool.behaviour = (call) => Promise.resolve(answerFor(call.batch));
    const outcome = await s.batch();
    expect(outcome.failure).toBeUndefined();
    expect(s.receiver.commits).toHaveLength(1);
    expect(s.receiver.lastCommitted()).toEqual(
      new Map([
        ['in:0', 3],
        [`${repartition}:0`, 2],
      ]),
    );
    await new Promise((resolve) => setImmediate(resolve));
    expect(s.admin.deleted).toEqual([{ topic: repartition, partitions: [{ partition: 0, offset: '2' }] }]);
  });

  test('a worker failure rewinds only that worker’s partitions, and the others’ commits go through', async () => {
    const s = await setup({ partitions: [tp(0), tp(1), tp(2), tp(3)], workers: 2 });
    const crash = s.pool.suspect(new Error('worker 1 exited'), { topic: TOPIC, partition: 3, offset: 1, sub: -1 });
    s.pool.behaviour = (call) => (call.worker === 1 ? Promise.reject(crash) : Promise.resolve(answerFor(call.batch)));
    for (const p of [0, 1, 2, 3]) s.receiver.deliver(tp(p), [0, 1]);
    const outcome = await s.batch();

    expect(s.receiver.commits).toHaveLength(1);
    expect(ids(s.receiver.commits[0]!)).toEqual(['in:0', 'in:2']);
    expect(s.receiver.lastCommitted()).toEqual(
      new Map([
        ['in:0', 2],
        ['in:2', 2],
      ]),
    );
    expect(outcome.failure).toBeDefined();
    const failure = outcome.failure!;
    expect(ids(failure.rewind)).toEqual(['in:1', 'in:3']);
    expect(failure.rewind).toEqual([s.table.get(TOPIC, 1), s.table.get(TOPIC, 3)]);
    expect(failure.error).toBeInstanceOf(BatchFailedError);
    expect((failure.error as BatchFailedError).errors).toEqual([crash]);
    expect(failure.suspects).toEqual([{ suspect: { topic: TOPIC, partition: 3, offset: 1, sub: -1 }, error: crash }]);
    expect(outcome.info).toMatchObject({ outputs: 4 }); // the answered partitions' outputs count
  });

  test('a failure the pool names no suspect for has none', async () => {
    const s = await setup({ partitions: [tp(0)] });
    s.pool.behaviour = () => Promise.reject(new Error('publish failed'));
    s.receiver.deliver(tp(0), [0]);
    const outcome = await s.batch();
    expect(outcome.failure?.suspects).toEqual([]);
    expect(ids(outcome.failure!.rewind)).toEqual(['in:0']);
    expect(s.receiver.commits).toEqual([]);
  });

  test('a commit failure rewinds all of the batch’s partitions', async () => {
    const s = await setup({ partitions: [tp(0), tp(1), tp(2), tp(3)], workers: 2 });
    const refused = new Error('commit refused: rebalance in progress');
    s.receiver.commitBehaviour = () => Promise.reject(refused);
    for (const p of [0, 1, 3]) s.receiver.deliver(tp(p), [0]);
    const outcome = await s.batch();
    expect(s.receiver.commits).toHaveLength(1); // it was tried
    expect(outcome.failure?.error).toBe(refused);
    expect(ids(outcome.failure!.rewind)).toEqual(['in:0', 'in:1', 'in:3']);
  });

  test('a commit failure after a worker failure rewinds every partition of the batch, suspects kept', async () => {
    const s = await setup({ partitions: [tp(0), tp(1)], workers: 2 });
    const hung = s.pool.suspect(new Error('hung'), { topic: TOPIC, partition: 1, offset: 0, sub: -1 });
    s.pool.behaviour = (call) => (call.worker === 1 ? Promise.reject(hung) : Promise.resolve(answerFor(call.batch)));
    s.receiver.commitBehaviour = () => Promise.reject(new Error('commit refused'));
    s.receiver.deliver(tp(0), [0]);
    s.receiver.deliver(tp(1), [0]);
    const outcome = await s.batch();
    expect(ids(outcome.failure!.rewind)).toEqual(['in:0', 'in:1']);
    expect(outcome.failure!.suspects.map((x) => x.error)).toEqual([hung]);
  });

  test('exactly-once: what a worker committed in its transaction is not committed again, but the purger hears of it', async () => {
    const repartition = 'j-repartition';
    const s = await setup({
      plan: plans.rekeyed(),
      partitions: [tp(0), tp(1), tp(0, repartition)],
      purger: true,
      workers: 1,
    });
    s.receiver.deliver(tp(0), [0, 1]);
    s.receiver.deliver(tp(1), [0]);
    s.receiver.deliver(tp(0, repartition), [0, 1, 2]);
    // in:1 was committed by the scheduler (at-least-once answer); the others in their transactions.
    s.pool.behaviour = (call) => {
      const answer = answerFor(call.batch);
      for (const r of answer.partitions) r.committed = !(r.topic === TOPIC && r.partition === 1);
      return Promise.resolve(answer);
    };
    const outcome = await s.batch();
    expect(outcome.failure).toBeUndefined();
    expect(s.receiver.commits).toEqual([[{ topic: TOPIC, partition: 1, offset: 1, metadata: null }]]);
    await new Promise((resolve) => setImmediate(resolve));
    expect(s.admin.deleted).toEqual([{ topic: repartition, partitions: [{ partition: 0, offset: '3' }] }]);
  });

  test('exactly-once: a batch whose commits were all transacted sends no commit request, even after a rebalance', async () => {
    const s = await setup({ partitions: [tp(0), tp(1)] });
    const gate = deferred();
    s.pool.behaviour = async (call) => {
      await gate.promise;
      const answer = answerFor(call.batch);
      for (const r of answer.partitions) r.committed = true;
      return answer;
    };
    s.receiver.deliver(tp(0), [0]);
    s.receiver.deliver(tp(1), [0]);
    const running = s.batch();
    s.receiver.epoch = 2;
    gate.resolve();
    const outcome = await running;
    expect(outcome.failure).toBeUndefined();
    expect(s.receiver.commits).toEqual([]);
  });

  test('nothing new to commit: no commit request', async () => {
    const s = await setup({ plan: plans.windowed(), partitions: [tp(0)] });
    s.receiver.deliver(tp(0), [0]);
    await s.batch();
    expect(s.receiver.commits).toHaveLength(1);
    await s.batch(); // a tick: the worker reports no new commit
    expect(s.pool.calls).toHaveLength(2);
    expect(s.receiver.commits).toHaveLength(1);
  });
});

describe('BatchRun: a rebalance during the batch', () => {
  test('the receiver’s epoch changed: nothing is committed', async () => {
    const s = await setup({ partitions: [tp(0), tp(1)] });
    const gate = deferred();
    s.pool.behaviour = async (call) => {
      await gate.promise;
      return answerFor(call.batch);
    };
    s.receiver.deliver(tp(0), [0, 1]);
    s.receiver.deliver(tp(1), [0]);
    const running = s.batch();
    s.receiver.epoch = 2; // the group rejoined; the scheduler hears of it just after
    gate.resolve();
    const outcome = await running;
    expect(s.receiver.commits).toEqual([]);
    expect(outcome.failure).toBeUndefined();
  });

  test('a new assignment meanwhile: nothing is committed and the new epoch’s partitions still need their start', async () => {
    const s = await setup({ plan: plans.windowed(), partitions: [tp(0), tp(1)] });
    const gate = deferred();
    s.pool.behaviour = async (call) => {
      await gate.promise;
      return answerFor(call.batch);
    };
    s.receiver.deliver(tp(0), [0, 1]);
    s.receiver.deliver(tp(1), [0]);
    const running = s.batch();
    s.receiver.epoch = 2;
    s.table.assign({ epoch: 2, partitions: [tp(0), tp(1)] });
    gate.resolve();
    await running;
    expect(s.receiver.commits).toEqual([]);
    // The old batch's answers are not this epoch's: the partitions are rebuilt from their commits.
    for (const p of [0, 1]) expect(s.table.get(TOPIC, p)).toMatchObject({ needsStart: true, position: undefined });
  });
});

describe('BatchRun: accounting', () => {
  test('skipped records and changelog records are counted', async () => {
    const s = await setup({ plan: plans.windowed(), partitions: [tp(0), tp(1)] });
    s.pool.behaviour = (call) => {
      const answer = answerFor(call.batch);
      for (const r of answer.partitions) {
        r.stats.skipped = r.partition === 0 ? 2 : 0;
        r.stats.changelog = 3;
      }
      return Promise.resolve(answer);
    };
    s.receiver.deliver(tp(0), [0, 1, 2]);
    s.receiver.deliver(tp(1), [0]);
    await s.batch();
    const skipped = await s.metrics.recordsSkipped.get();
    expect(skipped.values.map((v) => [v.labels, v.value])).toEqual([[{ topic: TOPIC, partition: '0' }, 2]]);
    expect((await s.metrics.changelogRecords.get()).values[0]!.value).toBe(6);
  });

  test('state entries per aggregating task’s partition; a stateless task has no state to show', async () => {
    const s = await setup({ plan: plans.windowed(), partitions: [tp(0), tp(1)] });
    s.pool.behaviour = (call) => {
      const answer = answerFor(call.batch);
      for (const r of answer.partitions) {
        r.stats.openWindows = r.partition === 0 ? 7 : 0;
        if (r.partition === 0) r.changelogPartition = 0; // partition 1 answers as a stateless task
      }
      return Promise.resolve(answer);
    };
    s.receiver.deliver(tp(0), [0, 1]);
    s.receiver.deliver(tp(1), [0]);
    await s.batch();
    const entries = await s.metrics.stateEntries.get();
    expect(entries.values.map((v) => [v.labels, v.value])).toEqual([[{ topic: TOPIC, partition: '0' }, 7]]);
  });

  test('records in per partition, outputs and the batch record', async () => {
    const s = await setup({ partitions: [tp(0), tp(1)] });
    s.receiver.deliver(tp(0), [0, 1, 2]);
    s.receiver.deliver(tp(1), [5]);
    const outcome = await s.batch();
    expect(outcome.info).toMatchObject({ records: 4, inputRecords: 4, outputs: 4, deadLettered: 0, outcome: 'ok' });
    const recordsIn = await s.metrics.recordsIn.get();
    const byPartition = Object.fromEntries(recordsIn.values.map((v) => [String(v.labels.partition), v.value]));
    expect(byPartition).toEqual({ '0': 3, '1': 1 });
    expect((await s.metrics.recordsOut.get()).values[0]!.value).toBe(4);
  });
});
