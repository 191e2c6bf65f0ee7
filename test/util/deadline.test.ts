import { describe, expect, test } from '@jest/globals';
import { before, DEADLINE_PASSED } from '../../src/util/deadline.ts';

describe('before', () => {
  test('the value or the failure of a promise settled in time', async () => {
    await expect(before(Promise.resolve(7), Date.now() + 1_000)).resolves.toBe(7);
    await expect(before(Promise.reject(new Error('no')), Date.now() + 1_000)).rejects.toThrow('no');
  });

  test('DEADLINE_PASSED when the deadline comes first, and a later failure is not unhandled', async () => {
    let fail: (e: Error) => void = () => undefined;
    const running = new Promise<never>((_, reject) => (fail = reject));
    const started = Date.now();
    await expect(before(running, started + 50)).rejects.toBe(DEADLINE_PASSED);
    expect(Date.now() - started).toBeGreaterThanOrEqual(45);
    fail(new Error('late'));
    await new Promise((r) => setImmediate(r));
  });

  test('a deadline already past answers at once', async () => {
    await expect(before(new Promise(() => undefined), Date.now() - 1)).rejects.toBe(DEADLINE_PASSED);
  });
});
