/**
 * The partition table: entries per assignment (kind, batches without records), revoked entries,
 * committed starts, readiness (every task restored) and status (restore progress included).
 */
import { describe, expect, test } from '@jest/globals';
import { lagOf, PartitionTable } from '../../src/scheduler/partition-table.ts';
import { deferred, FakeAdmin, plans, tp, TOPIC } from './fakes.ts';

const REPARTITION = 'j-repartition';

function table(plan = plans.stateless(), admin = new FakeAdmin()): { table: PartitionTable; admin: FakeAdmin } {
  return { table: new PartitionTable(plan, 'group-1', admin.asAdmin()), admin };
}

describe('PartitionTable.assign', () => {
  test('one entry per assigned partition, in assignment order, starting from nothing', () => {
    const { table: t } = table();
    expect(t.epoch).toBe(-1);
    expect(t.assign({ epoch: 3, partitions: [tp(2), tp(0), tp(1)] })).toEqual([]);
    expect(t.epoch).toBe(3);
    expect(t.size).toBe(3);
    expect([...t.entries()].map((e) => e.id)).toEqual(['in:2', 'in:0', 'in:1']);
    expect(t.get(TOPIC, 0)).toEqual({
      id: 'in:0',
      topic: TOPIC,
      partition: 0,
      kind: 'stateless',
      withoutRecords: 'never',
      start: undefined,
      needsStart: true,
      restoring: undefined,
      rewinding: false,
      position: undefined,
      highWatermark: undefined,
      streamTime: null,
    });
    expect(t.get(TOPIC, 9)).toBeUndefined();
    expect(t.get('other', 0)).toBeUndefined();
  });

  test('the task kind and batches without records follow the plan and the topic', () => {
    const windowed = table(plans.windowed()).table;
    windowed.assign({ epoch: 1, partitions: [tp(0)] });
    expect(windowed.get(TOPIC, 0)).toMatchObject({ kind: 'windowed', withoutRecords: 'once-rebuilt' });

    const rekeyed = table(plans.rekeyed()).table;
    rekeyed.assign({ epoch: 1, partitions: [tp(0), tp(0, REPARTITION)] });
    expect(rekeyed.get(TOPIC, 0)).toMatchObject({ kind: 'shuffle-writer', withoutRecords: 'always' });
    expect(rekeyed.get(REPARTITION, 0)).toMatchObject({ kind: 'shuffle-reader', withoutRecords: 'once-rebuilt' });
  });

  test('a new epoch returns exactly the revoked entries and rebuilds the kept ones from nothing', async () => {
    const { table: t } = table();
    t.assign({ epoch: 1, partitions: [tp(0), tp(1), tp(2)] });
    await t.loadStarts();
    const kept = t.get(TOPIC, 1)!;
    kept.needsStart = false;
    kept.position = 40;
    kept.highWatermark = 50;
    kept.streamTime = 1234;
    const old0 = t.get(TOPIC, 0)!;

    const revoked = t.assign({ epoch: 2, partitions: [tp(1), tp(2), tp(3)] });
    expect(revoked).toEqual([old0]);
    expect(t.epoch).toBe(2);
    expect([...t.entries()].map((e) => e.id)).toEqual(['in:1', 'in:2', 'in:3']);
    const again = t.get(TOPIC, 1)!;
    expect(again).not.toBe(kept);
    // Only the last high watermark survives a rejoin: everything else is read again.
    expect(again).toMatchObject({
      start: undefined,
      needsStart: true,
      position: undefined,
      highWatermark: 50,
      streamTime: null,
    });
    expect(t.ready).toBe(false);
  });
});

