/**
 * Crash recovery in exactly-once delivery (the default): the real service is SIGKILLed in the middle
 * of a backlog (results already committed, later batches not, one maybe in an open transaction) and a
 * new process with the same job, group and topics restores the state from the changelog and finishes
 * the work. Read committed, every result and every late record's dead letter appears exactly once,
 * with the value a recomputation of the input gives; no input record is replayed.
 */
import { describe, expect, test } from '@jest/globals';
import { admin, onCleanup, uniqueName, waitFor } from '../helpers.ts';
import {
  countPerKeyReference,
  followJob,
  malformedIds,
  pageAccountingProblems,
  parseOutput,
  pageTally,
  perPageWindow,
  produceClickstreamInput,
  readInput,
  validEvents,
  waitForPageAccounting,
  waitForReference,
} from '../support/clickstream-input.ts';
import { metricValue, startService, type RunningService } from '../support/service.ts';
import {
  expectedCounts,
  inputId,
  isPlanted,
  letterSource,
  plantedLateScenario,
  producePlanned,
  waitForPlantedOutcome,
  waitForStageOneCommitted,
} from '../support/planted-late.ts';
import { newTopic, readAll, sourceId } from '../support/topics.ts';
import { flushPages, flushRecords, type PageView } from '../../examples/generator/clickstream.ts';

/** A dead member is waited for this long before its partitions move (the default is 30 s). */
const SESSION = { SLUICE_SESSION_TIMEOUT: '10s', SLUICE_DELIVERY: 'exactly-once' };
const PARTITIONS = 8;
const COUNT = 60_000;
const WINDOW_MS = 10_000;
/** Small batches: the backlog takes many batches, so the kill lands between two of them. */
const MAX_BATCH = '3000';

/** Sum of the offsets the group has committed on `topic` (0: nothing committed yet). */
async function committed(groupId: string, topic: string): Promise<number> {
  const offsets = await (await admin()).fetchOffsets({ groupId, topics: [topic] });
  return offsets.flatMap((t) => t.partitions).reduce((n, p) => n + Math.max(0, Number(p.offset)), 0);
}

/**
 * Waits until the first process has cut a third of the input into batches, published results and
 * committed offsets (on every topic in `topics`), then kills it with SIGKILL: no graceful anything.
 */
async function killMidStream(
  service: RunningService,
  groupId: string,
  topics: string[],
  inputCount: number,
): Promise<void> {
  const progress = await waitFor(
    'results published and offsets committed',
    async () => {
      const metrics = await service.metrics();
      const out = metricValue(metrics, 'sluice_records_out_total');
      const inputRead = metricValue(metrics, 'sluice_records_in_total', { topic: topics[0]! });
      // Well into the backlog: open windows, published results, dead letters, commits with checkpoints.
      if (out === 0 || inputRead < inputCount / 3) return undefined;
      for (const topic of topics) if ((await committed(groupId, topic)) === 0) return undefined;
      return { out, inputRead };
    },
    60_000,
  );
  const killed = await service.stop('SIGKILL');
  expect(killed.signal).toBe('SIGKILL');
  console.log(
    `killed ${Math.round(process.uptime())} s into the test file, after ${progress.out} results, ` +
      `${progress.inputRead} of ${inputCount} input records cut`,
  );
  // The kill must land mid-stream for this test to mean anything.
  expect(progress.inputRead).toBeLessThan(inputCount);
}

