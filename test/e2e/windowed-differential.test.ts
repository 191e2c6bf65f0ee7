/**
 * Differential tests: the real service, the real broker, 100 000+ generated page views over 8
 * partitions (skewed, out of order, late, malformed). The output topic is compared with a plain
 * recomputation of the input; late and malformed records must be in the dead-letter topic exactly once.
 */
import { describe, expect, test } from '@jest/globals';
import { flushPages, flushRecords, type PageView } from '../../examples/generator/clickstream.ts';
import { admin, createTopic, onCleanup, uniqueName, waitFor } from '../helpers.ts';
import {
  countPerKeyReference,
  followJob,
  parseOutputs,
  produceClickstreamInput,
  readInput,
  validEvents,
  type Output,
} from '../support/clickstream-input.ts';
import {
  expectedCounts,
  inputId,
  isPlanted,
  letterSource,
  plantedLateScenario,
  producePlanned,
  waitForPlantedOutcome,
  waitForStageOneCommitted,
  WINDOW_MS,
} from '../support/planted-late.ts';
import { metricValue, startService } from '../support/service.ts';
import { newTopic, readAll, readTopic, sourceId, type ReadRecord } from '../support/topics.ts';

const PARTITIONS = 8;
const COUNT = 100_000;

describe('windowed aggregation against a recomputation', () => {
  test('count per user (no repartition): output equals the reference exactly; late and malformed records are dead-lettered once', async () => {
    const input = await createTopic(uniqueName('dv-user-in'), PARTITIONS);
    const output = uniqueName('dv-user-out');
    const name = uniqueName('dv-user');
    await produceClickstreamInput(input, PARTITIONS, COUNT, 7);

    // The reference reads the input exactly as the service will: per partition, in offset order.
    const { records: inputRecords, valid } = await readInput(input);
    const { reference, expected, expectedLate } = countPerKeyReference(valid, 10_000);
    const malformed = inputRecords.length - valid.length;
    expect(reference.late.length).toBeGreaterThan(50);
    expect(malformed).toBeGreaterThan(20);

    const service = await startService({
      job: 'test/fixtures/jobs/user-windows.ts',
      env: { TEST_JOB_NAME: name, TEST_INPUT: input, TEST_OUTPUT: output, TEST_MAX_BATCH: '20000' },
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();

    const outputs = parseOutputs(await readTopic(output, (r) => r.length >= reference.closed.length));
    const dlq = await readTopic(`${name}-dlq`, (r) => r.length >= reference.late.length + malformed);

    const actual = new Map<string, number>();
    for (const o of outputs) {
      const id = `${o.key}|${o.windowStart}`;
      expect(actual.has(id)).toBe(false); // one final result per (key, window)
      actual.set(id, o.value);
      expect(o.windowEnd - o.windowStart).toBe(10_000);
    }
    expect(actual).toEqual(expected);

    const lateOffsets = dlq.filter((r) => r.headers['sluice-error-code'] === 'SLUICE_LATE_RECORD').map(sourceId);
    expect(lateOffsets.sort()).toEqual(expectedLate.sort());
    const bad = dlq.filter((r) => r.headers['sluice-error-code'] === 'SLUICE_DESERIALIZE_FAILED');
    expect(bad).toHaveLength(malformed);
    for (const r of bad) {
      expect(r.headers['sluice-error-message']).toMatch(/not valid JSON/);
      expect(r.headers['sluice-source-topic']).toBe(input);
    }

    const metrics = await service.metrics();
    expect(metricValue(metrics, 'sluice_records_in_total', { topic: input })).toBe(inputRecords.length);
    expect(metricValue(metrics, 'sluice_records_late_total')).toBe(reference.late.length);
    expect(metricValue(metrics, 'sluice_records_out_total')).toBe(reference.closed.length);
    const stopped = await service.stop('SIGTERM');
    expect(stopped.code).toBe(0);
  });

  test('count per page through the repartition topic: every valid record is counted once or dead-lettered as late once', async () => {
    const input = await createTopic(uniqueName('dv-page-in'), PARTITIONS);
    const output = uniqueName('dv-page-out');
    const name = uniqueName('dv-page');
    const generated = await produceClickstreamInput(input, PARTITIONS, COUNT, 11);
    const inputRecords = await readAll(input);
    const valid = validEvents(inputRecords);
    const malformed = inputRecords.length - valid.length;

    // Long idle timeout: windows close by event time only (the flush records), never by the clock.
    const service = await startService({
      job: 'test/fixtures/jobs/page-windows.ts',
      env: { TEST_JOB_NAME: name, TEST_INPUT: input, TEST_OUTPUT: output, TEST_IDLE_MS: '600000' },
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();

    const windowOf = (ts: number): number => Math.floor(ts / 10_000) * 10_000;
    const expectedAll = new Map<string, number>();
    for (const { event } of valid) {
      const id = `${event.page}|${windowOf(event.ts)}`;
      expectedAll.set(id, (expectedAll.get(id) ?? 0) + 1);
    }
    // Wait until processing is complete: every valid record has been counted or dead-lettered.
    let outputs: Output[] = [];
    let dlq: ReadRecord[] = [];
    const deadline = Date.now() + 120_000;
    for (;;) {
      const metrics = await service.metrics();
      const processed = metricValue(metrics, 'sluice_records_processed_total', { topic: `${name}-repartition` });
      const dead = metricValue(metrics, 'sluice_records_dead_lettered_total');
      if (processed >= valid.length && dead >= malformed) break;
      if (Date.now() > deadline) throw new Error(`processed ${processed} of ${valid.length}`);
      await new Promise((r) => setTimeout(r, 500));
    }
    await new Promise((r) => setTimeout(r, 1000));
    outputs = parseOutputs(await readAll(output));
    dlq = await readAll(`${name}-dlq`);

    const late = dlq.filter((r) => r.headers['sluice-error-code'] === 'SLUICE_LATE_RECORD');
    const lateIds = late.map((r) => `${r.headers['sluice-src']}|${r.headers['sluice-pos']}`);
    expect(new Set(lateIds).size).toBe(lateIds.length); // each late record once
    const lateByWindow = new Map<string, number>();
    for (const r of late) {
      const e = JSON.parse(r.value!.toString()) as PageView;
      const id = `${e.page}|${windowOf(e.ts)}`;
      lateByWindow.set(id, (lateByWindow.get(id) ?? 0) + 1);
    }
    const actual = new Map<string, number>();
    for (const o of outputs) {
      const id = `${o.key}|${o.windowStart}`;
      expect(actual.has(id)).toBe(false);
      actual.set(id, o.value);
    }
    // Every window: counted + late = all valid records of that (page, window); nothing lost, nothing twice.
    let checked = 0;
    for (const [id, total] of expectedAll) {
      if (id.startsWith('/flush-')) continue;
      const counted = actual.get(id) ?? 0;
      expect(`${id}: ${counted + (lateByWindow.get(id) ?? 0)}`).toBe(`${id}: ${total}`);
      checked++;
    }
    expect(checked).toBeGreaterThan(500);
    expect([...actual.keys()].filter((id) => !expectedAll.has(id))).toEqual([]);
    // The aggregating stage's stream time is the smallest of its upstream partitions' stream times,
    // so a record that is on time in its own partition (out of order by less than the lateness) is
    // never late, whatever the interleaving. Only records planted 60–120 s behind may be late (they
    // are counted instead when an upstream partition was still behind when they arrived).
    const planted = new Set(generated.filter((g) => g.kind === 'late').map((g) => g.value));
    expect(planted.size).toBeGreaterThan(50);
    const notPlanted = late.filter((r) => !planted.has(r.value!.toString()));
    expect(notPlanted).toEqual([]);
    console.log(`repartitioned job: ${late.length} late of ${valid.length} valid, ${planted.size} planted late`);
    expect(dlq.filter((r) => r.headers['sluice-error-code'] === 'SLUICE_DESERIALIZE_FAILED')).toHaveLength(malformed);

    // The repartition topic keeps records regardless of their (event-time) timestamps, and what is
    // committed is purged: its log start offsets move up.
    const a = await admin();
    const configs = await a.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: 2, name: `${name}-repartition`, configNames: ['retention.ms'] }],
    });
    expect(configs.resources[0]?.configEntries[0]?.configValue).toBe('-1');
    await waitFor('repartition records purged', async () => {
      const offsets = await a.fetchTopicOffsets(`${name}-repartition`);
      return offsets.some((o) => Number(o.low) > 0) ? true : undefined;
    });
    expect((await service.stop('SIGTERM')).code).toBe(0);
  });

  test('count per page through the repartition topic, lateness known in advance: exactly the planted records are dead-lettered as late, every other one is counted', async () => {
    const input = await newTopic('dv-planted-in', PARTITIONS);
    const output = uniqueName('dv-planted-out');
    const name = uniqueName('dv-planted');
    const scenario = plantedLateScenario({
      partitions: PARTITIONS,
      perPartitionA: 2000,
      perPartitionB: 2000,
      plantedPerPartition: 25,
      seed: 13,
    });
    await producePlanned(input, scenario.phaseA);

    const service = await startService({
      job: 'test/fixtures/jobs/page-windows.ts',
      env: { TEST_JOB_NAME: name, TEST_INPUT: input, TEST_OUTPUT: output, TEST_IDLE_MS: '600000' },
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();
    const seen = await followJob(output, `${name}-dlq`);
    // Every upstream partition has passed the planted windows' end + lateness, and said so to every
    // partition of the aggregating stage ahead of anything produced from now on.
    await waitForStageOneCommitted(name, input);
    expect(scenario.phaseAReach).toBeGreaterThanOrEqual(scenario.closedBy);
    await producePlanned(input, scenario.phaseB);
    const maxTs = Math.max(
      ...[...scenario.phaseA, ...scenario.phaseB].map((m) => (JSON.parse(m.value) as PageView).ts),
    );
    await producePlanned(input, flushRecords(maxTs, flushPages(PARTITIONS)));

    const { valid } = await readInput(input);
    const planted = new Set(valid.filter(isPlanted).map(({ record }) => inputId(record)));
    expect(planted.size).toBe(scenario.plantedCount);
    expect(planted.size).toBe(PARTITIONS * 25);
    const expected = expectedCounts(valid);
    expect(expected.size).toBeGreaterThan(500);

    await waitForPlantedOutcome(seen, expected, planted);
    await new Promise((r) => setTimeout(r, 2000)); // a duplicate or a stray letter shows up too
    await seen.stop();

    // Late: exactly the planted records, each once, named by their input record.
    const late = seen.deadLetters('SLUICE_LATE_RECORD');
    expect(late.map(letterSource).sort()).toEqual([...planted].sort());
    expect(seen.records.filter((r) => r.topic === `${name}-dlq`)).toHaveLength(planted.size);
    // Counted: every other record, each (page, window) once with the recomputed count.
    const actual = new Map<string, number>();
    for (const o of seen.outputs()) {
      const id = `${o.key}|${o.windowStart}`;
      expect(actual.has(id)).toBe(false);
      actual.set(id, o.value);
      expect(o.windowEnd - o.windowStart).toBe(WINDOW_MS);
    }
    expect(actual).toEqual(expected);
    const metrics = await service.metrics();
    expect(metricValue(metrics, 'sluice_records_late_total')).toBe(planted.size);
    console.log(`planted lateness: ${late.length} late of ${valid.length} valid, ${planted.size} planted`);
    expect((await service.stop('SIGTERM')).code).toBe(0);
  });
});
