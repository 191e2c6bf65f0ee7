/** The bounded history behind /api/batches. */
import { describe, expect, test } from '@jest/globals';
import { BatchHistory, type BatchInfo } from '../../src/scheduler/batch-history.ts';

function batch(id: number, extra: Partial<BatchInfo> = {}): BatchInfo {
  return {
    id,
    scheduledAt: 1000 * id,
    startedAt: 1000 * id + 5,
    records: id * 10,
    inputRecords: id * 10,
    outputs: id,
    late: 0,
    deadLettered: 0,
    processingMs: 3,
    schedulingDelayMs: 5,
    totalDelayMs: 8,
    outcome: 'ok',
    ...extra,
  };
}

const ids = (list: BatchInfo[]): number[] => list.map((b) => b.id);

describe('BatchHistory', () => {
  test('starts empty', () => {
    const h = new BatchHistory(3);
    expect(h.recent()).toEqual([]);
    expect(h.last).toBeUndefined();
  });

  test('keeps the most recent `capacity` batches, oldest dropped first, most recent last', () => {
    const h = new BatchHistory(3);
    for (let i = 1; i <= 5; i++) h.add(batch(i));
    expect(ids(h.recent())).toEqual([3, 4, 5]);
    expect(h.last?.id).toBe(5);
  });

  test('recent(limit) returns at most `limit`, the newest ones', () => {
    const h = new BatchHistory(10);
    for (let i = 1; i <= 6; i++) h.add(batch(i));
    expect(ids(h.recent(2))).toEqual([5, 6]);
    expect(ids(h.recent(6))).toEqual([1, 2, 3, 4, 5, 6]);
    expect(ids(h.recent(100))).toEqual([1, 2, 3, 4, 5, 6]);
  });

  test('recent(0) returns no batch', () => {
    const h = new BatchHistory(10);
    for (let i = 1; i <= 3; i++) h.add(batch(i));
    expect(ids(h.recent(0))).toEqual([]);
  });

  test('a capacity below 1 still keeps the last batch', () => {
    for (const capacity of [0, -5]) {
      const h = new BatchHistory(capacity);
      h.add(batch(1));
      h.add(batch(2));
      expect(ids(h.recent())).toEqual([2]);
    }
  });

  test('stores the batch info as given, including a failure', () => {
    const h = new BatchHistory(2);
    const failed = batch(9, { outcome: 'failed', error: 'KafkaError: boom', late: 2, deadLettered: 1 });
    h.add(failed);
    expect(h.last).toEqual(failed);
  });

  test('recent() returns a copy: mutating it does not change the history', () => {
    const h = new BatchHistory(3);
    h.add(batch(1));
    h.recent().push(batch(99));
    expect(ids(h.recent())).toEqual([1]);
  });
});
