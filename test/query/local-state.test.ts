/**
 * This replica's side of queryable state (`local-state.ts`) with fake receiver, scheduler and workers:
 * ownership (assigned, not assigned, rebalancing), every reason a partition is not ready yet (just
 * assigned, opening, restoring with progress, being rebuilt, its worker still restoring it), a worker
 * that crashed or is busy past the timeout, and the windows of several partitions, tagged by topic
 * when the job has several input topics.
 */
import { describe, expect, test } from '@jest/globals';
import { type QueriedWindow } from '../../src/pool/protocol.ts';
import { LocalState, type LocalStateDeps } from '../../src/query/local-state.ts';
import { type PartitionStatus } from '../../src/scheduler/partition-table.ts';
import { WorkerCrashedError } from '../../src/errors.ts';

function status(topic: string, partition: number, overrides: Partial<PartitionStatus> = {}): PartitionStatus {
  return {
    topic,
    partition,
    kind: 'windowed',
    position: 10,
    highWatermark: 10,
    lag: 0,
    streamTime: 1_000,
    buffered: 0,
    rewinding: false,
    restoring: null,
    ...overrides,
  };
}

const w = (windowStart: number, value: unknown): QueriedWindow => ({ windowStart, windowEnd: windowStart + 10, value });

function local(overrides: Partial<LocalStateDeps> = {}) {
  const asked: unknown[] = [];
  const deps: LocalStateDeps = {
    assignment: () => ({
      joined: true,
      partitions: [
        { topic: 'a', partition: 1 },
        { topic: 'b', partition: 0 },
      ],
    }),
    partitions: () => [status('a', 1), status('b', 0)],
    query: async (q) => {
      asked.push(q);
      return { held: true, windows: q.topic === 'a' ? [w(0, 1), w(20, 3)] : [w(10, 2)] };
    },
    tagTopics: false,
    ...overrides,
  };
  return { state: new LocalState(deps), asked };
}

describe('LocalState', () => {
  test('ownership follows the consumer: assigned, not assigned, rebalancing', () => {
    const { state } = local();
    expect(state.ownership({ topic: 'a', partition: 1 })).toBe('owned');
    expect(state.ownership({ topic: 'a', partition: 0 })).toBe('not-assigned');
    const rebalancing = local({ assignment: () => ({ joined: false, partitions: [{ topic: 'a', partition: 1 }] }) });
    expect(rebalancing.state.ownership({ topic: 'a', partition: 1 })).toBe('rebalancing');
  });

  test("asks each partition's task and keeps their windows, tagged by topic when asked", async () => {
    const { state, asked } = local();
    const both = [
      { topic: 'a', partition: 1 },
      { topic: 'b', partition: 0 },
    ];
    expect(await state.answer('k', both, 5, 25)).toEqual({ ok: true, windows: [w(0, 1), w(20, 3), w(10, 2)] });
    expect(asked).toEqual([
      { topic: 'a', partition: 1, key: 'k', from: 5, to: 25 },
      { topic: 'b', partition: 0, key: 'k', from: 5, to: 25 },
    ]);
    const tagged = local({ tagTopics: true });
    expect(await tagged.state.answer('k', both, -Infinity, Infinity)).toEqual({
      ok: true,
      windows: [
        { topic: 'a', ...w(0, 1) },
        { topic: 'a', ...w(20, 3) },
        { topic: 'b', ...w(10, 2) },
      ],
    });
  });

  test('a partition that is not ready says why, and no worker is asked', async () => {
    const tp = [{ topic: 'a', partition: 1 }];
    const cases: Array<[PartitionStatus[], string]> = [
      [[], 'a:1 was just assigned to this replica'],
      [[status('a', 1, { position: null })], 'a:1 is being opened (its committed offset is read)'],
      [
        [status('a', 1, { restoring: { records: 120, end: 900 } })],
        'a:1 is restoring its state: 120 of about 900 changelog records read',
      ],
      [[status('a', 1, { rewinding: true })], 'a:1 is being rebuilt from its committed offset after a failed batch'],
    ];
    for (const [partitions, reason] of cases) {
      const { state, asked } = local({ partitions: () => partitions });
      expect(await state.answer('k', tp, -Infinity, Infinity)).toEqual({ ok: false, error: 'restoring', reason });
      expect(asked).toEqual([]);
    }
    const rebalancing = local({ assignment: () => ({ joined: false, partitions: [] }) });
    expect(await rebalancing.state.answer('k', tp, 0, 1)).toEqual({
      ok: false,
      error: 'restoring',
      reason: 'the consumer group is rebalancing',
    });
    expect(await local().state.answer('k', [{ topic: 'a', partition: 0 }], 0, 1)).toEqual({
      ok: false,
      error: 'not-owner',
      reason: 'a:0 is not assigned here',
    });
  });

  test('a worker still restoring, crashed, or busy past the timeout', async () => {
    const tp = [{ topic: 'a', partition: 1 }];
    const restoring = local({ query: async () => ({ held: false, windows: [] }) });
    expect(await restoring.state.answer('k', tp, 0, 1)).toEqual({
      ok: false,
      error: 'restoring',
      reason: 'a:1 is restoring its state on its worker',
    });
    const crashed = local({
      query: () => Promise.reject(new WorkerCrashedError('worker 1 exited with code 1')),
    });
    expect(await crashed.state.answer('k', tp, 0, 1)).toEqual({
      ok: false,
      error: 'restoring',
      reason: 'the worker could not answer: WorkerCrashedError: worker 1 exited with code 1',
    });
    const busy = local({ query: () => new Promise(() => undefined), timeoutMs: 50 });
    expect(await busy.state.answer('k', tp, 0, 1)).toEqual({
      ok: false,
      error: 'busy',
      reason: 'the workers did not answer within 50 ms (a long batch)',
    });
  });
});
