/** Poison pills: two failures on the same record put it on its partition's poison list, and only then. */
import { describe, expect, test } from '@jest/globals';
import { type Suspect } from '../../src/pool/worker-pool.ts';
import { PoisonPills, STRIKES } from '../../src/scheduler/poison-pills.ts';

const at = (offset: number, extra: Partial<Suspect> = {}): Suspect => ({
  topic: 'in',
  partition: 3,
  offset,
  sub: -1,
  ...extra,
});
const TIMEOUT = 'SLUICE_USER_CODE_TIMEOUT' as const;
const CRASH = 'SLUICE_WORKER_CRASHED' as const;

describe('PoisonPills', () => {
  test('a record is dead-lettered after STRIKES (two) failures on it, with the last failure’s code and message', () => {
    expect(STRIKES).toBe(2);
    const pills = new PoisonPills();
    expect(pills.failed(at(7), TIMEOUT, 'first')).toBe(1);
    expect(pills.forPartition('in:3')).toBeUndefined();
    expect(pills.failed(at(7), CRASH, 'second')).toBe(2);
    expect(pills.forPartition('in:3')).toEqual([{ offset: 7, sub: -1, code: CRASH, message: 'second' }]);
  });

  test('a failure on another record of the partition starts over at one strike', () => {
    const pills = new PoisonPills();
    pills.failed(at(7), TIMEOUT, 'm');
    expect(pills.failed(at(8), TIMEOUT, 'm')).toBe(1);
    expect(pills.forPartition('in:3')).toBeUndefined();
    expect(pills.failed(at(7), TIMEOUT, 'm')).toBe(1);
    expect(pills.forPartition('in:3')).toBeUndefined();
  });

  test('another entry of the same repartition block is another record', () => {
    const pills = new PoisonPills();
    pills.failed(at(7, { sub: 0 }), TIMEOUT, 'm');
    expect(pills.failed(at(7, { sub: 1 }), TIMEOUT, 'm')).toBe(1);
    expect(pills.failed(at(7, { sub: 1 }), TIMEOUT, 'm')).toBe(2);
    expect(pills.forPartition('in:3')).toEqual([{ offset: 7, sub: 1, code: TIMEOUT, message: 'm' }]);
  });

  test('partitions are counted apart', () => {
    const pills = new PoisonPills();
    pills.failed(at(7), TIMEOUT, 'm');
    expect(pills.failed(at(7, { partition: 4 }), TIMEOUT, 'm')).toBe(1);
    expect(pills.failed(at(7, { topic: 'other' }), TIMEOUT, 'm')).toBe(1);
    expect(pills.failed(at(7), TIMEOUT, 'm')).toBe(2);
    expect(pills.forPartition('in:3')).toHaveLength(1);
    expect(pills.forPartition('in:4')).toBeUndefined();
    expect(pills.forPartition('other:3')).toBeUndefined();
  });

  test('passed clears the strikes once the position (next offset) is past the record, not before', () => {
    const pills = new PoisonPills();
    pills.failed(at(7), TIMEOUT, 'm');
    pills.failed(at(7), TIMEOUT, 'm');
    pills.passed('in:3', undefined);
    pills.passed('in:3', 5);
    pills.passed('in:3', 7); // next offset 7: record 7 not processed yet
    expect(pills.forPartition('in:3')).toHaveLength(1);
    pills.passed('in:4', 100); // another partition
    expect(pills.forPartition('in:3')).toHaveLength(1);
    pills.passed('in:3', 8);
    expect(pills.forPartition('in:3')).toBeUndefined();
    // cleared: the next failure on the record is a first strike again
    expect(pills.failed(at(7), TIMEOUT, 'm')).toBe(1);
  });

  test('forget clears a partition (revoked), and only that one', () => {
    const pills = new PoisonPills();
    for (const partition of [3, 4]) {
      pills.failed(at(7, { partition }), TIMEOUT, 'm');
      pills.failed(at(7, { partition }), TIMEOUT, 'm');
    }
    pills.forget('in:3');
    expect(pills.forPartition('in:3')).toBeUndefined();
    expect(pills.forPartition('in:4')).toHaveLength(1);
    expect(pills.failed(at(7), TIMEOUT, 'm')).toBe(1);
  });
});
