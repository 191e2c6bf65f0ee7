/**
 * The shipped stateless example (examples/page-views-stateless.ts), loaded from its path as the service
 * loads it, run with `sluice/testing` on a generated clickstream: every partition's output is its input,
 * bots and records without a page dropped, each page view with its normalised path added, in order;
 * malformed records are dead-lettered.
 */
import { describe, expect, test } from '@jest/globals';
import { testJob } from 'sluice/testing';
import { generateClickstream, type PageView } from '../../examples/generator/clickstream.ts';

const PARTITIONS = 4;

describe('examples/page-views-stateless.ts', () => {
  test('each partition outputs its human page views with their path, in order; malformed records are dead letters', async () => {
    const generated = [...generateClickstream({ count: 20_000, seed: 21, users: 200, malformedFraction: 0.005 })];
    const driver = await testJob(new URL('../../examples/page-views-stateless.ts', import.meta.url), {
      partitions: PARTITIONS,
    });
    expect(driver.plan.name).toBe('page-views-stateless');
    const sent = driver.send(generated.map((g) => ({ key: g.key, value: g.value, timestamp: g.event?.ts ?? 0 })));
    const { outputs, deadLetters, late, openWindows } = driver.run();
    expect(late).toEqual([]);
    expect(openWindows).toBe(0);

    // The recomputation: per input partition, in offset order.
    const expected = new Map<number, Array<{ key: string; value: unknown; timestamp: number }>>();
    const malformed: string[] = [];
    generated.forEach((g, i) => {
      const { partition, offset } = sent[i]!;
      if (!g.event) {
        malformed.push(`${partition}:${offset}`);
        return;
      }
      const e: PageView = g.event;
      if (e.user.startsWith('bot-')) return;
      const list = expected.get(partition) ?? [];
      list.push({ key: g.key, value: { ...e, path: e.page.toLowerCase() }, timestamp: e.ts });
      expected.set(partition, list);
    });
    expect(malformed.length).toBeGreaterThan(50);
    expect([...expected.values()].flat().length).toBeLessThan(generated.length - malformed.length); // bots dropped

    // Keyed by the user: an output lands in the partition of its input record (as many partitions).
    for (let p = 0; p < PARTITIONS; p++) {
      const actual = outputs
        .filter((o) => o.partition === p)
        .map((o) => ({ key: o.key, value: o.value, timestamp: o.timestamp }));
      expect(actual).toEqual(expected.get(p) ?? []);
    }
    expect(outputs.every((o) => o.topic === 'page-views-clean')).toBe(true);

    expect(deadLetters.map((d) => `${d.source!.partition}:${d.source!.offset}`).sort()).toEqual(malformed.sort());
    for (const d of deadLetters) {
      expect(d.code).toBe('SLUICE_DESERIALIZE_FAILED');
      expect(d.message).toMatch(/not valid JSON/);
      expect(d.topic).toBe('page-views-stateless-dlq');
    }
  });
});