describe('PartitionTable.loadStarts', () => {
  test('reads committed offsets and metadata; no commit (-1) and a partition the answer lacks start from null', async () => {
    const admin = new FakeAdmin(2); // answers partitions 0 and 1 only
    admin.committed.set('in:1', 17);
    const { table: t } = table(plans.stateless(), admin);
    t.assign({ epoch: 1, partitions: [tp(0), tp(1), tp(5)] });
    expect(t.ready).toBe(false);
    expect(await t.loadStarts()).toBe(true);
    expect(admin.fetchOffsetsCalls).toBe(1);
    expect(t.get(TOPIC, 0)!.start).toEqual({ committedOffset: null, metadata: null });
    expect(t.get(TOPIC, 1)!.start).toEqual({ committedOffset: 17, metadata: 'm1' });
    expect(t.get(TOPIC, 5)!.start).toEqual({ committedOffset: null, metadata: null });
    // Read, but not ready: the tasks are built and restored from these starts first.
    expect([...t.entries()].every((e) => e.needsStart)).toBe(true);
    expect(t.ready).toBe(false);
    for (const e of t.entries()) e.needsStart = false;
    expect(t.ready).toBe(true);
  });

  test('also reads the end offsets: a partition no fetch brought a record to still has a high watermark and a position', async () => {
    const admin = new FakeAdmin();
    admin.committed.set('in:1', 17);
    admin.ends.set('in:0', { low: 3, high: 3 }); // empty, never written to since offset 3
    admin.ends.set('in:1', { low: 0, high: 25 });
    const earliest = table(plans.rekeyed(), admin).table;
    earliest.assign({ epoch: 1, partitions: [tp(0), tp(1)] });
    await earliest.loadStarts();
    // in:0: no commit, starts at its low offset, which is its end: caught up with nothing to read.
    expect(earliest.get(TOPIC, 0)).toMatchObject({ position: 3, highWatermark: 3 });
    // in:1: starts at its commit, 8 behind.
    expect(earliest.get(TOPIC, 1)).toMatchObject({ position: 17, highWatermark: 25 });
    const latest = new PartitionTable(plans.rekeyed(), 'group-1', admin.asAdmin(), 'latest');
    admin.ends.set('in:0', { low: 3, high: 9 });
    latest.assign({ epoch: 1, partitions: [tp(0)] });
    await latest.loadStarts();
    expect(latest.get(TOPIC, 0)).toMatchObject({ position: 9, highWatermark: 9 });
  });

  test('asks the admin for the group and each topic once', async () => {
    const admin = new FakeAdmin();
    const asked: unknown[] = [];
    const fetch = admin.fetchOffsets.bind(admin);
    admin.fetchOffsets = (request) => {
      asked.push(request);
      return fetch(request);
    };
    const { table: t } = table(plans.rekeyed(), admin);
    t.assign({ epoch: 1, partitions: [tp(0), tp(1), tp(0, REPARTITION)] });
    await t.loadStarts();
    expect(asked).toEqual([{ groupId: 'group-1', topics: [TOPIC, REPARTITION] }]);
  });

  test('by default only the partitions not read yet; with a list, only those', async () => {
    const admin = new FakeAdmin();
    const { table: t } = table(plans.stateless(), admin);
    t.assign({ epoch: 1, partitions: [tp(0), tp(1)] });
    await t.loadStarts([t.get(TOPIC, 0)!]);
    expect(t.get(TOPIC, 0)!.start).toBeDefined();
    expect(t.get(TOPIC, 1)!.start).toBeUndefined();

    admin.committed.set('in:0', 5);
    admin.committed.set('in:1', 9);
    await t.loadStarts();
    expect(t.get(TOPIC, 0)!.start).toEqual({ committedOffset: null, metadata: null }); // not read again
    expect(t.get(TOPIC, 1)!.start).toEqual({ committedOffset: 9, metadata: 'm1' });

    const calls = admin.fetchOffsetsCalls;
    expect(await t.loadStarts()).toBe(true); // nothing left to read: no request
    expect(admin.fetchOffsetsCalls).toBe(calls);
  });

  test('an answer that arrives after a new epoch belongs to no one: false, and the new entries stay unread', async () => {
    const admin = new FakeAdmin();
    admin.committed.set('in:0', 5);
    const gate = deferred();
    admin.beforeFetchOffsets = () => gate.promise;
    const { table: t } = table(plans.stateless(), admin);
    t.assign({ epoch: 1, partitions: [tp(0)] });
    const loading = t.loadStarts();
    t.assign({ epoch: 2, partitions: [tp(0)] });
    gate.resolve();
    expect(await loading).toBe(false);
    expect(t.get(TOPIC, 0)!.start).toBeUndefined();
  });

  test('a failed read leaves the partitions unread', async () => {
    const admin = new FakeAdmin();
    admin.beforeFetchOffsets = () => {
      throw new Error('broker unreachable');
    };
    const { table: t } = table(plans.stateless(), admin);
    t.assign({ epoch: 1, partitions: [tp(0)] });
    await expect(t.loadStarts()).rejects.toThrow('broker unreachable');
    expect(t.get(TOPIC, 0)!.start).toBeUndefined();
    expect(t.ready).toBe(false);
  });
});

describe('PartitionTable.ready and status', () => {
  test('not ready while any partition is being rewound, or its task is not restored', async () => {
    const { table: t } = table();
    t.assign({ epoch: 1, partitions: [tp(0), tp(1)] });
    await t.loadStarts();
    expect(t.ready).toBe(false);
    t.get(TOPIC, 0)!.needsStart = false;
    expect(t.ready).toBe(false);
    t.get(TOPIC, 1)!.needsStart = false;
    expect(t.ready).toBe(true);
    t.get(TOPIC, 1)!.rewinding = true;
    expect(t.ready).toBe(false);
    t.get(TOPIC, 1)!.rewinding = false;
    expect(t.ready).toBe(true);
    // Restored but without a start (being read again): not ready either.
    t.get(TOPIC, 0)!.start = undefined;
    expect(t.ready).toBe(false);
  });

  test('an empty assignment is ready', () => {
    const { table: t } = table();
    t.assign({ epoch: 1, partitions: [] });
    expect(t.ready).toBe(true);
  });

  test('status shows each partition with its lag, what the queue buffers for it and how far it restored', () => {
    const { table: t } = table(plans.windowed());
    t.assign({ epoch: 1, partitions: [tp(0), tp(1)] });
    const e0 = t.get(TOPIC, 0)!;
    e0.position = 40;
    e0.highWatermark = 55;
    e0.streamTime = 99;
    e0.rewinding = true;
    t.get(TOPIC, 1)!.restoring = { records: 300, end: 1_000 };
    expect(t.status((id) => (id === 'in:0' ? 7 : 0))).toEqual([
      {
        topic: TOPIC,
        partition: 0,
        kind: 'windowed',
        position: 40,
        highWatermark: 55,
        lag: 15,
        streamTime: 99,
        buffered: 7,
        rewinding: true,
        restoring: null,
      },
      {
        topic: TOPIC,
        partition: 1,
        kind: 'windowed',
        position: null,
        highWatermark: null,
        lag: null,
        streamTime: null,
        buffered: 0,
        rewinding: false,
        restoring: { records: 300, end: 1_000 },
      },
    ]);
  });

  test('lag is never negative, and unknown without both a position and a high watermark', () => {
    const { table: t } = table();
    t.assign({ epoch: 1, partitions: [tp(0)] });
    const e = t.get(TOPIC, 0)!;
    expect(lagOf(e)).toBeNull();
    e.position = 10;
    expect(lagOf(e)).toBeNull();
    e.highWatermark = 8;
    expect(lagOf(e)).toBe(0);
    e.position = undefined;
    expect(lagOf(e)).toBeNull();
  });
});
