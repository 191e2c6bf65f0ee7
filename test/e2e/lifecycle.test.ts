/**
 * Process lifecycle (design §2 "Shutdown", §4 "Config"): SIGTERM in the middle of a backlog stops
 * gracefully (finish the running batch, publish, commit, leave the group, exit 0 within the
 * shutdown timeout) and a restart finishes the job with output equal to a recomputation, nothing
 * twice; start-up problems (an invalid job, an invalid environment variable, a missing input topic)
 * end `sluice run` with a non-zero code and one clear line on stderr, no stack trace.
 */
import { spawn } from 'node:child_process';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, test } from '@jest/globals';
import { generateClickstream } from '../../examples/generator/clickstream.ts';
import { freePort } from '../../scripts/kafka/local-broker.ts';
import { admin, onCleanup, testBrokers, uniqueName, waitFor } from '../helpers.ts';
import {
  countPerKeyReference,
  followJob,
  produceWithFlush,
  readInput,
  waitForReference,
} from '../support/clickstream-input.ts';
import { writeBrokenJobs } from '../support/broken-jobs.ts';
import { metricValue, startService } from '../support/service.ts';
import { newTopic, readAll, sourceId, testProducer } from '../support/topics.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const PARTITIONS = 8;
const COUNT = 60_000;
const WINDOW_MS = 10_000;
const SHUTDOWN_TIMEOUT_MS = 10_000;

