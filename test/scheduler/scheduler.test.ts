/**
 * The batch loop against fakes (pool, receiver over an in-memory log, admin with committed offsets)
 * and a real BufferQueue, Metrics and BatchHistory, with a short real batch interval: assigned
 * partitions are opened, their commits read and their tasks restored before any batch; failed
 * batches rewind what failed to the committed offsets (prepared again the same way), rewinds retry
 * until the broker answers, poison pills are found, rebalances commit nothing of the old epoch, and
 * the loop never dies silently.
 */
import { afterEach, describe, expect, test } from '@jest/globals';
import { FatalError, StateError } from '../../src/errors.ts';
import { type JobPlan } from '../../src/job/plan.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { partitionId } from '../../src/pool/protocol.ts';
import { BufferQueue } from '../../src/queue/buffer-queue.ts';
import { BatchHistory } from '../../src/scheduler/batch-history.ts';
import { Scheduler } from '../../src/scheduler/scheduler.ts';
import {
  answerFor,
  deferred,
  FakeAdmin,
  FakePool,
  FakeReceiver,
  ids,
  offsetsOf,
  packed,
  plans,
  restoredFor,
  silent,
  sleep,
  tp,
  TOPIC,
  until,
  type RunCall,
  type TP,
} from './fakes.ts';

const running: Scheduler[] = [];
afterEach(async () => {
  await Promise.all(running.splice(0).map((s) => s.stop()));
});

interface Options {
  plan?: JobPlan;
  workers?: number;
  startFrom?: 'earliest' | 'latest';
  batchIntervalMs?: number;
}

function harness({
  plan = plans.stateless(),
  workers = 2,
  startFrom = 'earliest',
  batchIntervalMs = 10,
}: Options = {}) {
  const queue = new BufferQueue({ maxRecords: 100_000, maxBytes: 100_000_000 });
  const admin = new FakeAdmin();
  const receiver = new FakeReceiver(queue, admin);
  const pool = new FakePool(workers);
  admin.log = pool.log; // one log: opens, reads of the commits, restores and batches in order
  const metrics = new Metrics();
  const history = new BatchHistory(1_000);
  const fatal: FatalError[] = [];
  const scheduler = new Scheduler({
    plan,
    groupId: 'group',
    startFrom,
    batchIntervalMs,
    maxBatchRecords: 10_000,
    queue,
    receiver: receiver.asReceiver(),
    pool: pool.asPool(),
    admin: admin.asAdmin(),
    metrics,
    history,
    logger: silent,
    onFatal: (error) => fatal.push(error),
  });
  running.push(scheduler);
  /** A group (re)join, as the receiver reports it: a new epoch, fetching from the committed offsets. */
  const assign = (epoch: number, partitions: TP[]): void => {
    receiver.epoch = epoch;
    receiver.held.clear();
    queue.setPartitions(partitions.map((p) => partitionId(p.topic, p.partition)));
    queue.clearAll();
    scheduler.onAssignment({ epoch, partitions });
  };
  /** Work sent for one partition, oldest first. */
  const worksOf = (partition: number, topic = TOPIC) =>
    pool.works().filter((w) => w.topic === topic && w.partition === partition);
  return { queue, admin, receiver, pool, metrics, history, fatal, scheduler, assign, worksOf };
}

/** A worker that fails the batch `times` times (its partitions only), then works. */
function failingWorker(worker: number, error: () => Error, times = 1): (call: RunCall) => Promise<never> | undefined {
  let left = times;
  return (call) => {
    if (call.worker !== worker || left <= 0) return undefined;
    left--;
    return Promise.reject(error());
  };
}

function behave(pool: FakePool, ...overrides: Array<(call: RunCall) => Promise<never> | undefined>): void {
  pool.behaviour = (call) => {
    for (const o of overrides) {
      const answer = o(call);
      if (answer) return answer;
    }
    return Promise.resolve(answerFor(call.batch));
  };
}

