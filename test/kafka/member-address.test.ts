/**
 * The group's assigner advertises each replica's HTTP address (`member-address.ts`): its assignment
 * is kafkajs's RoundRobin's, exactly, for several sets of members and topics (also when members'
 * metadata carries addresses, and when some members are of an older version without one); its
 * protocol keeps RoundRobin's name and version and carries the address; a group description reads
 * back every member's address and assignment.
 */
import { describe, expect, test } from '@jest/globals';
import { AssignerProtocol, PartitionAssigners, type Cluster, type GroupMember, type Logger } from 'kafkajs';
import { advertisingAssigner, decodeAddress, encodeAddress, membersOf } from '../../src/kafka/member-address.ts';

/** The cluster an assigner reads partition counts from. */
function clusterWith(partitions: Record<string, number>): Cluster {
  return {
    findTopicPartitionMetadata: (topic: string) =>
      Array.from({ length: partitions[topic] ?? 0 }, (_, partitionId) => ({ partitionId, leader: 0 })),
  } as unknown as Cluster;
}

const logger = {} as Logger;

function decoded(assignments: Array<{ memberId: string; memberAssignment: Buffer }>) {
  return Object.fromEntries(
    assignments.map((a) => [a.memberId, AssignerProtocol.MemberAssignment.decode(a.memberAssignment)]),
  );
}

describe('advertisingAssigner', () => {
  const cases: Array<{ name: string; topics: Record<string, number>; members: number; legacy?: number }> = [
    { name: 'one member, one topic', topics: { in: 8 }, members: 1 },
    { name: 'two members, input and repartition topics', topics: { in: 8, 'job-repartition': 8 }, members: 2 },
    { name: 'three members, topics of different sizes', topics: { a: 5, b: 3, c: 1 }, members: 3 },
    { name: 'more members than partitions', topics: { in: 2 }, members: 5 },
    { name: 'members of an older version among them', topics: { in: 12, other: 7 }, members: 4, legacy: 2 },
  ];
  for (const c of cases) {
    test(`assigns as kafkajs's RoundRobin: ${c.name}`, async () => {
      const cluster = clusterWith(c.topics);
      const topics = Object.keys(c.topics);
      const ours = advertisingAssigner('http://self:8080')({ cluster, groupId: 'g', logger });
      const roundRobin = PartitionAssigners.roundRobin({ cluster, groupId: 'g', logger });
      // Member ids in no particular order; each member's metadata as its own version would send it.
      const members: GroupMember[] = Array.from({ length: c.members }, (_, i) => {
        const memberId = `sluice-${(i * 7919) % 97}-${i}`;
        const assigner =
          i < (c.legacy ?? 0)
            ? roundRobin
            : advertisingAssigner(`http://replica-${i}:8080`)({ cluster, groupId: 'g', logger });
        return { memberId, memberMetadata: assigner.protocol({ topics }).metadata };
      });
      const expected = decoded(await roundRobin.assign({ members, topics }));
      expect(decoded(await ours.assign({ members, topics }))).toEqual(expected);
      // Every partition once, to some member.
      const assigned = Object.values(expected).flatMap((a) =>
        Object.entries(a!.assignment).flatMap(([t, ps]) => ps.map((p) => `${t}:${p}`)),
      );
      const all = Object.entries(c.topics).flatMap(([t, n]) => Array.from({ length: n }, (_, p) => `${t}:${p}`));
      expect(assigned.sort()).toEqual(all.sort());
    });
  }

  test("its protocol is RoundRobin's, with the address as user data", () => {
    const cluster = clusterWith({ in: 4 });
    const roundRobin = PartitionAssigners.roundRobin({ cluster, groupId: 'g', logger });
    const ours = advertisingAssigner('https://sluice-0.sluice.svc:8443/prefix')({ cluster, groupId: 'g', logger });
    expect([ours.name, ours.version]).toEqual([roundRobin.name, roundRobin.version]);
    const protocol = ours.protocol({ topics: ['in', 'job-repartition'] });
    expect(protocol.name).toBe('RoundRobinAssigner');
    const metadata = AssignerProtocol.MemberMetadata.decode(protocol.metadata)!;
    expect(metadata.version).toBe(roundRobin.version);
    expect(metadata.topics).toEqual(['in', 'job-repartition']);
    expect(decodeAddress(metadata.userData)).toBe('https://sluice-0.sluice.svc:8443/prefix');
  });
});

describe('addresses in a group description', () => {
  test('decodeAddress reads what encodeAddress wrote, and nothing from foreign or empty user data', () => {
    expect(decodeAddress(encodeAddress('http://10.0.0.7:8080'))).toBe('http://10.0.0.7:8080');
    for (const foreign of [Buffer.alloc(0), Buffer.from('not json'), Buffer.from('{"v":1}'), Buffer.from('null')]) {
      expect(decodeAddress(foreign)).toBeUndefined();
    }
    expect(decodeAddress(null)).toBeUndefined();
  });

  test("membersOf: each member's address and assignment; a member without one advertises none", () => {
    const meta = (userData?: Buffer) =>
      AssignerProtocol.MemberMetadata.encode({ version: 0, topics: ['in'], userData: userData ?? Buffer.alloc(0) });
    const assign = (assignment: Record<string, number[]>) =>
      AssignerProtocol.MemberAssignment.encode({ version: 0, assignment, userData: Buffer.alloc(0) });
    const members = membersOf({
      members: [
        {
          memberId: 'm1',
          clientId: 'c',
          clientHost: '/1',
          memberMetadata: meta(encodeAddress('http://a:1')),
          memberAssignment: assign({ in: [0, 2] }),
        },
        {
          memberId: 'm2',
          clientId: 'c',
          clientHost: '/2',
          memberMetadata: meta(),
          memberAssignment: assign({ in: [1] }),
        },
        // Rebalancing: no assignment yet.
        {
          memberId: 'm3',
          clientId: 'c',
          clientHost: '/3',
          memberMetadata: meta(encodeAddress('http://c:3')),
          memberAssignment: Buffer.alloc(0),
        },
        // Not kafkajs's consumer protocol at all.
        {
          memberId: 'm4',
          clientId: 'c',
          clientHost: '/4',
          memberMetadata: Buffer.from([1]),
          memberAssignment: Buffer.from([1]),
        },
      ],
    });
    expect(members).toEqual([
      { memberId: 'm1', url: 'http://a:1', assignment: { in: [0, 2] } },
      { memberId: 'm2', url: undefined, assignment: { in: [1] } },
      { memberId: 'm3', url: 'http://c:3', assignment: {} },
    ]);
  });
});
