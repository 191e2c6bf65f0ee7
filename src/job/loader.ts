/**
 * Loads a user's job module (TypeScript or JavaScript) and compiles it into a {@link JobPlan}. Runs
 * in every worker thread: the module's functions never cross threads, each thread loads its own.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { JobLoadError, JobValidationError } from '../errors.ts';
import { isJobDefinition } from './define-job.ts';
import { compileJob, type JobPlan } from './plan.ts';

const TYPESCRIPT_EXTENSIONS = new Set(['.ts', '.mts', '.cts', '.tsx']);

// Module state is per thread (each worker thread has its own module graph): once per thread.
let typescriptLoader: Promise<void> | undefined;

/**
 * Registers tsx's ESM hooks so that `import()` of a `.ts` module works on a plain `node`. A second
 * call is a no-op. Where registering is impossible (Jest runs modules in its own VM, older Node
 * without `module.register`) it is skipped: such environments load TypeScript themselves, or the
 * import fails with a `JobLoadError` that says why.
 */
function ensureTypeScriptLoader(): Promise<void> {
  typescriptLoader ??= (async () => {
    try {
      const { register } = await import('tsx/esm/api');
      register();
      // A `.ts` job in a folder without "type": "module" is CommonJS to Node: tsx's require hook
      // loads it (and its `import 'sluice'`) without Node's require(esm) cycle error.
      const cjs = await import('tsx/cjs/api');
      cjs.register();
    } catch {
      // Tolerated, see above.
    }
  })();
  return typescriptLoader;
}

function messageOf(error: unknown): string {
  return error instanceof Error ? error.message : String(error);
}

/** The job a module exports: `default`, else a named `job`. */
function pickJob(namespace: Record<string, unknown>, file: string): unknown {
  const job = namespace['default'] ?? namespace['job'];
  if (job === undefined) {
    throw new JobValidationError([`job module ${file} has no default export (nor a named export "job")`]);
  }
  // A module compiled to CommonJS exposes `module.exports` as `default`; the job is one level down.
  if (!isJobDefinition(job) && typeof job === 'object' && job !== null) {
    const inner = (job as Record<string, unknown>)['default'];
    if (isJobDefinition(inner)) return inner;
  }
  return job;
}

/**
 * Loads the job module at `modulePath` (relative paths are resolved against `cwd`) and compiles its
 * default export (or its named export `job`).
 *
 * @throws JobLoadError when the file does not exist or importing it fails (the cause's message is
 * included, the error itself kept as `cause`).
 * @throws JobValidationError when the module does not export a valid job.
 */
export async function loadJobPlan(modulePath: string, cwd: string = process.cwd()): Promise<JobPlan> {
  const file = path.resolve(cwd, modulePath);
  let isFile: boolean;
  try {
    isFile = (await stat(file)).isFile();
  } catch (error) {
    throw new JobLoadError(`job module not found: ${file}`, error);
  }
  if (!isFile) throw new JobLoadError(`job module is not a file: ${file}`);

  if (TYPESCRIPT_EXTENSIONS.has(path.extname(file))) await ensureTypeScriptLoader();
  let namespace: Record<string, unknown>;
  try {
    namespace = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw new JobLoadError(`failed to load job module ${file}: ${messageOf(error)}`, error);
  }
  return compileJob(pickJob(namespace, file));
}