describe('Scheduler: the loop', () => {
  test('runs a batch per interval: records are processed, committed and recorded', async () => {
    const h = harness();
    h.assign(1, [tp(0), tp(1)]);
    expect(h.scheduler.state).toBe('idle');
    h.scheduler.start();
    expect(h.scheduler.state).toBe('running');
    h.receiver.deliver(tp(0), [0, 1, 2]);
    h.receiver.deliver(tp(1), [0]);
    await until('both committed', () => h.receiver.lastCommitted().size === 2);
    expect(h.receiver.lastCommitted()).toEqual(
      new Map([
        ['in:0', 3],
        ['in:1', 1],
      ]),
    );
    expect(h.scheduler.ready).toBe(true);
    expect(h.history.last).toMatchObject({ outcome: 'ok', records: 4 });
    expect(h.scheduler.partitions().map((p) => [p.partition, p.position, p.rewinding])).toEqual([
      [0, 3, false],
      [1, 1, false],
    ]);
    h.receiver.deliver(tp(0), [3]);
    await until('the next record committed', () => h.receiver.lastCommitted().get('in:0') === 4);
    expect(h.fatal).toEqual([]);
  });

  test('committed positions are read again and retried until the broker answers before any batch', async () => {
    const h = harness();
    h.admin.committed.set('in:0', 2);
    let failures = 2;
    h.admin.beforeFetchOffsets = () => {
      if (failures-- > 0) throw new Error('coordinator not available');
    };
    h.assign(1, [tp(0)]);
    h.receiver.deliver(tp(0), [2, 3]);
    h.scheduler.start();
    await until('a batch', () => h.pool.calls.length > 0);
    expect(h.admin.fetchOffsetsCalls).toBe(3);
    // Each attempt opens again (a failed one may have left nothing usable), then restores once.
    expect(h.pool.log.slice(0, 7)).toEqual([
      'open in:0',
      'fetchOffsets in',
      'open in:0',
      'fetchOffsets in',
      'open in:0',
      'fetchOffsets in',
      'restore in:0',
    ]);
    expect(h.pool.startsOf(0)).toEqual([{ committedOffset: 2, metadata: 'm0' }]);
    expect(offsetsOf(h.worksOf(0)[0]!)).toEqual([2, 3]);
  });

  test('an exception outside the batch (the queue’s cut throws) ends in onFatal with a FatalError and state failed', async () => {
    const h = harness();
    h.assign(1, [tp(0)]);
    h.queue.cut = () => {
      throw new TypeError('queue corrupted');
    };
    h.scheduler.start();
    await until('fatal', () => h.fatal.length > 0);
    expect(h.scheduler.state).toBe('failed');
    expect(h.fatal).toHaveLength(1);
    expect(h.fatal[0]).toBeInstanceOf(FatalError);
    expect(h.fatal[0]!.code).toBe('SLUICE_FATAL');
    expect(h.fatal[0]!.message).toContain('queue corrupted');
    expect(h.fatal[0]!.cause).toBeInstanceOf(TypeError);
    await sleep(50);
    expect(h.fatal).toHaveLength(1); // reported once: the loop is over, not spinning
    expect(h.pool.calls).toEqual([]);
  });

  test('a receiver that throws on hold (after a failed batch) is fatal too', async () => {
    const h = harness();
    h.assign(1, [tp(0)]);
    behave(
      h.pool,
      failingWorker(0, () => new Error('crashed')),
    );
    h.receiver.hold = () => {
      throw new Error('consumer gone');
    };
    h.receiver.deliver(tp(0), [0]);
    h.scheduler.start();
    await until('fatal', () => h.fatal.length > 0);
    expect(h.scheduler.state).toBe('failed');
    expect(h.fatal[0]!.message).toContain('consumer gone');
  });

  test('stop() finishes the running batch (published and committed) and runs no other', async () => {
    const h = harness();
    h.assign(1, [tp(0)]);
    const gate = deferred();
    h.pool.behaviour = async (call) => {
      await gate.promise;
      return answerFor(call.batch);
    };
    h.receiver.deliver(tp(0), [0, 1]);
    h.scheduler.start();
    await until('a batch running', () => h.pool.calls.length === 1);
    let stopped = false;
    const stopping = h.scheduler.stop().then(() => (stopped = true));
    await sleep(30);
    expect(stopped).toBe(false);
    expect(h.scheduler.state).toBe('stopping');
    h.receiver.deliver(tp(0), [2]);
    gate.resolve();
    await stopping;
    expect(h.scheduler.state).toBe('stopped');
    expect(h.receiver.lastCommitted().get('in:0')).toBe(2);
    await sleep(40);
    expect(h.pool.calls).toHaveLength(1);
  });

  test('stop() before start, or twice, is safe', async () => {
    const h = harness();
    await h.scheduler.stop();
    expect(h.scheduler.state).toBe('stopped');
    h.scheduler.start(); // stopped stays stopped
    expect(h.scheduler.state).toBe('stopped');
    await h.scheduler.stop();
  });

  test('caughtUp is false while the receiver’s fetches are not answered', async () => {
    const h = harness();
    h.assign(1, [tp(0)]);
    h.scheduler.onHighWatermark(TOPIC, 0, 2);
    h.receiver.healthy = false;
    h.receiver.deliver(tp(0), [0, 1]);
    h.scheduler.start();
    await until('a batch', () => h.pool.calls.length === 1);
    expect(h.worksOf(0)[0]!.caughtUp).toBe(false);
    h.receiver.healthy = true;
    h.scheduler.onHighWatermark(TOPIC, 0, 3);
    h.receiver.deliver(tp(0), [2]);
    await until('a second batch', () => h.pool.calls.length === 2);
    expect(h.worksOf(0)[1]!.caughtUp).toBe(true);
  });
});

