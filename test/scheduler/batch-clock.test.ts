/** The scheduler's sleep: it ends when due, or at once when woken. */
import { describe, expect, test } from '@jest/globals';
import { Sleeper } from '../../src/scheduler/batch-clock.ts';

describe('Sleeper', () => {
  test('sleeps about the given time', async () => {
    const sleeper = new Sleeper();
    const started = performance.now();
    await sleeper.sleep(60);
    expect(performance.now() - started).toBeGreaterThanOrEqual(55);
  });

  test('a zero or negative time resolves at once', async () => {
    const sleeper = new Sleeper();
    const started = performance.now();
    await sleeper.sleep(0);
    await sleeper.sleep(-5_000);
    expect(performance.now() - started).toBeLessThan(50);
  });

  test('wake ends the current sleep now', async () => {
    const sleeper = new Sleeper();
    const started = performance.now();
    const sleeping = sleeper.sleep(10_000);
    setTimeout(() => sleeper.wake(), 20);
    await sleeping;
    expect(performance.now() - started).toBeLessThan(1_000);
  });

  test('wake without a sleep is harmless, and the sleeper sleeps again afterwards', async () => {
    const sleeper = new Sleeper();
    sleeper.wake();
    await sleeper.sleep(1);
    sleeper.wake(); // the sleep is over: nothing to end
    const started = performance.now();
    await sleeper.sleep(40);
    expect(performance.now() - started).toBeGreaterThanOrEqual(35);
  });
});
