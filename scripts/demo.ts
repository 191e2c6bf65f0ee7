/**
 * The demo behind `npm run demo`: a local Kafka broker (or the cluster in `KAFKA_BROKERS`), the
 * topics, a live clickstream (~2000 events/s), the example job `examples/page-views.ts` run by
 * `bin/sluice.js`, and a viewer printing each window result as it arrives. Ctrl-C stops everything
 * in order — generator, job, viewer, broker — and exits 0 when each part stopped cleanly.
 *
 * Run: `node scripts/demo.ts`.
 */
// First, before kafkajs loads: the viewer's and the generator's connections get the kafkajs fixes.
import '../src/kafka/kafkajs-fixes.ts';
import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, existsSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, type Consumer } from 'kafkajs';
import { runGenerator, type GeneratorStats } from '../examples/generator/clickstream.ts';
import { kafkaVersion, projectRoot, startLocalBroker, type LocalBroker } from './kafka/local-broker.ts';

const INPUT_TOPIC = 'page-views';
const OUTPUT_TOPIC = 'page-views-per-10s';
const PARTITIONS = 8;
const RATE = 2000;
const JOB = 'examples/page-views.ts';
/** The engine's default SLUICE_SHUTDOWN_TIMEOUT is 30 s; give it that and a margin before SIGKILL. */
const JOB_STOP_TIMEOUT_MS = 40_000;
const SUPERVISED = 'SLUICE_DEMO_SUPERVISED';

interface Parts {
  broker?: LocalBroker;
  consumer?: Consumer;
  generator?: { abort: AbortController; done: Promise<GeneratorStats> };
  job?: ChildProcess;
  /** The job exited on its own, and that was reported. */
  jobFailed?: boolean;
}

const say = (line: string): void => console.log(line);

/**
 * Ctrl-C signals the terminal's whole foreground process group: the Kafka JVM and the job would stop
 * at the same moment as this script, in no order (the job then cannot commit against a broker that
 * is already gone). So the demo proper runs in a child in its own session, out of reach of the
 * terminal, and this parent forwards one signal to it.
 */
function supervise(): void {
  const script = fileURLToPath(import.meta.url);
  const child = spawn(process.execPath, [...process.execArgv, script, ...process.argv.slice(2)], {
    detached: true,
    stdio: 'inherit',
    env: { ...process.env, [SUPERVISED]: '1' },
  });
  let forwarded = false;
  const forward = (): void => {
    if (forwarded || child.exitCode !== null) return;
    forwarded = true;
    child.kill('SIGINT');
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, forward);
  child.on('exit', (code, signal) => process.exit(code ?? (signal ? 1 : 0)));
}

function clock(ms: number): string {
  return new Date(ms).toTimeString().slice(0, 8);
}

function formatResult(raw: string): string {
  try {
    const r = JSON.parse(raw) as { key?: unknown; windowStart?: unknown; windowEnd?: unknown; value?: unknown };
    if (typeof r.windowStart === 'number' && typeof r.windowEnd === 'number') {
      const views = typeof r.value === 'number' ? r.value.toString() : JSON.stringify(r.value);
      return `  ${clock(r.windowStart)}–${clock(r.windowEnd)}  ${String(r.key).padEnd(26)} ${views.padStart(7)}`;
    }
  } catch {
    // not JSON: shown raw below
  }
  return `  (unexpected result) ${raw}`;
}

function tail(file: string, lines: number): string {
  try {
    return readFileSync(file, 'utf8').trimEnd().split('\n').slice(-lines).join('\n');
  } catch {
    return '(no log)';
  }
}

