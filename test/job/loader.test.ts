/**
 * The job loader. Inside Jest, `import()` of a `.ts` module goes through Jest's own transform, so
 * the real check is in a child `node` process: Node's own type stripping, `sluice` resolved through
 * the package's `exports` with the `sluice-source` condition, as worker threads do.
 */
import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { afterAll, describe, expect, test } from '@jest/globals';
import { JobLoadError, JobValidationError } from '../../src/errors.ts';
import { loadJobPlan } from '../../src/job/loader.ts';
import { findSyntaxError } from '../../src/job/syntax-error.ts';
import { BROKEN_AT, writeBrokenJobs } from '../support/broken-jobs.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const fixtures = path.join(root, 'test/fixtures/jobs');
const loaderUrl = pathToFileURL(path.join(root, 'src/job/loader.ts')).href;

async function rejection(promise: Promise<unknown>): Promise<Error> {
  try {
    await promise;
  } catch (error) {
    return error as Error;
  }
  throw new Error('expected a rejection');
}

describe('loadJobPlan (in process)', () => {
  test('loads and compiles a valid job, resolving the path against cwd', async () => {
    const plan = await loadJobPlan('test/fixtures/jobs/page-count.ts', root);
    expect(plan).toMatchObject({
      name: 'page-count',
      inputTopics: ['page-views'],
      outputTopic: 'page-counts',
      repartitionTopic: 'page-count-repartition',
      window: { assigner: { kind: 'tumbling', sizeMs: 10_000 }, latenessMs: 5000 },
    });
    expect(plan.stage1.map((op) => op.label)).toEqual(['filter#1', 'keyBy#2']);
  });

  test('a missing file is a JobLoadError naming the path', async () => {
    const error = await rejection(loadJobPlan('test/fixtures/jobs/nope.ts', root));
    expect(error).toBeInstanceOf(JobLoadError);
    expect(error.message).toContain(path.join(fixtures, 'nope.ts'));
  });

  test('a directory is a JobLoadError', async () => {
    const error = await rejection(loadJobPlan(fixtures));
    expect(error).toBeInstanceOf(JobLoadError);
    expect(error.message).toContain('is not a file');
  });

  test('an invalid job is a JobValidationError', async () => {
    const error = await rejection(loadJobPlan(path.join(fixtures, 'invalid-slide.ts')));
    expect(error).toBeInstanceOf(JobValidationError);
    expect((error as JobValidationError).issues).toEqual(['window: slide (20000 ms) is larger than size (10000 ms)']);
  });

  test('a module that throws while loading is a JobLoadError with the cause', async () => {
    const error = await rejection(loadJobPlan(path.join(fixtures, 'throws-on-load.ts')));
    expect(error).toBeInstanceOf(JobLoadError);
    expect(error.message).toContain('boom while loading the job module');
    expect(error.message).toContain('throws-on-load.ts');
    expect((error.cause as Error).message).toBe('boom while loading the job module');
  });

  test('a module without a job export is a JobValidationError', async () => {
    const error = await rejection(loadJobPlan(path.join(fixtures, 'not-a-job.ts')));
    expect(error).toBeInstanceOf(JobValidationError);
    expect(error.message).toContain('has no default export (nor a named export "job")');
  });
});

/** Runs an ESM snippet in a child `node`, as the engine runs from sources, and parses its JSON output. */
function runNode(script: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    execFile(
      process.execPath,
      ['--conditions=sluice-source', '--input-type=module', '--eval', script],
      { cwd: root, timeout: 60_000 },
      (error, stdout, stderr) => {
        if (error) reject(new Error(`child failed: ${error.message}\n${stderr}`));
        else resolve(JSON.parse(stdout));
      },
    );
  });
}