interface CliResult {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** `sluice run <job>` from the sources, as test/support/service.ts starts it, with stdout and stderr apart. */
async function runCli(job: string, env: Record<string, string | undefined>, timeoutMs = 30_000): Promise<CliResult> {
  const port = await freePort();
  const fullEnv: Record<string, string | undefined> = {
    ...process.env,
    KAFKA_BROKERS: testBrokers().join(','),
    SLUICE_HTTP_HOST: '127.0.0.1',
    SLUICE_HTTP_PORT: String(port),
    SLUICE_WORKERS: '1',
    KAFKAJS_NO_PARTITIONER_WARNING: '1',
    NODE_OPTIONS: undefined,
    ...env,
  };
  const started = Date.now();
  const child = spawn(process.execPath, ['--conditions=sluice-source', join(root, 'src', 'main.ts'), 'run', job], {
    cwd: root,
    env: fullEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
  child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  const { code, signal } = await new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.once('exit', (c, s) => r({ code: c, signal: s })),
  );
  clearTimeout(timer);
  return { code, signal, stdout, stderr, ms: Date.now() - started };
}

/**
 * Exits non-zero by itself, with exactly one non-empty stderr line and no stack trace; returns that
 * line. `location`: the line names a source position (`file.ts:6:3`), which is not a stack frame.
 */
function oneLineFailure(result: CliResult, { location = false } = {}): string {
  const context = `exit ${result.code}/${result.signal}\nstderr:\n${result.stderr}\nstdout:\n${result.stdout.slice(-2000)}`;
  expect(`${result.signal}`).toBe('null');
  expect(result.code === 0 ? context : 'non-zero').toBe('non-zero');
  const lines = result.stderr.split('\n').filter((l) => l.trim() !== '');
  expect(lines.length === 1 ? 'one line' : context).toBe('one line');
  const line = lines[0]!;
  expect(line).not.toMatch(location ? /^\s+at |\(node:|Error:\s*$/ : /^\s+at |\.ts:\d+|Error:\s*$/);
  expect(line.length).toBeLessThan(1000);
  return line;
}

describe('graceful shutdown', () => {
  test('SIGTERM mid-backlog exits 0 within the shutdown timeout; a restart finishes with the exact output, nothing twice', async () => {
    const input = await newTopic('lc-in', PARTITIONS);
    const output = uniqueName('lc-out');
    const name = uniqueName('lc');
    const dlqTopic = `${name}-dlq`;
    const generated = [...generateClickstream({ count: COUNT, seed: 41, eventsPerSecond: 500, users: 300 })];
    await produceWithFlush(input, generated, new Array<string>(PARTITIONS).fill('/flush'));

    const { records: inputRecords, valid } = await readInput(input);
    const { expected, expectedLate } = countPerKeyReference(valid, WINDOW_MS);

    const env = {
      TEST_JOB_NAME: name,
      TEST_INPUT: input,
      TEST_OUTPUT: output,
      TEST_MAX_BATCH: '3000',
      SLUICE_SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_MS}ms`,
    };
    const first = await startService({ job: 'test/fixtures/jobs/user-windows.ts', env });
    onCleanup(() => first.stop('SIGKILL'));
    await first.waitReady();
    const progress = await waitFor('a third of the input cut into batches, results out', async () => {
      const m = await first.metrics();
      const cut = metricValue(m, 'sluice_records_in_total', { topic: input });
      return cut >= COUNT / 3 && metricValue(m, 'sluice_records_out_total') > 0 ? cut : undefined;
    });
    const termAt = Date.now();
    first.process.kill('SIGTERM');
    const exit = await first.exited;
    const shutdownMs = Date.now() - termAt;
    console.log(
      `SIGTERM after ${progress} of ${inputRecords.length} records cut: exit ${exit.code} in ${shutdownMs} ms`,
    );
    expect(exit).toEqual({ code: 0, signal: null });
    expect(shutdownMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
    expect(first.output()).toMatch(/"msg":"stopped"/);
    expect(first.output()).not.toMatch(/graceful shutdown timed out|shutdown step failed/);
    // It left the group: nobody is left in it (a crash would leave a member until its session expires).
    const group = (await (await admin()).describeGroups([name])).groups[0];
    expect(group?.members ?? []).toHaveLength(0);

    const second = await startService({ job: 'test/fixtures/jobs/user-windows.ts', env });
    onCleanup(() => second.stop('SIGKILL'));
    await second.waitReady(20_000); // no dead member to wait for
    const seen = await followJob(output, dlqTopic);
    await waitForReference(seen, expected, expectedLate);
    await new Promise((r) => setTimeout(r, 2000));
    await seen.stop();

    const outputs = seen.outputs();
    expect(outputs.filter((o) => expected.get(`${o.key}|${o.windowStart}`) !== o.value)).toEqual([]);
    const ids = outputs.map((o) => `${o.key}|${o.windowStart}`);
    expect(ids.length - new Set(ids).size).toBe(0); // the graceful stop committed what it published
    expect(new Set(ids)).toEqual(new Set(expected.keys()));
    expect(seen.deadLetters('SLUICE_LATE_RECORD').map(sourceId).sort()).toEqual(expectedLate.sort());
    expect((await second.stop('SIGTERM')).code).toBe(0);
  });

  test('SIGTERM while a slow batch runs: the batch is finished, published and committed; a restart does every record exactly once', async () => {
    const count = 40_000;
    const input = await newTopic('lc-slow-in', 4);
    const output = uniqueName('lc-slow-out');
    const name = uniqueName('lc-slow');
    const producer = await testProducer();
    for (let start = 0; start < count; start += 5000) {
      await producer.send({
        topic: input,
        messages: Array.from({ length: 5000 }, (_, k) => ({
          partition: (start + k) % 4,
          key: null,
          value: JSON.stringify({ i: start + k, pad: 'abc' }),
        })),
      });
    }
    // 5 000 records × 300 µs over 2 workers: each batch takes ~750 ms and the interval is 100 ms,
    // so a batch is nearly always running when the signal comes.
    const env = {
      TEST_JOB_NAME: name,
      TEST_INPUT: input,
      TEST_OUTPUT: output,
      TEST_SPIN_US: '300',
      TEST_MAX_BATCH: '5000',
      SLUICE_SHUTDOWN_TIMEOUT: `${SHUTDOWN_TIMEOUT_MS}ms`,
    };
    const first = await startService({ job: 'test/fixtures/jobs/slow-map.ts', env });
    onCleanup(() => first.stop('SIGKILL'));
    await first.waitReady();
    await waitFor('a first batch out', async () =>
      metricValue(await first.metrics(), 'sluice_records_out_total') > 0 ? true : undefined,
    );
    const termAt = Date.now();
    first.process.kill('SIGTERM');
    const exit = await first.exited;
    const shutdownMs = Date.now() - termAt;
    expect(exit).toEqual({ code: 0, signal: null });
    expect(shutdownMs).toBeLessThan(SHUTDOWN_TIMEOUT_MS);
    const before = (await readAll(output)).length;
    console.log(`SIGTERM during a slow batch: exit 0 in ${shutdownMs} ms with ${before} of ${count} records out`);
    expect(before).toBeLessThan(count);

    const second = await startService({ job: 'test/fixtures/jobs/slow-map.ts', env });
    onCleanup(() => second.stop('SIGKILL'));
    await second.waitReady(20_000);
    await waitFor(
      'the rest of the records',
      async () =>
        before + metricValue(await second.metrics(), 'sluice_records_out_total') >= count ? true : undefined,
      60_000,
    );
    await new Promise((r) => setTimeout(r, 1000));
    const outputs = await readAll(output);
    const times = new Uint16Array(count);
    for (const r of outputs) {
      const o = JSON.parse(r.value!.toString()) as { i: number; sq: number; len: number };
      if (o.sq === (o.i * o.i) % 1_000_003 && o.len === 3) times[o.i]!++;
    }
    expect(outputs).toHaveLength(count);
    expect(times.every((n) => n === 1)).toBe(true);
    expect((await second.stop('SIGTERM')).code).toBe(0);
  });

  test('SIGTERM while the group join waits for a crashed member: exits 0 within the shutdown timeout', async () => {
    // A replica killed with SIGKILL stays a group member until its session times out (30 s): a new
    // replica's join waits for that. It has no partitions, no batch, nothing to commit — a SIGTERM
    // then (a rolling update after a crash) must still end it gracefully within the timeout.
    const input = await newTopic('lc-join-in', 2);
    const producer = await testProducer();
    await producer.send({
      topic: input,
      messages: [{ key: 'u', value: JSON.stringify({ page: '/', user: 'u', ts: 1_700_000_000_000 }) }],
    });
    const env = {
      TEST_JOB_NAME: uniqueName('lc-join'),
      TEST_INPUT: input,
      TEST_OUTPUT: uniqueName('lc-join-out'),
      SLUICE_SHUTDOWN_TIMEOUT: '5s',
    };
    const crashed = await startService({ job: 'test/fixtures/jobs/user-windows.ts', env });
    onCleanup(() => crashed.stop('SIGKILL'));
    await crashed.waitReady();
    await crashed.stop('SIGKILL');

    const joining = await startService({ job: 'test/fixtures/jobs/user-windows.ts', env });
    onCleanup(() => joining.stop('SIGKILL'));
    const reason = await waitFor('the HTTP server, not ready', async () => {
      const res = await fetch(`${joining.url}/readyz`).catch(() => undefined);
      return res ? `${res.status} ${await res.text()}` : undefined;
    });
    expect(reason).toMatch(/^503/);
    await new Promise((r) => setTimeout(r, 3000)); // well inside the join, ~20 s before it can finish
    const termAt = Date.now();
    joining.process.kill('SIGTERM');
    let timer: NodeJS.Timeout | undefined;
    const exit = await Promise.race([
      joining.exited,
      new Promise<'still running'>((r) => (timer = setTimeout(() => r('still running'), 15_000))),
    ]);
    clearTimeout(timer);
    const ms = Date.now() - termAt;
    const log = joining
      .output()
      .split('\n')
      .filter((l) => /shutting down|timed out|stopped|"running"|crashed/.test(l))
      .map((l) => l.slice(0, 200))
      .join('\n');
    expect(`exit ${JSON.stringify(exit)} after ${ms} ms\n${log}`).toMatch(/^exit \{"code":0,"signal":null\}/);
    expect(ms).toBeLessThan(5_000);
  });
});

describe('start-up failures: non-zero exit, one clear line on stderr', () => {
  test.each([
    ['an invalid job (slide larger than size)', 'test/fixtures/jobs/invalid-slide.ts', /SLUICE_JOB_INVALID.*slide/],
    ['a job module that throws on load', 'test/fixtures/jobs/throws-on-load.ts', /boom while loading the job module/],
    ['a module that exports no job', 'test/fixtures/jobs/not-a-job.ts', /no default export/],
    ['a job file that does not exist', 'test/fixtures/jobs/no-such-job.ts', /not found.*no-such-job\.ts/],
  ])('%s', async (_what, job, message) => {
    const result = await runCli(job, {});
    expect(oneLineFailure(result)).toMatch(message);
  });

  test.each([
    ['TypeScript', 'ts'],
    ['JavaScript (.js)', 'js'],
    ['JavaScript (.mjs, compiled by Node itself)', 'mjs'],
  ] as const)('a %s job with a syntax error: file, line and column, nothing from the compiler', async (_what, kind) => {
    const broken = writeBrokenJobs();
    try {
      const file = broken[kind];
      const result = await runCli(file, {});
      expect(result.code).toBe(1);
      const line = oneLineFailure(result, { location: true });
      expect(line.startsWith(`sluice: [SLUICE_JOB_LOAD_FAILED] syntax error in ${file}:6:3: `)).toBe(true);
      expect(line).not.toMatch(/Transform failed|ERROR:|esbuild|tsx/);
    } finally {
      broken.remove();
    }
  });

  test('a job module that loads in the main thread but throws in its worker threads', async () => {
    // The worker reports the failure and stays until it is ended: nothing of Node's (no "unsettled
    // top-level await") reaches stderr beside the one line.
    const input = await newTopic('lc-worker-throws-in', 1);
    const result = await runCli('test/fixtures/jobs/throws-in-worker.ts', {
      TEST_JOB_NAME: uniqueName('lc-worker-throws'),
      TEST_INPUT: input,
      TEST_OUTPUT: uniqueName('lc-worker-throws-out'),
    });
    expect(oneLineFailure(result)).toMatch(/SLUICE_JOB_LOAD_FAILED.*boom while a worker loaded the job module/);
  });

  test('an invalid environment variable is named (all of them at once)', async () => {
    const one = await runCli('test/fixtures/jobs/user-windows.ts', { SLUICE_WORKERS: 'zero' });
    expect(oneLineFailure(one)).toMatch(/SLUICE_WORKERS.*"zero"/);
    const two = await runCli('test/fixtures/jobs/user-windows.ts', {
      SLUICE_WORKERS: 'zero',
      SLUICE_HTTP_PORT: '99999',
    });
    const line = oneLineFailure(two);
    expect(line).toMatch(/SLUICE_WORKERS/);
    expect(line).toMatch(/SLUICE_HTTP_PORT/);
    expect(line).not.toMatch(/KAFKA_BROKERS/);
  });

  test('a missing input topic is named', async () => {
    const missing = uniqueName('lc-missing');
    const result = await runCli('test/fixtures/jobs/user-windows.ts', {
      TEST_JOB_NAME: uniqueName('lc-missing-job'),
      TEST_INPUT: missing,
      TEST_OUTPUT: uniqueName('lc-missing-out'),
    });
    expect(oneLineFailure(result)).toMatch(new RegExp(`${missing}.*(does not|do not) exist`));
    expect(result.ms).toBeLessThan(25_000);
  });
});