describe('Scheduler: preparing assigned partitions', () => {
  test('each worker opens its partitions, then the commits are read, then the tasks restored, then batches run', async () => {
    const h = harness({ plan: plans.windowed(), workers: 2 });
    h.admin.committed.set('in:1', 4);
    h.assign(1, [tp(0), tp(1), tp(2)]);
    h.receiver.deliver(tp(0), [0]);
    h.receiver.refetch([{ ...tp(1), offset: 4 }]);
    h.receiver.deliver(tp(1), [4]);
    h.scheduler.start();
    await until('a batch', () => h.pool.calls.length > 0);
    // Fencing first: a previous owner's last transaction is settled before the commit is read.
    expect(h.pool.log.slice(0, 5)).toEqual([
      'open in:0,in:2',
      'open in:1',
      'fetchOffsets in',
      'restore in:0,in:2',
      'restore in:1',
    ]);
    expect(h.pool.log[5]).toMatch(/^batch /);
    expect(h.pool.opens.map((o) => o.worker)).toEqual([0, 1]);
    expect(h.pool.restores.map((r) => [r.worker, r.partitions])).toEqual([
      [
        0,
        [
          { ...tp(0), start: { committedOffset: null, metadata: null } },
          { ...tp(2), start: { committedOffset: null, metadata: null } },
        ],
      ],
      [1, [{ ...tp(1), start: { committedOffset: 4, metadata: 'm1' } }]],
    ]);
    // Work carries no start any more: the task was built by the restore.
    for (const w of h.pool.works()) expect(w).not.toHaveProperty('start');
    await until('ready', () => h.scheduler.ready);
    await sleep(30);
    expect(h.pool.restores).toHaveLength(2); // once per partition and epoch
  });

  test('while restoring: not ready, progress shown per partition and in total, no batch; then ready', async () => {
    const h = harness({ plan: plans.windowed(), workers: 1 });
    const gate = deferred();
    h.pool.restoreBehaviour = async (call) => {
      call.onProgress?.({ ...tp(0), records: 120, end: 500 });
      call.onProgress?.({ ...tp(1), records: 7, end: 10 });
      await gate.promise;
      return restoredFor(call);
    };
    h.assign(1, [tp(0), tp(1)]);
    h.receiver.deliver(tp(0), [0, 1]);
    h.scheduler.start();
    await until('restoring', () => h.pool.restores.length === 1);
    await sleep(30);
    expect(h.scheduler.ready).toBe(false);
    expect(h.scheduler.restoring()).toEqual({ partitions: 2, records: 127, end: 510 });
    expect(h.scheduler.partitions().map((p) => [p.partition, p.restoring])).toEqual([
      [0, { records: 120, end: 500 }],
      [1, { records: 7, end: 10 }],
    ]);
    expect((await h.metrics.restoringPartitions.get()).values[0]!.value).toBe(2);
    expect(h.pool.calls).toEqual([]);
    gate.resolve();
    await until('a batch', () => h.pool.calls.length > 0);
    expect(h.scheduler.restoring()).toEqual({ partitions: 0, records: 0, end: 0 });
    expect(h.scheduler.partitions().map((p) => p.restoring)).toEqual([null, null]);
    expect((await h.metrics.restoringPartitions.get()).values[0]!.value).toBe(0);
    expect(offsetsOf(h.worksOf(0)[0]!)).toEqual([0, 1]);
    await until('ready', () => h.scheduler.ready);
  });

  test('a restored position past the committed offset is where the partition is; restore metrics count it', async () => {
    const h = harness({ plan: plans.windowed(), workers: 1 });
    h.admin.committed.set('in:0', 3);
    h.pool.restoreBehaviour = (call) =>
      Promise.resolve(call.partitions.map((p) => ({ ...tp(p.partition), records: 40, ms: 250, position: 9 })));
    h.assign(1, [tp(0)]);
    h.scheduler.start();
    await until('ready', () => h.scheduler.ready);
    expect(h.scheduler.partitions()[0]!.position).toBe(9);
    const restored = await h.metrics.restoredRecords.get();
    expect(restored.values).toEqual([expect.objectContaining({ labels: { topic: TOPIC, partition: '0' }, value: 40 })]);
    const seconds = await h.metrics.restoreSeconds.get();
    expect(seconds.values.find((v) => v.metricName === 'sluice_state_restore_seconds_count')!.value).toBe(1);
  });

  test('a failed open or restore is retried from the open on; no batch runs before it succeeds', async () => {
    const h = harness({ workers: 1 });
    let openFailures = 1;
    h.pool.openBehaviour = () =>
      openFailures-- > 0 ? Promise.reject(new Error('transaction coordinator not available')) : Promise.resolve();
    let restoreFailures = 1;
    h.pool.restoreBehaviour = (call) =>
      restoreFailures-- > 0 ? Promise.reject(new Error('changelog unreadable')) : Promise.resolve(restoredFor(call));
    h.assign(1, [tp(0)]);
    h.receiver.deliver(tp(0), [0]);
    h.scheduler.start();
    await until('committed', () => h.receiver.lastCommitted().get('in:0') === 1);
    expect(h.pool.log.slice(0, 7)).toEqual([
      'open in:0', // fails
      'open in:0',
      'fetchOffsets in',
      'restore in:0', // fails
      'open in:0',
      'fetchOffsets in',
      'restore in:0',
    ]);
    expect(h.pool.log[7]).toBe('batch in:0');
    expect(h.fatal).toEqual([]);
  });

  test('a changelog holding another task’s state (StateError) stops the service: not retried', async () => {
    const h = harness({ plan: plans.windowed(), workers: 1 });
    h.pool.restoreBehaviour = () => Promise.reject(new StateError('changelog partition 0 holds the state of in:3'));
    h.assign(1, [tp(0)]);
    h.receiver.deliver(tp(0), [0]);
    h.scheduler.start();
    await until('fatal', () => h.fatal.length > 0);
    expect(h.scheduler.state).toBe('failed');
    expect(h.fatal[0]).toBeInstanceOf(FatalError);
    expect(h.fatal[0]!.cause).toBeInstanceOf(StateError);
    expect(h.fatal[0]!.message).toContain('holds the state of in:3');
    await sleep(40);
    expect(h.pool.restores).toHaveLength(1);
    expect(h.pool.calls).toEqual([]);
  });

  test('a rebalance during a restore: its answer belongs to no one, and the new epoch prepares again', async () => {
    const h = harness({ plan: plans.windowed(), workers: 1 });
    const gate = deferred();
    h.pool.restoreBehaviour = async (call) => {
      if (h.pool.restores.length === 1) await gate.promise;
      return restoredFor(call);
    };
    h.assign(1, [tp(0)]);
    h.scheduler.start();
    await until('restoring', () => h.pool.restores.length === 1);
    h.admin.committed.set('in:0', 6);
    h.assign(2, [tp(0)]);
    gate.resolve();
    await until('restored again', () => h.pool.restores.length === 2);
    await until('ready', () => h.scheduler.ready);
    expect(h.pool.startsOf(0)).toEqual([
      { committedOffset: null, metadata: null },
      { committedOffset: 6, metadata: 'm0' },
    ]);
    expect(h.pool.opens).toHaveLength(2);
    h.receiver.deliver(tp(0), [6]);
    await until('committed', () => h.receiver.lastCommitted().get('in:0') === 7);
  });
});