const childScript = (jobPath: string): string => `
import { loadJobPlan } from ${JSON.stringify(loaderUrl)};
const report = async (p) => {
  try {
    const plan = await p;
    return { ok: true, name: plan.name, stage1: plan.stage1.map((op) => op.label), repartition: plan.repartitionTopic, window: plan.window && plan.window.assigner };
  } catch (error) {
    return { ok: false, name: error.name, code: error.code, message: error.message };
  }
};
// Twice: a second load in the same process gives the same plan.
const first = await report(loadJobPlan(${JSON.stringify(jobPath)}));
const second = await report(loadJobPlan(${JSON.stringify(jobPath)}));
process.stdout.write(JSON.stringify({ first, second }));
`;

describe('loadJobPlan (child node process)', () => {
  test('loads a TypeScript job importing `sluice`', async () => {
    const out = await runNode(childScript('test/fixtures/jobs/page-count.ts'));
    const expected = {
      ok: true,
      name: 'page-count',
      stage1: ['filter#1', 'keyBy#2'],
      repartition: 'page-count-repartition',
      window: { kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000 },
    };
    expect(out).toEqual({ first: expected, second: expected });
  });

  test('reports load and validation errors', async () => {
    const thrown = (await runNode(childScript('test/fixtures/jobs/throws-on-load.ts'))) as { first: unknown };
    expect(thrown.first).toEqual({
      ok: false,
      name: 'JobLoadError',
      code: 'SLUICE_JOB_LOAD_FAILED',
      message: expect.stringContaining('boom while loading the job module'),
    });
    const invalid = (await runNode(childScript('test/fixtures/jobs/invalid-slide.ts'))) as { first: unknown };
    expect(invalid.first).toEqual({
      ok: false,
      name: 'JobValidationError',
      code: 'SLUICE_JOB_INVALID',
      message: 'invalid job: window: slide (20000 ms) is larger than size (10000 ms)',
    });
  });
});

describe('loadJobPlan (child node process): jobs outside the project', () => {
  // A user's folder: no package.json (so no "type": "module"), `sluice` installed in its node_modules.
  const userDir = mkdtempSync(path.join(tmpdir(), 'sluice-user-job-'));
  mkdirSync(path.join(userDir, 'node_modules'));
  symlinkSync(root, path.join(userDir, 'node_modules', 'sluice'), 'dir');
  afterAll(() => rmSync(userDir, { recursive: true, force: true }));
  const job = (name: string, lines: string[]): string => {
    const file = path.join(userDir, name);
    writeFileSync(file, `${lines.join('\n')}\n`);
    return file;
  };
  const body = `{
  name: 'user-job',
  input: { topics: ['in'], format: 'json' },
  pipeline: (s) => s.keyBy((e: View) => e.page).window(tumbling('10s')).aggregate(count()),
  output: { topic: 'out' },
}`;
  const loaded = {
    ok: true,
    name: 'user-job',
    stage1: ['keyBy#1'],
    repartition: 'user-job-repartition',
    window: { kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000 },
  };

  test('an ES-module `.ts` job in a folder without "type": "module" loads', async () => {
    const file = job('esm-job.ts', [
      "import { count, defineJob, tumbling } from 'sluice';",
      'interface View { page: string }',
      `export default defineJob<View>(${body});`,
    ]);
    expect(await runNode(childScript(file))).toEqual({ first: loaded, second: loaded });
  });

  test('a CommonJS `.cts` job loads', async () => {
    const file = job('cjs-job.cts', [
      "const { count, defineJob, tumbling } = require('sluice') as typeof import('sluice');",
      'interface View { page: string }',
      `module.exports = defineJob<View>(${body});`,
    ]);
    expect(await runNode(childScript(file))).toEqual({ first: loaded, second: loaded });
  });

  test('TypeScript that Node cannot strip (an enum) is a JobLoadError saying so', async () => {
    const file = job('enum-job.ts', [
      "import { defineJob } from 'sluice';",
      'enum Kind { A }',
      'export default defineJob({',
      "  name: 'enum-job',",
      "  input: { topics: ['in'] },",
      '  pipeline: (s) => s.filter(() => Kind.A === 0),',
      "  output: { topic: 'out' },",
      '});',
    ]);
    const out = (await runNode(childScript(file))) as { first: unknown };
    expect(out.first).toEqual({
      ok: false,
      name: 'JobLoadError',
      code: 'SLUICE_JOB_LOAD_FAILED',
      message: expect.stringMatching(
        /^unsupported TypeScript syntax in .*enum-job\.ts:2:1: .*enum is not supported in strip-only mode/,
      ),
    });
  });
});

