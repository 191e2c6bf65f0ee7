/** Partition → worker affinity: stable, in range, consecutive partitions spread over workers. */
import { describe, expect, test } from '@jest/globals';
import { stickyRouter } from '../../src/pool/router.ts';

describe('stickyRouter', () => {
  test('is stable: the same partition always maps to the same worker', () => {
    for (const topic of ['orders', 'page-views', 'pv-repartition', 'ü-topic']) {
      for (let p = 0; p < 64; p++) {
        const first = stickyRouter(topic, p, 7);
        for (let i = 0; i < 5; i++) expect(stickyRouter(topic, p, 7)).toBe(first);
      }
    }
  });

  test('always returns an integer index in [0, workers)', () => {
    for (const workers of [1, 2, 3, 4, 7, 16, 33]) {
      for (const topic of ['a', 'orders', 'x'.repeat(249), '']) {
        for (const p of [0, 1, 2, 5, 99, 1023, 65_535, 2 ** 31 - 1]) {
          const w = stickyRouter(topic, p, workers);
          expect(Number.isInteger(w)).toBe(true);
          expect(w).toBeGreaterThanOrEqual(0);
          expect(w).toBeLessThan(workers);
        }
      }
    }
  });

  test('one worker takes every partition', () => {
    for (let p = 0; p < 20; p++) expect(stickyRouter('orders', p, 1)).toBe(0);
  });

  test('consecutive partitions of a topic land on consecutive workers (round robin from an offset)', () => {
    for (const topic of ['orders', 'page-views', 'clicks']) {
      const workers = 5;
      const base = stickyRouter(topic, 0, workers);
      for (let p = 0; p < 25; p++) expect(stickyRouter(topic, p, workers)).toBe((base + p) % workers);
    }
  });

  test('N consecutive partitions over N workers use every worker exactly once', () => {
    for (const workers of [2, 3, 4, 8]) {
      const used = Array.from({ length: workers }, (_, p) => stickyRouter('events', p, workers));
      expect([...used].sort((a, b) => a - b)).toEqual(Array.from({ length: workers }, (_, i) => i));
    }
  });

  test('partitions spread evenly: 12 partitions over 4 workers give 3 each', () => {
    const load = [0, 0, 0, 0];
    for (let p = 0; p < 12; p++) load[stickyRouter('orders', p, 4)]!++;
    expect(load).toEqual([3, 3, 3, 3]);
  });

  test('different topics do not all start at worker 0 (the topic hash offsets them)', () => {
    const starts = new Set(['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'].map((t) => stickyRouter(t, 0, 8)));
    expect(starts.size).toBeGreaterThan(1);
  });
});