describe('Scheduler: failed batches rewind', () => {
  test('a worker failure rewinds only that worker’s partitions to their commits; the others’ commits go through', async () => {
    const h = harness({ workers: 2 });
    h.assign(1, [tp(0), tp(1), tp(2), tp(3)]);
    h.scheduler.start();
    for (const p of [0, 1, 2, 3]) h.receiver.deliver(tp(p), [0, 1]);
    await until('first batch committed', () => h.receiver.lastCommitted().size === 4);

    behave(
      h.pool,
      failingWorker(1, () => new Error('worker 1 exited')),
    );
    h.pool.calls.length = 0;
    for (const p of [0, 1, 2, 3]) h.receiver.deliver(tp(p), [2, 3]);
    await until('worker 1’s partitions replayed', () => h.receiver.lastCommitted().get('in:3') === 4);

    expect(h.receiver.holds).toHaveLength(1);
    expect(ids(h.receiver.holds[0]!)).toEqual(['in:1', 'in:3']);
    expect(h.receiver.seeks).toHaveLength(1);
    expect(h.receiver.seeks[0]!.map((s) => [s.partition, s.offset]).sort()).toEqual([
      [1, 2],
      [3, 2],
    ]);
    // Partitions 0 and 2 committed 4 in the failed batch; 1 and 3 replayed 2..3 with their state rebuilt.
    expect(h.receiver.lastCommitted()).toEqual(
      new Map([
        ['in:0', 4],
        ['in:1', 4],
        ['in:2', 4],
        ['in:3', 4],
      ]),
    );
    const replay = h.worksOf(1).at(-1)!;
    expect(offsetsOf(replay)).toEqual([2, 3]);
    // The failed partitions were restored again from their commits; the others were not touched.
    expect(h.pool.startsOf(1)).toEqual([
      { committedOffset: null, metadata: null },
      { committedOffset: 2, metadata: 'm1' },
    ]);
    expect(h.pool.startsOf(3)).toEqual([
      { committedOffset: null, metadata: null },
      { committedOffset: 2, metadata: 'm3' },
    ]);
    expect(h.pool.startsOf(0)).toHaveLength(1);
    expect(h.pool.startsOf(2)).toHaveLength(1);
    expect(h.pool.opens.slice(2).map((o) => ids(o.partitions))).toEqual([['in:1', 'in:3']]);
    expect(offsetsOf(h.worksOf(0).at(-1)!)).toEqual([2, 3]);
    expect(h.worksOf(0).filter((w) => offsetsOf(w).includes(2))).toHaveLength(1); // not replayed
    expect(h.history.recent().map((b) => b.outcome)).toContain('failed');
    expect((await h.metrics.resets.get()).values[0]!.value).toBe(1);
  });

  test('a commit failure rewinds every partition of the batch', async () => {
    const h = harness({ workers: 2 });
    h.assign(1, [tp(0), tp(1), tp(2)]);
    let refuse = 1;
    h.receiver.commitBehaviour = () => (refuse-- > 0 ? Promise.reject(new Error('commit refused')) : Promise.resolve());
    h.receiver.deliver(tp(0), [0]);
    h.receiver.deliver(tp(1), [0]);
    h.scheduler.start();
    await until(
      'replayed and committed',
      () => h.receiver.lastCommitted().size === 2 && h.receiver.commits.length >= 2,
    );
    expect(ids(h.receiver.holds[0]!)).toEqual(['in:0', 'in:1']);
    expect(ids(h.receiver.seeks[0]!)).toEqual(['in:0', 'in:1']);
    expect(h.receiver.seeks[0]!.map((s) => s.offset)).toEqual([0, 0]); // no commit yet: the topic's start
  });

  test('a rewind whose fetchOffsets fails is retried until it succeeds; meanwhile its partitions take part in no batch', async () => {
    const h = harness({ plan: plans.windowed(), workers: 2 });
    h.assign(1, [tp(0), tp(1)]);
    h.scheduler.start();
    h.receiver.deliver(tp(0), [0, 1]);
    h.receiver.deliver(tp(1), [0, 1]);
    await until('first batch committed', () => h.receiver.lastCommitted().size === 2);

    let failures = 2;
    h.admin.beforeFetchOffsets = () => {
      if (failures-- > 0) throw new Error('coordinator not available');
    };
    behave(
      h.pool,
      failingWorker(1, () => new Error('worker 1 exited')),
    );
    const fetchesBefore = h.admin.fetchOffsetsCalls;
    h.pool.calls.length = 0;
    h.receiver.deliver(tp(1), [2]);
    await until('rewind held', () => h.receiver.holds.length === 1);
    expect(h.scheduler.ready).toBe(false);
    expect(h.scheduler.partitions().find((p) => p.partition === 1)!.rewinding).toBe(true);
    const heldSince = h.pool.calls.length;
    // Records buffered for the held partition anyway must not reach a worker either.
    h.queue.push('in:1', packed([9]));
    await until('two failed reads', () => h.admin.fetchOffsetsCalls >= fetchesBefore + 2, 3_000);
    expect(h.receiver.seeks).toEqual([]);
    const whileHeld = h.pool.works().slice(heldSince);
    expect(whileHeld.length).toBeGreaterThan(0); // partition 0 ticks on
    expect(whileHeld.filter((w) => w.partition === 1)).toEqual([]);

    await until('rewound', () => h.receiver.seeks.length === 1, 3_000);
    expect(h.admin.fetchOffsetsCalls).toBe(fetchesBefore + 3);
    expect(h.receiver.seeks[0]).toEqual([{ topic: TOPIC, partition: 1, offset: 2 }]);
    await until('replayed', () => h.receiver.lastCommitted().get('in:1') === 3);
    // Since the failure, partition 1 was restored once, from its commit, and then replayed from there.
    expect(h.pool.startsOf(1)).toEqual([
      { committedOffset: null, metadata: null },
      { committedOffset: 2, metadata: 'm1' },
    ]);
    expect(offsetsOf(h.worksOf(1).at(-1)!)).toEqual([2]);
    expect(h.scheduler.ready).toBe(true);
  });

  test.each([
    ['earliest', 5],
    ['latest', 9],
  ] as const)('without a commit, a rewound partition starts at the topic’s %s offset', async (startFrom, offset) => {
    const h = harness({ startFrom, workers: 1 });
    h.admin.ends.set('in:0', { low: 5, high: 9 });
    h.assign(1, [tp(0)]);
    behave(
      h.pool,
      failingWorker(0, () => new Error('crashed')),
    );
    h.receiver.deliver(tp(0), [5, 6]);
    h.scheduler.start();
    await until('rewound', () => h.receiver.seeks.length === 1);
    expect(h.receiver.seeks[0]).toEqual([{ topic: TOPIC, partition: 0, offset }]);
  });

  test('two failures with the same suspect put the record on the next batch’s poison list for that partition', async () => {
    const h = harness({ workers: 2 });
    h.assign(1, [tp(0), tp(1)]);
    const suspect = { topic: TOPIC, partition: 1, offset: 1, sub: -1 };
    behave(
      h.pool,
      failingWorker(1, () => h.pool.suspect(new Error('worker 1 exited'), suspect), 2),
    );
    h.receiver.deliver(tp(0), [0, 1, 2]);
    h.receiver.deliver(tp(1), [0, 1, 2]);
    h.scheduler.start();
    await until('partition 1 got past its poison pill', () => h.receiver.lastCommitted().get('in:1') === 3, 5_000);
    const works = h.worksOf(1);
    expect(works.map((w) => w.poison)).toEqual([
      undefined,
      undefined,
      [{ offset: 1, sub: -1, code: 'SLUICE_WORKER_CRASHED', message: expect.stringContaining('worker 1 exited') }],
    ]);
    expect(h.worksOf(0).every((w) => w.poison === undefined)).toBe(true);
  });

  test('a failure with a different suspect starts the count over: no poison', async () => {
    const h = harness({ workers: 1 });
    h.assign(1, [tp(0)]);
    const suspects = [1, 2].map((offset) => ({ topic: TOPIC, partition: 0, offset, sub: -1 }));
    let n = 0;
    behave(h.pool, () => {
      const s = suspects[n++];
      return s ? Promise.reject(h.pool.suspect(new Error(`hung on ${s.offset}`), s)) : undefined;
    });
    h.receiver.deliver(tp(0), [0, 1, 2]);
    h.scheduler.start();
    await until('committed', () => h.receiver.lastCommitted().get('in:0') === 3, 5_000);
    expect(h.worksOf(0).map((w) => w.poison)).toEqual([undefined, undefined, undefined]);
  });
});