describe('a job module that does not parse: one line naming file, line and column', () => {
  const broken = writeBrokenJobs();
  afterAll(() => broken.remove());
  const at = (file: string): string => `${file}:${BROKEN_AT.line}:${BROKEN_AT.column}`;

  test.each([
    ['TypeScript (Node strips its types)', 'ts'],
    ['JavaScript .js', 'js'],
    ["an ES module .mjs (Node's own compiler: its SyntaxError has no location)", 'mjs'],
  ] as const)('%s', async (_what, kind) => {
    const file = broken[kind];
    const out = (await runNode(childScript(file))) as { first: { message: string }; second: unknown };
    expect(out.first).toEqual({
      ok: false,
      name: 'JobLoadError',
      code: 'SLUICE_JOB_LOAD_FAILED',
      message: expect.stringMatching(/^syntax error in .+:\d+:\d+: \S/),
    });
    expect(out.first.message.startsWith(`syntax error in ${at(file)}: `)).toBe(true);
    expect(out.first.message).not.toMatch(/\n|Transform failed|ERROR:/);
    expect(out.second).toEqual(out.first);
  });

  /**
   * The error a plain `node` throws importing the file, no tsx anywhere: what the built service
   * meets for a JavaScript job, and for TypeScript where Node strips types itself. SLUICE_TEST_NODE
   * names another Node binary to check (e.g. a Node 24 for its type stripping).
   */
  function nativeImportError(file: string): Promise<{ error: Error; typescript: boolean }> {
    const script = `
      const { pathToFileURL } = await import('node:url');
      let error = null;
      try { await import(pathToFileURL(${JSON.stringify(file)}).href); } catch (e) {
        error = { name: e.name, message: e.message, stack: e.stack, code: e.code };
      }
      process.stdout.write(JSON.stringify({ error, typescript: Boolean(process.features.typescript) }));`;
    return new Promise((resolve, reject) => {
      execFile(
        process.env['SLUICE_TEST_NODE'] ?? process.execPath,
        ['--no-warnings', '--input-type=module', '--eval', script],
        { timeout: 60_000, env: { ...process.env, NODE_OPTIONS: '' } },
        (error, stdout, stderr) => {
          if (error) return reject(new Error(`child failed: ${error.message}\n${stderr}`));
          const out = JSON.parse(stdout) as {
            error: { name: string; message: string; stack: string; code?: string } | null;
            typescript: boolean;
          };
          if (!out.error) return reject(new Error(`${file} loaded`));
          const rebuilt = out.error.name === 'SyntaxError' ? new SyntaxError(out.error.message) : new Error();
          Object.assign(rebuilt, { name: out.error.name, message: out.error.message, stack: out.error.stack });
          if (out.error.code !== undefined) Object.assign(rebuilt, { code: out.error.code });
          resolve({ error: rebuilt, typescript: out.typescript });
        },
      );
    });
  }

  test.each(['js', 'mjs'] as const)("Node's own error for a broken .%s job is located", async (kind) => {
    const { error } = await nativeImportError(broken[kind]);
    expect(error.name).toBe('SyntaxError');
    expect(await findSyntaxError(error, broken[kind])).toMatchObject({ file: broken[kind], ...BROKEN_AT });
  });

  test("Node's own type stripping (where this Node has it): a broken .ts job is located, an enum is unsupported", async () => {
    const { error, typescript } = await nativeImportError(broken.ts);
    expect(typescript).toBe(true); // the suite runs on Node 24
    expect(await findSyntaxError(error, broken.ts)).toMatchObject({ file: broken.ts, ...BROKEN_AT, kind: 'syntax' });
    const unsupported = await nativeImportError(broken.tsEnum);
    expect(await findSyntaxError(unsupported.error, broken.tsEnum)).toMatchObject({ line: 1, kind: 'unsupported' });
  });
});
