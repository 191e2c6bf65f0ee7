/**
 * When the next batch is due: Spark's rule (one interval after the last was due, at once when that
 * has passed), and at once after a full batch with more waiting (a backlog is not throttled).
 */
import { describe, expect, test } from '@jest/globals';
import { nextDue } from '../../src/scheduler/scheduler.ts';

describe('nextDue', () => {
  test('caught up: one interval after the last batch was due, however long it took', () => {
    expect(nextDue(10_000, 1_000, 10_005, 10_300, false)).toBe(11_000);
    // It ran past its successor's due time: the successor starts at once (due in the past).
    expect(nextDue(10_000, 1_000, 10_005, 12_500, false)).toBe(11_000);
  });

  test('a backlog: the next batch is due as soon as this one is done', () => {
    expect(nextDue(10_000, 1_000, 10_005, 10_300, true)).toBe(10_300);
    expect(nextDue(10_000, 1_000, 10_005, 12_500, true)).toBe(11_000);
  });

  test('after a long stall, ticks are not replayed', () => {
    expect(nextDue(10_000, 100, 20_000, 20_050, false)).toBe(20_000);
  });
});