describe('Scheduler: rebalances', () => {
  test('revoked partitions are dropped on the workers: exactly the revoked, not the newly assigned', async () => {
    const h = harness();
    h.assign(1, [tp(0), tp(1), tp(2)]);
    expect(h.pool.dropped).toEqual([]); // nothing revoked on the first join
    h.assign(2, [tp(1), tp(2), tp(3), tp(4)]);
    expect(h.pool.dropped).toEqual([[tp(0)]]);
    h.assign(3, [tp(1), tp(2), tp(3), tp(4)]);
    expect(h.pool.dropped).toHaveLength(1); // same partitions: none revoked
    h.assign(4, [tp(4)]);
    expect(h.pool.dropped.map(ids)).toEqual([['in:0'], ['in:1', 'in:2', 'in:3']]);
    expect((await h.metrics.rebalances.get()).values[0]!.value).toBe(4);
    expect((await h.metrics.assignedPartitions.get()).values[0]!.value).toBe(1);
  });

  test('a rebalance during a batch commits nothing; the kept partitions are rebuilt from their commits', async () => {
    const h = harness({ plan: plans.windowed(), workers: 1 });
    h.assign(1, [tp(0), tp(1)]);
    h.scheduler.start();
    h.receiver.deliver(tp(0), [0, 1]);
    h.receiver.deliver(tp(1), [0, 1]);
    await until('first batch committed', () => h.receiver.lastCommitted().size === 2);
    const committedBefore = h.receiver.commits.length;

    const gate = deferred();
    h.pool.behaviour = async (call) => {
      await gate.promise;
      return answerFor(call.batch);
    };
    h.receiver.deliver(tp(0), [2, 3]);
    await until('a batch with the new records', () => h.worksOf(0).some((w) => offsetsOf(w).includes(2)));
    h.assign(2, [tp(0), tp(1)]);
    h.pool.behaviour = (call) => Promise.resolve(answerFor(call.batch));
    gate.resolve();
    await sleep(40);
    h.receiver.refetch([{ ...tp(0), offset: 2 }]); // the rejoined consumer fetches from the commit
    await until('committed again', () => h.receiver.lastCommitted().get('in:0') === 4);
    // Only commits of the new epoch: the old batch's 4 was not committed before the replay.
    const laterCommits = h.receiver.commits.slice(committedBefore);
    expect(laterCommits.flat().filter((o) => o.partition === 0)).toHaveLength(1);
    // The new epoch restored both partitions from their commits before its first batch.
    expect(h.pool.startsOf(0)).toEqual([
      { committedOffset: null, metadata: null },
      { committedOffset: 2, metadata: 'm0' },
    ]);
    const restoredAt = h.pool.log.lastIndexOf('restore in:0,in:1');
    const firstBatchAfter = h.pool.log.findIndex((l, i) => i > restoredAt && l.startsWith('batch'));
    expect(firstBatchAfter).toBeGreaterThan(restoredAt);
    expect(offsetsOf(h.worksOf(0).at(-1)!)).toEqual([2, 3]);
  });

  test('a batch that fails across a rebalance leaves no partition of the new epoch held', async () => {
    const h = harness({ workers: 1 });
    h.assign(1, [tp(0)]);
    const gate = deferred();
    h.pool.behaviour = async () => {
      await gate.promise;
      throw new Error('worker exited');
    };
    h.receiver.deliver(tp(0), [0, 1]);
    h.scheduler.start();
    await until('a batch running', () => h.pool.calls.length === 1);
    h.assign(2, [tp(0)]);
    h.pool.behaviour = (call) => Promise.resolve(answerFor(call.batch));
    gate.resolve();
    await sleep(40);
    // The new epoch reads partition 0 from its commit; nothing of the old batch may pause it for good.
    h.receiver.refetch([{ ...tp(0), offset: 0 }]);
    h.receiver.deliver(tp(0), [2]);
    await until('partition 0 processed in the new epoch', () => h.receiver.lastCommitted().get('in:0') === 3, 2_000);
    expect(h.receiver.held.size).toBe(0);
  });
});