describe('SIGKILL mid-stream, then restart (exactly-once)', () => {
  test('count per user: every closed window is emitted with the reference value; late records all dead-lettered', async () => {
    const input = await newTopic('cr-user-in', PARTITIONS);
    const output = uniqueName('cr-user-out');
    const name = uniqueName('cr-user');
    const dlqTopic = `${name}-dlq`;
    await produceClickstreamInput(input, PARTITIONS, COUNT, 21);

    const { records: inputRecords, valid } = await readInput(input);
    const reference = countPerKeyReference(valid, WINDOW_MS);
    const expected = reference.expected;
    const expectedLate = new Set(reference.expectedLate);
    const expectedMalformed = new Set(malformedIds(inputRecords, valid));
    expect(expected.size).toBeGreaterThan(1000);
    expect(expectedLate.size).toBeGreaterThan(30);
    expect(expectedMalformed.size).toBeGreaterThan(10);

    const env = { TEST_JOB_NAME: name, TEST_INPUT: input, TEST_OUTPUT: output, TEST_MAX_BATCH: MAX_BATCH, ...SESSION };
    const first = await startService({ job: 'test/fixtures/jobs/user-windows.ts', env });
    onCleanup(() => first.stop('SIGKILL'));
    await first.waitReady();
    await killMidStream(first, name, [input], inputRecords.length);

    // Read the results while the new process waits for the group to drop the dead member (its
    // session timeout, SESSION below): the restart cannot be faster than that.
    const seen = await followJob(output, dlqTopic);
    const second = await startService({ job: 'test/fixtures/jobs/user-windows.ts', env });
    onCleanup(() => second.stop('SIGKILL'));
    await second.waitReady();
    const readyAt = Date.now();

    await waitForReference(seen, expected, expectedLate, expectedMalformed).catch(async (error: unknown) => {
      const ids = new Set(seen.outputs().map((o) => `${o.key}|${o.windowStart}`));
      const late = new Set(seen.deadLetters('SLUICE_LATE_RECORD').map(sourceId));
      const bad = new Set(seen.deadLetters('SLUICE_DESERIALIZE_FAILED').map(sourceId));
      const missing = [...expected.keys()].filter((id) => !ids.has(id));
      console.log(
        `missing: ${missing.length} windows (e.g. ${missing.slice(0, 5).join(', ')}), ` +
          `${[...expectedLate].filter((id) => !late.has(id)).length} late, ` +
          `${[...expectedMalformed].filter((id) => !bad.has(id)).length} malformed; ` +
          `wrong: ${seen.outputs().filter((o) => expected.get(`${o.key}|${o.windowStart}`) !== o.value).length}\n` +
          (await second.metrics())
            .split('\n')
            .filter((l) => l.startsWith('sluice_records'))
            .join('\n'),
      );
      throw error;
    });
    const doneMs = Date.now() - readyAt;
    await new Promise((r) => setTimeout(r, 2000)); // late duplicates, if any, show up too
    await seen.stop();

    const outputs = seen.outputs();
    const wrong = outputs.filter((o) => expected.get(`${o.key}|${o.windowStart}`) !== o.value);
    expect(wrong).toEqual([]);
    expect(outputs.every((o) => o.windowEnd - o.windowStart === WINDOW_MS)).toBe(true);
    const outputRecords = seen.records.filter((r) => r.topic === output);
    expect(outputRecords.every((r) => r.key === parseOutput(r).key)).toBe(true);
    // Dead letters: the same sets as the reference (duplicates allowed), nothing else.
    const lateIds = seen.deadLetters('SLUICE_LATE_RECORD').map(sourceId);
    expect(new Set(lateIds)).toEqual(expectedLate);
    const badIds = seen.deadLetters('SLUICE_DESERIALIZE_FAILED').map(sourceId);
    expect(new Set(badIds)).toEqual(expectedMalformed);
    const dlq = seen.records.filter((r) => r.topic === dlqTopic);
    expect(dlq.length).toBe(lateIds.length + badIds.length);
    expect(dlq.every((r) => r.headers['sluice-source-topic'] === input)).toBe(true);

    // Exactly once: no result and no dead letter twice.
    expect(outputs).toHaveLength(expected.size);
    expect(lateIds).toHaveLength(expectedLate.size);
    expect(badIds).toHaveLength(expectedMalformed.size);
    // The restart restored the open windows from the changelog; it replayed no input.
    const metrics = await second.metrics();
    expect(metricValue(metrics, 'sluice_state_restored_records_total')).toBeGreaterThan(0);
    expect(metricValue(metrics, 'sluice_records_replayed_total')).toBe(0);
    console.log(
      `user windows: ${outputs.length} results for ${expected.size} windows (${outputs.length - expected.size} duplicates), ` +
        `${lateIds.length} late letters for ${expectedLate.size} late records, ` +
        `${metricValue(metrics, 'sluice_records_replayed_total')} records replayed, done ${doneMs} ms after the restart was ready`,
    );
    expect((await second.stop('SIGTERM')).code).toBe(0);
  });

  test('count per page through the repartition topic: counted + late = valid records per window, duplicates agree', async () => {
    const input = await newTopic('cr-page-in', PARTITIONS);
    const output = uniqueName('cr-page-out');
    const name = uniqueName('cr-page');
    const dlqTopic = `${name}-dlq`;
    await produceClickstreamInput(input, PARTITIONS, COUNT, 23);

    const inputRecords = await readAll(input);
    const valid = validEvents(inputRecords);
    const expectedMalformed = new Set(malformedIds(inputRecords, valid));
    const expectedAll = perPageWindow(valid, WINDOW_MS);
    expect(expectedAll.size).toBeGreaterThan(500);

    // Long idle timeout: windows close by event time only (the flush records), never by the clock.
    const env = {
      TEST_JOB_NAME: name,
      TEST_INPUT: input,
      TEST_OUTPUT: output,
      TEST_MAX_BATCH: MAX_BATCH,
      TEST_IDLE_MS: '600000',
      ...SESSION,
    };
    const first = await startService({ job: 'test/fixtures/jobs/page-windows.ts', env });
    onCleanup(() => first.stop('SIGKILL'));
    await first.waitReady();
    await killMidStream(first, name, [input, `${name}-repartition`], inputRecords.length);

    // Read the results while the new process waits for the group to drop the dead member (its
    // session timeout, SESSION below): the restart cannot be faster than that.
    const seen = await followJob(output, dlqTopic);
    const second = await startService({ job: 'test/fixtures/jobs/page-windows.ts', env });
    onCleanup(() => second.stop('SIGKILL'));
    await second.waitReady();
    const readyAt = Date.now();

    await waitForPageAccounting(seen, expectedAll, WINDOW_MS).catch((error: unknown) => {
      console.log(second.output().slice(-3000));
      throw error;
    });
    const doneMs = Date.now() - readyAt;
    await new Promise((r) => setTimeout(r, 2000));
    await seen.stop();

    // Nothing lost, nothing counted twice, every duplicate of a result agrees with the first one.
    const t = pageTally(seen, WINDOW_MS);
    expect(pageAccountingProblems(t, expectedAll)).toEqual([]);
    const bad = seen.deadLetters('SLUICE_DESERIALIZE_FAILED');
    expect(new Set(bad.map(sourceId))).toEqual(expectedMalformed);

    const metrics = await second.metrics();
    const results = [...t.values.values()].reduce((n, vs) => n + vs.length, 0);
    const lateLetters = seen.deadLetters('SLUICE_LATE_RECORD').length;
    expect(results).toBe(t.values.size);
    expect(lateLetters).toBe([...t.late.values()].reduce((n, s) => n + s.size, 0));
    expect(bad).toHaveLength(expectedMalformed.size);
    expect(metricValue(metrics, 'sluice_records_replayed_total')).toBe(0);
    console.log(
      `page windows: ${results} results for ${t.values.size} windows, ${lateLetters} late letters for ` +
        `${[...t.late.values()].reduce((n, s) => n + s.size, 0)} late records; second run: ` +
        `${metricValue(metrics, 'sluice_records_replayed_total')} replayed, ` +
        `${metricValue(metrics, 'sluice_records_duplicate_total')} repartition duplicates dropped, done ${doneMs} ms after ready`,
    );
    expect((await second.stop('SIGTERM')).code).toBe(0);
  });

  test('count per page through the repartition topic, lateness known in advance: across the kill, exactly the planted records are dead-lettered as late and every window is counted exactly', async () => {
    const input = await newTopic('cr-planted-in', PARTITIONS);
    const output = uniqueName('cr-planted-out');
    const name = uniqueName('cr-planted');
    const dlqTopic = `${name}-dlq`;
    const scenario = plantedLateScenario({
      partitions: PARTITIONS,
      perPartitionA: 1500,
      perPartitionB: 6000,
      plantedPerPartition: 30,
      seed: 29,
    });
    await producePlanned(input, scenario.phaseA);

    const env = {
      TEST_JOB_NAME: name,
      TEST_INPUT: input,
      TEST_OUTPUT: output,
      TEST_MAX_BATCH: MAX_BATCH,
      TEST_IDLE_MS: '600000',
      ...SESSION,
    };
    const first = await startService({ job: 'test/fixtures/jobs/page-windows.ts', env });
    onCleanup(() => first.stop('SIGKILL'));
    await first.waitReady();
    const seen = await followJob(output, dlqTopic);
    // Every upstream partition has passed the planted windows' end + lateness, and told every
    // partition of the aggregating stage so ahead of anything produced from now on; the checkpoints
    // committed from then on carry that stream time across the kill.
    await waitForStageOneCommitted(name, input);
    expect(scenario.phaseAReach).toBeGreaterThanOrEqual(scenario.closedBy);
    // The kill lands among the planted records: some already dead-lettered, others not yet read. It
    // is watched for while phase B is produced (the service reads it as it comes).
    const lateSeen = (): number => new Set(seen.deadLetters('SLUICE_LATE_RECORD').map(letterSource)).size;
    const killed = (async () => {
      while (lateSeen() < scenario.plantedCount / 4) await new Promise((r) => setTimeout(r, 20));
      const lateAtKill = lateSeen();
      expect((await first.stop('SIGKILL')).signal).toBe('SIGKILL');
      return lateAtKill;
    })();
    await producePlanned(input, scenario.phaseB);
    const maxTs = Math.max(
      ...[...scenario.phaseA, ...scenario.phaseB].map((m) => (JSON.parse(m.value) as PageView).ts),
    );
    await producePlanned(input, flushRecords(maxTs, flushPages(PARTITIONS)));
    const lateAtKill = await Promise.race([
      killed,
      new Promise<never>((_, reject) => setTimeout(() => reject(new Error('no planted record dead-lettered')), 60_000)),
    ]);
    console.log(`killed with ${lateAtKill} of ${scenario.plantedCount} planted records dead-lettered`);
    expect(lateAtKill).toBeLessThan(scenario.plantedCount);

    const { valid } = await readInput(input);
    const planted = new Set(valid.filter(isPlanted).map(({ record }) => inputId(record)));
    expect(planted.size).toBe(scenario.plantedCount);
    expect(planted.size).toBe(PARTITIONS * 30);
    const expected = expectedCounts(valid);
    expect(expected.size).toBeGreaterThan(1000);

    const second = await startService({ job: 'test/fixtures/jobs/page-windows.ts', env });
    onCleanup(() => second.stop('SIGKILL'));
    await second.waitReady();
    await waitForPlantedOutcome(seen, expected, planted).catch((error: unknown) => {
      console.log(second.output().slice(-3000));
      throw error;
    });
    await new Promise((r) => setTimeout(r, 2000)); // late duplicates and strays show up too
    await seen.stop();

    // Late: exactly the planted set, each once.
    const late = seen.deadLetters('SLUICE_LATE_RECORD');
    expect(new Set(late.map(letterSource))).toEqual(planted);
    expect(late).toHaveLength(planted.size);
    expect(seen.records.filter((r) => r.topic === dlqTopic)).toHaveLength(late.length);
    // Counted: every window, once, with the recomputed count.
    const outputs = seen.outputs();
    expect(outputs).toHaveLength(expected.size);
    expect(outputs.filter((o) => expected.get(`${o.key}|${o.windowStart}`) !== o.value)).toEqual([]);
    expect(new Set(outputs.map((o) => `${o.key}|${o.windowStart}`))).toEqual(new Set(expected.keys()));
    const metrics = await second.metrics();
    console.log(
      `planted lateness across a kill: ${late.length} late letters for ${planted.size} planted, ` +
        `${outputs.length} results for ${expected.size} windows; second run replayed ` +
        `${metricValue(metrics, 'sluice_records_replayed_total')}, dropped ` +
        `${metricValue(metrics, 'sluice_records_duplicate_total')} repartition duplicates`,
    );
    expect((await second.stop('SIGTERM')).code).toBe(0);
  });
});
