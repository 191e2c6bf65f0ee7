/**
 * A worker thread that dies in the middle of a batch (design §3: the pool replaces it). Only the
 * partitions routed to that worker are rewound: restored from their changelog on the new worker and
 * redone from their committed offsets; the other worker's part of the batch was committed, and its
 * partitions go on where they were. The service must stay up and the output must still equal a
 * recomputation of the input: nothing lost, no wrong value, and — the dead worker's transactions were
 * never committed — nothing twice.
 */
import { existsSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, test } from '@jest/globals';
import { generateClickstream, type GeneratedRecord } from '../../examples/generator/clickstream.ts';
import { onCleanup, uniqueName } from '../helpers.ts';
import {
  countPerKeyReference,
  followJob,
  malformedIds,
  produceWithFlush,
  readInput,
  waitForReference,
} from '../support/clickstream-input.ts';
import { metricValue, startService } from '../support/service.ts';
import { newTopic, sourceId } from '../support/topics.ts';
import { stickyRouter } from '../../src/pool/router.ts';

const PARTITIONS = 4;
const WORKERS = 2;
const COUNT = 30_000;
const WINDOW_MS = 10_000;

describe('a worker thread dies mid-batch', () => {
  test('it is replaced, the batch replays, and the windowed output equals the recomputation exactly', async () => {
    const input = await newTopic('wc-in', PARTITIONS);
    const output = uniqueName('wc-out');
    const name = uniqueName('wc');
    const dlqTopic = `${name}-dlq`;
    const markerFile = join(tmpdir(), uniqueName('sluice-worker-crash'));
    onCleanup(async () => rmSync(markerFile, { force: true }));

    // The generated stream with the marker (a valid page view: it counts like any other) halfway.
    const generated = [...generateClickstream({ count: COUNT, seed: 31, eventsPerSecond: 500, users: 200 })];
    const half = generated[COUNT / 2]!.event?.ts ?? generated[COUNT / 2 + 1]!.event!.ts;
    const markerEvent = { page: '/crash', user: 'crash-marker', ts: half };
    const marker: GeneratedRecord = {
      key: 'crash-marker',
      value: JSON.stringify(markerEvent),
      event: markerEvent,
      kind: 'ok',
    };
    const records = [...generated.slice(0, COUNT / 2), marker, ...generated.slice(COUNT / 2)];
    await produceWithFlush(input, records, new Array<string>(PARTITIONS).fill('/flush'), 3000);

    const { records: inputRecords, valid } = await readInput(input);
    const { expected, expectedLate } = countPerKeyReference(valid, WINDOW_MS);
    expect(expected.get(`crash-marker|${Math.floor(half / WINDOW_MS) * WINDOW_MS}`)).toBe(1);
    const expectedMalformed = malformedIds(inputRecords, valid);
    expect(expectedLate.length).toBeGreaterThan(10);
    // The partitions routed to the worker that will die (src/pool/router.ts): the marker's, and the
    // other one that worker owns — two of the four; the other worker owns the other two.
    const markerPartition = valid.find(({ event }) => event.user === 'crash-marker')!.record.partition;
    const route = (p: number): number => stickyRouter(input, p, WORKERS);
    const all = Array.from({ length: PARTITIONS }, (_, p) => p);
    const failedWorkers = all.filter((p) => route(p) === route(markerPartition));
    const otherWorkers = all.filter((p) => route(p) !== route(markerPartition));
    expect(failedWorkers).toHaveLength(2);
    expect(otherWorkers).toHaveLength(2);

    const service = await startService({
      job: 'test/fixtures/jobs/crash-once.ts',
      env: {
        SLUICE_DELIVERY: 'exactly-once',
        TEST_JOB_NAME: name,
        TEST_INPUT: input,
        TEST_OUTPUT: output,
        TEST_MAX_BATCH: '3000',
        TEST_MARKER_FILE: markerFile,
        SLUICE_WORKERS: String(WORKERS),
      },
    });
    onCleanup(() => service.stop('SIGKILL'));
    await service.waitReady();
    const seen = await followJob(output, dlqTopic);
    await waitForReference(seen, expected, expectedLate, expectedMalformed).catch(async (error: unknown) => {
      const ids = new Set(seen.outputs().map((o) => `${o.key}|${o.windowStart}`));
      const missing = [...expected.keys()].filter((id) => !ids.has(id));
      console.log(
        `missing ${missing.length} of ${expected.size} windows (e.g. ${missing.slice(0, 5).join(', ')}); ` +
          `marker file ${existsSync(markerFile) ? 'exists' : 'missing'}\n` +
          (await service.metrics().catch(() => ''))
            .split('\n')
            .filter((l) => /^sluice_(records|worker_restarts|batches|partition_resets)/.test(l))
            .join('\n') +
          `\n${service.output().slice(-3000)}`,
      );
      throw error;
    });
    await new Promise((r) => setTimeout(r, 2000)); // duplicates, if any, show up too
    await seen.stop();

    // The crash happened (the job wrote the marker file, then ended its thread) and was survived.
    expect(readFileSync(markerFile, 'utf8')).toMatch(/crash-marker/);
    const metrics = await service.metrics();
    expect(metricValue(metrics, 'sluice_worker_restarts_total')).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, 'sluice_batches_total', { outcome: 'failed' })).toBeGreaterThanOrEqual(1);
    expect(metricValue(metrics, 'sluice_partition_resets_total')).toBeGreaterThanOrEqual(1);
    expect(service.output()).toMatch(/worker crashed/);
    expect(service.process.exitCode).toBeNull();
    expect((await fetch(`${service.url}/readyz`)).status).toBe(200);

    // Only the dead worker's partitions were rewound: the one failed batch names exactly them ...
    const rewinds = service
      .output()
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as { msg?: string; partitions?: string[] })
      .filter((entry) => entry.msg === 'batch failed; rewinding its partitions to their committed offsets');
    expect(rewinds.map((entry) => [...(entry.partitions ?? [])].sort())).toEqual([
      failedWorkers.map((p) => `${input}:${p}`).sort(),
    ]);
    // ... and only they restored their windows from the changelog (the other worker's never had to);
    // no partition re-read input to rebuild state.
    const restored = (p: number): number =>
      metricValue(metrics, 'sluice_state_restored_records_total', { topic: input, partition: String(p) });
    const replayed = (p: number): number =>
      metricValue(metrics, 'sluice_records_replayed_total', { topic: input, partition: String(p) });
    expect(otherWorkers.map(restored)).toEqual([0, 0]);
    expect(failedWorkers.map(restored).reduce((a, b) => a + b, 0)).toBeGreaterThan(0);
    expect(all.map(replayed)).toEqual(all.map(() => 0));

    // Output: exactly the reference, each window once with its value.
    const outputs = seen.outputs();
    const wrong = outputs.filter((o) => expected.get(`${o.key}|${o.windowStart}`) !== o.value);
    expect(wrong).toEqual([]);
    const ids = outputs.map((o) => `${o.key}|${o.windowStart}`);
    expect(ids.length - new Set(ids).size).toBe(0);
    expect(new Set(ids)).toEqual(new Set(expected.keys()));
    // Dead letters: every late and malformed record, once.
    expect(seen.deadLetters('SLUICE_LATE_RECORD').map(sourceId).sort()).toEqual(expectedLate.sort());
    expect(seen.deadLetters('SLUICE_DESERIALIZE_FAILED').map(sourceId).sort()).toEqual(expectedMalformed.sort());
    expect(seen.records.filter((r) => r.topic === dlqTopic)).toHaveLength(
      expectedLate.length + expectedMalformed.length,
    );
    console.log(
      `worker crash: ${outputs.length} results for ${expected.size} windows, ` +
        `${metricValue(metrics, 'sluice_worker_restarts_total')} worker restart(s), changelog records restored per ` +
        `partition ${JSON.stringify(all.map(restored))}, rewound ${JSON.stringify(failedWorkers)}`,
    );
    expect((await service.stop('SIGTERM')).code).toBe(0);
  });
});