describe('Scheduler: stopping during failures', () => {
  test('stop() while failed batches back off returns promptly', async () => {
    const h = harness({ workers: 1 });
    h.assign(1, [tp(0)]);
    behave(
      h.pool,
      failingWorker(0, () => new Error('crashed'), 1_000),
    );
    h.receiver.deliver(tp(0), [0]);
    h.scheduler.start();
    await until('two failed batches', () => h.pool.calls.length >= 2, 3_000);
    const started = performance.now();
    await h.scheduler.stop();
    expect(performance.now() - started).toBeLessThan(200);
    expect(h.scheduler.state).toBe('stopped');
  });

  test('stop() during a batch that fails again returns without waiting out the backoff', async () => {
    const h = harness({ workers: 1 });
    h.assign(1, [tp(0)]);
    const gate = deferred();
    let calls = 0;
    h.pool.behaviour = async () => {
      if (++calls >= 2) await gate.promise;
      throw new Error('crashed');
    };
    h.receiver.deliver(tp(0), [0]);
    h.scheduler.start();
    await until('the second failing batch running', () => h.pool.calls.length === 2, 3_000);
    const started = performance.now();
    const stopping = h.scheduler.stop();
    gate.resolve();
    await stopping;
    expect(performance.now() - started).toBeLessThan(200);
    expect(h.pool.calls).toHaveLength(2);
  });

  test('stop() while a rewind keeps failing returns promptly', async () => {
    const h = harness({ workers: 1 });
    h.assign(1, [tp(0)]);
    h.scheduler.start();
    await until('starts read', () => h.scheduler.ready);
    h.admin.beforeFetchOffsets = () => {
      throw new Error('coordinator not available');
    };
    behave(
      h.pool,
      failingWorker(0, () => new Error('crashed')),
    );
    h.receiver.deliver(tp(0), [0]);
    await until('rewind retrying', () => h.admin.fetchOffsetsCalls >= 4, 5_000);
    const started = performance.now();
    await h.scheduler.stop();
    expect(performance.now() - started).toBeLessThan(200);
  });
});