async function startParts(parts: Parts, ctx: Context): Promise<void> {
  let brokers = process.env['KAFKA_BROKERS'];
  if (brokers) {
    say(`Kafka: ${brokers} (from KAFKA_BROKERS)`);
  } else {
    say(`Starting a local Kafka ${kafkaVersion()} broker (the first run downloads its jars with Maven)…`);
    parts.broker = await startLocalBroker();
    brokers = parts.broker.brokers;
    say(`Kafka: ${brokers} (ready in ${parts.broker.startupMs} ms)`);
  }
  if (ctx.stopping) return;

  // Quiet: kafkajs logs retried errors (e.g. the coordinator still being created) at ERROR level.
  const kafka = new Kafka({ clientId: 'sluice-demo', brokers: brokers.split(','), logLevel: logLevel.NOTHING });
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (const topic of [INPUT_TOPIC, OUTPUT_TOPIC]) {
      const created = await admin.createTopics({
        waitForLeaders: true,
        topics: [{ topic, numPartitions: PARTITIONS }],
      });
      say(`Topic ${topic}: ${created ? `created with ${PARTITIONS} partitions` : 'already exists'}`);
    }
  } finally {
    await admin.disconnect();
  }
  if (ctx.stopping) return;

  // The viewer joins before the job starts, so it can start from the latest offset and still miss nothing.
  const consumer = kafka.consumer({ groupId: `sluice-demo-viewer-${process.pid}-${Date.now()}` });
  parts.consumer = consumer;
  const joined = new Promise<void>((resolve) => consumer.on(consumer.events.GROUP_JOIN, () => resolve()));
  consumer.on(consumer.events.CRASH, ({ payload }) => {
    if (!payload.restart) ctx.fail(`the viewer crashed: ${payload.error.message}`);
  });
  await consumer.connect();
  await consumer.subscribe({ topics: [OUTPUT_TOPIC], fromBeginning: false });
  let lastWindow: string | undefined;
  await consumer.run({
    eachMessage: async ({ message }) => {
      const raw = message.value?.toString() ?? '';
      const window = /"windowStart":(\d+)/.exec(raw)?.[1] ?? '';
      if (lastWindow === undefined) say(`\n  ${'window'.padEnd(17)}  ${'page'.padEnd(26)} ${'views'.padStart(7)}`);
      else if (window !== lastWindow) say('');
      lastWindow = window;
      say(formatResult(raw));
    },
  });
  await Promise.race([
    joined,
    new Promise((_, reject) =>
      setTimeout(() => reject(new Error('the viewer did not join its group in 60 s')), 60_000).unref(),
    ),
  ]);
  if (ctx.stopping) return;

  const abort = new AbortController();
  let lastReport = Date.now();
  const done = runGenerator({
    brokers,
    topic: INPUT_TOPIC,
    ratePerSecond: RATE,
    pages: 20,
    signal: abort.signal,
    onProgress: ({ sent, byKind }) => {
      if (Date.now() - lastReport < 30_000) return;
      lastReport = Date.now();
      say(`  [generator] ${sent} events sent (${byKind.late} late, ${byKind.malformed} malformed: see the job's DLQ)`);
    },
  });
  parts.generator = { abort, done };
  done.catch((error: unknown) => ctx.fail(`the generator failed: ${String(error)}`));

  const bin = join(projectRoot, 'bin', 'sluice.js');
  if (!existsSync(bin)) throw new Error(`${bin} not found: the engine's entry point is missing`);
  const port = process.env['SLUICE_HTTP_PORT'] ?? '8080';
  const out = openSync(ctx.logFile, 'a');
  const job = spawn(process.execPath, [bin, 'run', JOB], {
    cwd: projectRoot,
    stdio: ['ignore', out, out],
    env: { ...process.env, KAFKA_BROKERS: brokers, SLUICE_HTTP_PORT: port },
  });
  closeSync(out);
  parts.job = job;
  job.on('exit', (code, signal) => {
    if (!ctx.stopping) {
      parts.jobFailed = true;
      say(`\nLast lines of ${ctx.logFile}:`);
      say(tail(ctx.logFile, 20));
      ctx.fail(`the job exited unexpectedly (${signal ?? `code ${code}`})`);
    }
  });

  say(`
Sluice demo running:
  input    ${INPUT_TOPIC}: ~${RATE} clicks/s (5% out of order, some late and malformed ones)
  job      ${JOB} (pid ${job.pid}), JSON logs in ${ctx.logFile}
  output   ${OUTPUT_TOPIC}: views per page in 10 s windows, printed below as each window closes
           (the first one about 15 s from now: 10 s window + 5 s allowed lateness)
  status   http://127.0.0.1:${port}/
  metrics  http://127.0.0.1:${port}/metrics
Press Ctrl-C to stop.`);
}

async function stopChild(child: ChildProcess, timeoutMs: number): Promise<string | undefined> {
  if (child.exitCode === null && child.signalCode === null) {
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    await exited;
    clearTimeout(timer);
  }
  if (child.exitCode === 0) return undefined;
  return `the job exited with ${child.signalCode ?? `code ${child.exitCode}`}`;
}

/** Stops in a fixed order, each step on its own: one failing step must not leave the others running. */
async function stopParts(parts: Parts): Promise<string[]> {
  const problems: string[] = [];
  const step = async (name: string, fn: () => Promise<string | undefined | void>): Promise<void> => {
    try {
      const problem = await fn();
      if (problem) problems.push(problem);
    } catch (error) {
      problems.push(`stopping the ${name} failed: ${String(error)}`);
    }
  };
  const { generator, job, consumer, broker } = parts;
  if (generator) {
    await step('generator', async () => {
      generator.abort.abort();
      const stats = await generator.done;
      say(`Generator stopped after ${stats.sent} events.`);
    });
  }
  if (job && !parts.jobFailed) {
    await step('job', async () => {
      say('Stopping the job (SIGTERM)…');
      return stopChild(job, JOB_STOP_TIMEOUT_MS);
    });
  }
  if (consumer) await step('viewer', () => consumer.disconnect());
  if (broker) {
    await step('broker', async () => {
      say('Stopping Kafka…');
      await broker.stop();
    });
  }
  return problems;
}

interface Context {
  readonly logFile: string;
  stopping: boolean;
  fail(reason: string): void;
}

async function main(): Promise<void> {
  const workDir = mkdtempSync(join(tmpdir(), 'sluice-demo-'));
  const parts: Parts = {};
  let startup: Promise<void> = Promise.resolve();
  let failure: string | undefined;

  const stop = async (reason: string): Promise<void> => {
    if (ctx.stopping) return;
    ctx.stopping = true;
    say(`\n${reason}: stopping…`);
    await startup.catch(() => undefined);
    const problems = await stopParts(parts);
    if (failure) problems.unshift(failure);
    for (const problem of problems) console.error(`! ${problem}`);
    if (parts.job) say(`Job log kept in ${ctx.logFile}`);
    process.exit(problems.length === 0 ? 0 : 1);
  };
  const ctx: Context = {
    logFile: join(workDir, 'demo.log'),
    stopping: false,
    fail: (reason) => {
      failure ??= reason;
      void stop('Failure');
    },
  };

  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => void stop(signal === 'SIGINT' ? 'Interrupted' : signal));
  }
  // Supervised: if the parent disappears without forwarding a signal, do not outlive it.
  const parent = process.ppid;
  setInterval(() => {
    if (process.ppid !== parent) void stop('Parent process gone');
  }, 1000).unref();

  startup = startParts(parts, ctx);
  await startup.catch((error: unknown) =>
    ctx.fail(`start-up failed: ${error instanceof Error ? error.message : String(error)}`),
  );
}

if (process.env[SUPERVISED] === '1') await main();
else supervise();
