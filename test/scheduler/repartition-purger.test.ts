/** Purging the repartition topic: below committed offsets, at most once per interval, only forward. */
import { describe, expect, test } from '@jest/globals';
import { RepartitionPurger } from '../../src/scheduler/repartition-purger.ts';
import { deferred, FakeAdmin, silent, sleep } from './fakes.ts';

const TOPIC = 'j-repartition';
const at = (partition: number, offset: number, topic = TOPIC) => ({ topic, partition, offset });

function purger(intervalMs: number): { purger: RepartitionPurger; admin: FakeAdmin } {
  const admin = new FakeAdmin();
  return { purger: new RepartitionPurger(admin.asAdmin(), TOPIC, silent, intervalMs), admin };
}

describe('RepartitionPurger', () => {
  test('deletes below the committed offsets of the repartition topic only', async () => {
    const { purger: p, admin } = purger(0);
    p.committed([at(0, 10), at(1, 4), at(0, 99, 'in')]);
    await p.idle();
    expect(admin.deleted).toEqual([
      {
        topic: TOPIC,
        partitions: [
          { partition: 0, offset: '10' },
          { partition: 1, offset: '4' },
        ],
      },
    ]);
  });

  test('commits of other topics alone purge nothing', async () => {
    const { purger: p, admin } = purger(0);
    p.committed([at(0, 10, 'in')]);
    await p.idle();
    expect(admin.deleted).toEqual([]);
  });

  test('at most once per interval: commits in between are purged with the next one after it', async () => {
    const { purger: p, admin } = purger(300);
    p.committed([at(0, 10)]);
    await p.idle();
    p.committed([at(0, 20)]);
    p.committed([at(1, 5)]);
    await p.idle();
    expect(admin.deleted).toHaveLength(1);
    await sleep(350);
    p.committed([at(0, 30)]);
    await p.idle();
    expect(admin.deleted.map((d) => d.partitions)).toEqual([
      [{ partition: 0, offset: '10' }],
      [
        { partition: 0, offset: '30' },
        { partition: 1, offset: '5' },
      ],
    ]);
  });

  test('only forward: a partition already purged to an offset is not asked again for it or below', async () => {
    const { purger: p, admin } = purger(0);
    p.committed([at(0, 10), at(1, 10)]);
    await p.idle();
    p.committed([at(0, 10), at(1, 6)]); // a replay committed an older offset again
    await p.idle();
    expect(admin.deleted).toHaveLength(1);
    p.committed([at(0, 11)]);
    await p.idle();
    expect(admin.deleted[1]!.partitions).toEqual([{ partition: 0, offset: '11' }]);
  });

  test('one purge at a time; a failed purge is retried with the next commit after the interval', async () => {
    const { purger: p, admin } = purger(0);
    const gate = deferred();
    admin.beforeDelete = () => gate.promise;
    p.committed([at(0, 10)]);
    p.committed([at(0, 12)]); // one is in flight: not a second request
    expect(admin.deleted).toHaveLength(1);
    gate.reject(new Error('not the leader'));
    await p.idle();
    admin.beforeDelete = () => undefined;
    p.committed([at(0, 10)]);
    await p.idle();
    // The failed purge did not count: 10 is asked for again (a purged 10 would not be).
    expect(admin.deleted.map((d) => d.partitions)).toEqual([
      [{ partition: 0, offset: '10' }],
      [{ partition: 0, offset: '10' }],
    ]);
  });

  test('idle() resolves at once when nothing is in flight', async () => {
    const { purger: p } = purger(0);
    await expect(p.idle()).resolves.toBeUndefined();
  });
});
