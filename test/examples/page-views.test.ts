/**
 * The shipped example job (examples/page-views.ts: keyBy(page) → repartition → count per page in
 * tumbling 10 s windows, lateness 5 s, final emission) run with `sluice/testing` on a generated
 * clickstream over 4 partitions. Recomputed from the input: per (page, window), the final count plus
 * the late records of that window is the number of valid page views in it; the late records are the
 * generator's late ones (60–120 s behind), every one sent after the first batch; malformed records
 * are dead-lettered; each window is emitted once.
 */
import { describe, expect, test } from '@jest/globals';
import { testJob } from 'sluice/testing';
import job from '../../examples/page-views.ts';
import { generateClickstream, type PageView } from '../../examples/generator/clickstream.ts';

const PARTITIONS = 4;
const WINDOW_MS = 10_000;

const windowOf = (e: PageView): string => `${e.page}|${Math.floor(e.ts / WINDOW_MS) * WINDOW_MS}`;

describe('examples/page-views.ts', () => {
  test('final counts per page and window, plus their late records, equal the valid page views', async () => {
    const generated = [...generateClickstream({ count: 30_000, seed: 8, lateFraction: 0.004 })];
    // Batches of 1 000 records: the aggregating stage's stream time follows the input closely.
    const driver = await testJob(job, { partitions: PARTITIONS, maxBatchRecords: 1_000 });
    expect(driver.plan.repartitionTopic).toBe('page-views-repartition');

    // First the head of the stream, then the rest: the first batch has no upstream stream time yet.
    const head = 2_000;
    const sent = driver.send(generated.slice(0, head).map((g) => ({ key: g.key, value: g.value })));
    driver.run(undefined, { flush: false });
    sent.push(...driver.send(generated.slice(head).map((g) => ({ key: g.key, value: g.value }))));
    driver.run();
    expect(driver.openWindows).toBe(0);
    const id = (i: number): string => `${sent[i]!.partition}:${sent[i]!.offset}`;

    const lateIds = new Set(driver.late().map((d) => `${d.source!.partition}:${d.source!.offset}`));
    const planted = generated.flatMap((g, i) => (g.kind === 'late' ? [i] : []));
    expect(planted.filter((i) => i >= head).length).toBeGreaterThan(50);
    // Only the generator's late records are late, and each of them once the stream is under way.
    const byIndex = new Map(generated.map((_, i) => [id(i), i]));
    for (const lateId of lateIds) expect(generated[byIndex.get(lateId)!]!.kind).toBe('late');
    for (const i of planted) if (i >= head) expect(lateIds.has(id(i))).toBe(true);
    expect(driver.late()).toHaveLength(lateIds.size);

    // Accounting per (page, window): counted + late = valid page views.
    const valid = new Map<string, number>();
    const lateIn = new Map<string, number>();
    generated.forEach((g, i) => {
      if (!g.event) return;
      valid.set(windowOf(g.event), (valid.get(windowOf(g.event)) ?? 0) + 1);
      if (lateIds.has(id(i))) lateIn.set(windowOf(g.event), (lateIn.get(windowOf(g.event)) ?? 0) + 1);
    });
    const counted = new Map<string, number>();
    for (const o of driver.outputs()) {
      const r = o.value as { key: string; windowStart: number; windowEnd: number; value: number };
      const w = `${r.key}|${r.windowStart}`;
      expect(counted.has(w)).toBe(false);
      expect(r.windowEnd - r.windowStart).toBe(WINDOW_MS);
      expect(o.key).toBe(r.key);
      counted.set(w, r.value);
    }
    const accounted = new Map([...valid.keys()].map((w) => [w, (counted.get(w) ?? 0) + (lateIn.get(w) ?? 0)]));
    expect(accounted).toEqual(valid);
    // A window whose every record was late has no result; every other has one.
    expect([...counted.keys()].sort()).toEqual(
      [...valid.keys()].filter((w) => (lateIn.get(w) ?? 0) < valid.get(w)!).sort(),
    );

    const malformed = generated.flatMap((g, i) => (g.kind === 'malformed' ? [id(i)] : []));
    const dead = driver.deadLetters().filter((d) => d.code === 'SLUICE_DESERIALIZE_FAILED');
    expect(dead.map((d) => `${d.source!.partition}:${d.source!.offset}`).sort()).toEqual(malformed.sort());
    expect(driver.deadLetters()).toHaveLength(malformed.length + lateIds.size);
  });

  test("the README's example", async () => {
    const driver = await testJob(job, { partitions: 2 });
    const { outputs, deadLetters, late } = driver.run([
      { key: 'u1', value: { page: '/', user: 'u1', ts: 1_000 } },
      { key: 'u2', value: { page: '/', user: 'u2', ts: 4_000 } },
      { key: 'u1', value: { page: '/cart', user: 'u1', ts: 12_000 } },
      { key: 'u3', value: '{"page": ' },
    ]);
    expect(outputs.map((o) => o.value)).toEqual([
      { key: '/', windowStart: 0, windowEnd: 10_000, value: 2 },
      { key: '/cart', windowStart: 10_000, windowEnd: 20_000, value: 1 },
    ]);
    expect(deadLetters.map((d) => d.code)).toEqual(['SLUICE_DESERIALIZE_FAILED']);
    expect(late).toEqual([]);
  });
});
