/**
 * The parts of queryable state put together (`state-backend.ts`) over fakes: the owners read from the
 * group are read again once the consumer's epoch moved (a rebalance), and not before; a key's
 * partitions follow the layout (one per input topic); ownership follows the consumer; the outcome
 * counter.
 */
import { describe, expect, test } from '@jest/globals';
import { AssignerProtocol, type GroupDescription } from 'kafkajs';
import pino from 'pino';
import { encodeAddress } from '../../src/kafka/member-address.ts';
import { Metrics } from '../../src/metrics/registry.ts';
import { stateBackend, type RunningParts } from '../../src/query/state-backend.ts';

function groupOwning(url: string, partitions: number[]): { groups: GroupDescription[] } {
  return {
    groups: [
      {
        groupId: 'g',
        protocol: 'RoundRobinAssigner',
        protocolType: 'consumer',
        state: 'Stable',
        members: [
          {
            memberId: 'm',
            clientId: 'c',
            clientHost: '/h',
            memberMetadata: AssignerProtocol.MemberMetadata.encode({
              version: 0,
              topics: ['in'],
              userData: encodeAddress(url),
            }),
            memberAssignment: AssignerProtocol.MemberAssignment.encode({
              version: 0,
              assignment: { in: partitions },
              userData: Buffer.alloc(0),
            }),
          },
        ],
      },
    ],
  };
}

function setUp(inputTopics: string[]) {
  const receiver = { joined: true, epoch: 1, assignment: { epoch: 1, partitions: [{ topic: 'in', partition: 0 }] } };
  const admin = {
    describes: 0,
    answer: groupOwning('http://b:1', [1]),
    describeGroups: async () => (admin.describes++, admin.answer),
  };
  const metrics = new Metrics();
  const parts: RunningParts = {
    layout: { inputPartitions: new Map(inputTopics.map((t) => [t, 4])), repartitionPartitions: undefined },
    admin,
    receiver,
    scheduler: { partitions: () => [] },
    pool: { queryState: async () => ({ held: true, windows: [] }) },
  };
  const service = {
    plan: { inputTopics, repartitionTopic: undefined },
    config: { http: { host: 'h', port: 1, advertisedUrl: 'http://a:1', token: undefined, metricsRequireToken: false } },
    groupId: 'g',
    metrics,
    logger: pino({ level: 'silent' }),
  };
  return { backend: stateBackend(service, parts), receiver, admin, metrics };
}

describe('stateBackend', () => {
  test('owners are read again once the epoch moved, not before', async () => {
    const { backend, receiver, admin } = setUp(['in']);
    expect(await backend.owners.ownerOf('in', 1)).toEqual({ kind: 'owner', url: 'http://b:1' });
    expect(await backend.owners.ownerOf('in', 1)).toEqual({ kind: 'owner', url: 'http://b:1' });
    expect(admin.describes).toBe(1);
    admin.answer = groupOwning('http://c:1', [1]);
    expect(await backend.owners.ownerOf('in', 1)).toEqual({ kind: 'owner', url: 'http://b:1' });
    receiver.epoch = 2;
    expect(await backend.owners.ownerOf('in', 1)).toEqual({ kind: 'owner', url: 'http://c:1' });
    expect(admin.describes).toBe(2);
  });

  test('self, partitions, ownership and the outcome counter', async () => {
    const one = setUp(['in']);
    expect(one.backend.selfUrl).toBe('http://a:1');
    expect(one.backend.partitionsOf('k').map((p) => p.topic)).toEqual(['in']);
    expect(one.backend.local.ownership({ topic: 'in', partition: 0 })).toBe('owned');
    const two = setUp(['in', 'other']);
    expect(two.backend.partitionsOf('k').map((p) => p.topic)).toEqual(['in', 'other']);
    two.backend.counted('proxied');
    two.backend.counted('proxied');
    two.backend.counted('local');
    const values = (await two.metrics.stateQueries.get()).values.map((v) => [v.labels['outcome'], v.value]);
    expect(values).toEqual([
      ['proxied', 2],
      ['local', 1],
    ]);
  });
});
