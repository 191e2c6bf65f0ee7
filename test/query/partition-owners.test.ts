/**
 * Who owns a partition, from the consumer group (`partition-owners.ts`) with a fake admin: owners
 * read from each member's advertised address and assignment; cached until the group rebalances
 * (invalidate) or a miss, at most one describe at a time and one per `minRefreshMs`; a group that
 * is rebalancing, a partition nobody owns, a member that advertises nothing and a failing describe
 * each say why.
 */
import { describe, expect, test } from '@jest/globals';
import { AssignerProtocol, type GroupDescription } from 'kafkajs';
import pino from 'pino';
import { encodeAddress } from '../../src/kafka/member-address.ts';
import { PartitionOwners } from '../../src/query/partition-owners.ts';

function member(id: string, url: string | undefined, assignment: Record<string, number[]>) {
  return {
    memberId: id,
    clientId: 'sluice',
    clientHost: '/127.0.0.1',
    memberMetadata: AssignerProtocol.MemberMetadata.encode({
      version: 0,
      topics: Object.keys(assignment),
      userData: url ? encodeAddress(url) : Buffer.alloc(0),
    }),
    memberAssignment: AssignerProtocol.MemberAssignment.encode({ version: 0, assignment, userData: Buffer.alloc(0) }),
  };
}

/** An admin whose group is whatever `group` holds when asked; counts the describes. */
function fakeAdmin(initial: Partial<GroupDescription>) {
  const admin = {
    group: initial,
    describes: 0,
    fail: false,
    gate: undefined as Promise<void> | undefined,
    async describeGroups(groupIds: string[]) {
      admin.describes++;
      await admin.gate;
      if (admin.fail) throw new Error('coordinator not available');
      const group = {
        groupId: groupIds[0]!,
        protocol: 'RoundRobinAssigner',
        protocolType: 'consumer',
        state: 'Stable',
        members: [],
        ...admin.group,
      };
      return { groups: [group as GroupDescription] };
    },
  };
  return admin;
}

const logger = pino({ level: 'silent' });

describe('PartitionOwners', () => {
  test('reads owners once, caches them, and reads again after a rebalance', async () => {
    const admin = fakeAdmin({
      members: [member('m1', 'http://a:1', { in: [0, 2] }), member('m2', 'http://b:2', { in: [1] })],
    });
    let now = 0;
    const owners = new PartitionOwners(admin, 'g', logger, { now: () => now });
    expect(await owners.ownerOf('in', 0)).toEqual({ kind: 'owner', url: 'http://a:1' });
    expect(await owners.ownerOf('in', 1)).toEqual({ kind: 'owner', url: 'http://b:2' });
    expect(await owners.ownerOf('in', 2)).toEqual({ kind: 'owner', url: 'http://a:1' });
    expect(admin.describes).toBe(1);
    // The group moves partition 1 to m1; the cache does not know until told.
    admin.group = { members: [member('m1', 'http://a:1', { in: [0, 1, 2] })] };
    now += 10_000;
    expect(await owners.ownerOf('in', 1)).toEqual({ kind: 'owner', url: 'http://b:2' });
    owners.invalidate();
    expect(await owners.ownerOf('in', 1)).toEqual({ kind: 'owner', url: 'http://a:1' });
    expect(admin.describes).toBe(2);
  });

  test('a miss or a stale owner reads the group again, at most once per minRefreshMs; one describe at a time', async () => {
    const admin = fakeAdmin({ members: [member('m1', 'http://a:1', { in: [0] })] });
    let now = 1_000;
    const owners = new PartitionOwners(admin, 'g', logger, { now: () => now, minRefreshMs: 500 });
    expect(await owners.ownerOf('in', 1)).toEqual({ kind: 'unknown', reason: 'no replica is assigned in:1 yet' });
    expect(admin.describes).toBe(1);
    admin.group = { members: [member('m1', 'http://a:1', { in: [0] }), member('m2', 'http://b:2', { in: [1] })] };
    expect((await owners.ownerOf('in', 1)).kind).toBe('unknown'); // just read: not again yet
    expect(admin.describes).toBe(1);
    now += 500;
    expect(await owners.ownerOf('in', 1)).toEqual({ kind: 'owner', url: 'http://b:2' });
    expect(admin.describes).toBe(2);
    // The caller found http://a:1 no longer owns in:0.
    admin.group = { members: [member('m2', 'http://b:2', { in: [0, 1] })] };
    now += 500;
    expect(await owners.ownerOf('in', 0)).toEqual({ kind: 'owner', url: 'http://a:1' });
    expect(await owners.ownerOf('in', 0, { stale: true })).toEqual({ kind: 'owner', url: 'http://b:2' });
    expect(admin.describes).toBe(3);
    // Concurrent misses share one describe.
    let open!: () => void;
    admin.gate = new Promise((resolve) => (open = resolve));
    owners.invalidate();
    const answers = Promise.all([owners.ownerOf('in', 0), owners.ownerOf('in', 1), owners.ownerOf('in', 0)]);
    open();
    expect((await answers).map((a) => a.kind)).toEqual(['owner', 'owner', 'owner']);
    expect(admin.describes).toBe(4);
  });

  test('says why when there is no owner to ask', async () => {
    const admin = fakeAdmin({ state: 'PreparingRebalance', members: [member('m1', 'http://a:1', {})] });
    let now = 0;
    const owners = new PartitionOwners(admin, 'g', logger, { now: () => now });
    expect(await owners.ownerOf('in', 0)).toEqual({
      kind: 'unknown',
      reason: 'consumer group g is rebalancing (PreparingRebalance)',
    });
    admin.group = { state: 'Stable', members: [member('old', undefined, { in: [0] })] };
    now += 1_000;
    expect(await owners.ownerOf('in', 0)).toEqual({
      kind: 'unknown',
      reason: 'the replica that owns in:0 (member old) advertises no HTTP address (a version without queryable state)',
    });
    admin.fail = true;
    owners.invalidate();
    expect(await owners.ownerOf('in', 0)).toEqual({
      kind: 'unknown',
      reason: 'consumer group g could not be described',
    });
  });
});
