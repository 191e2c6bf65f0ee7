/**
 * Loads a user's job module (TypeScript or JavaScript) and compiles it into a {@link JobPlan}. Runs
 * in every worker thread: the module's functions never cross threads, each thread loads its own.
 *
 * A `.ts`/`.mts`/`.cts` job is imported as it is: Node (22.18+) strips its types, so no loader hooks
 * are registered and nothing is compiled or cached. That takes erasable TypeScript only (no enums,
 * namespaces or parameter properties), and no job under a `node_modules` folder; Node's own error
 * says which, inside the JobLoadError. A job whose folder has no package.json "type" is still an ES
 * module when it uses `import`/`export` (Node detects the syntax), and may use `require` instead.
 */
import { stat } from 'node:fs/promises';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { JobLoadError, JobValidationError } from '../errors.ts';
import { isJobDefinition } from './define-job.ts';
import { compileJob, type JobPlan } from './plan.ts';
import { findSyntaxError } from './syntax-error.ts';

const TYPESCRIPT_EXTENSIONS = new Set(['.ts', '.mts', '.cts']);

/** One line: start-up prints load failures as a single line, and compilers' messages span several. */
function messageOf(error: unknown): string {
  const text = error instanceof Error ? error.message : String(error);
  const line = text.replace(/\s*\n\s*/g, ' ').trim();
  return error instanceof SyntaxError ? `SyntaxError: ${line}` : line;
}

/** The error for a module whose import failed: where it does not parse, when that is what failed. */
async function loadError(error: unknown, file: string, cwd: string): Promise<JobLoadError> {
  const syntax = await findSyntaxError(error, file, cwd);
  if (!syntax) {
    return new JobLoadError(`failed to load job module ${file}: ${messageOf(error)}${typeStrippingHint(file)}`, error);
  }
  const what = syntax.kind === 'unsupported' ? 'unsupported TypeScript syntax' : 'syntax error';
  const where = `${syntax.file}:${syntax.line}:${syntax.column}`;
  const importedBy = syntax.file === file ? '' : ` (imported by job module ${file})`;
  return new JobLoadError(`${what} in ${where}${importedBy}: ${syntax.message}`, error);
}

/** What to add to a failed import's message: why a TypeScript job cannot load on this Node at all. */
function typeStrippingHint(file: string): string {
  if (!TYPESCRIPT_EXTENSIONS.has(path.extname(file)) || process.features.typescript) return '';
  return (
    ` (Node ${process.version} is not stripping TypeScript types:` +
    ' Sluice needs Node 22.18 or newer, with type stripping on)'
  );
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
 * @throws JobLoadError when the file does not exist or importing it fails: for a module that does
 * not parse, `syntax error in <file>:<line>:<column>: <message>`, else the cause's message; the
 * error itself is kept as `cause`. The message is one line.
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

  let namespace: Record<string, unknown>;
  try {
    namespace = (await import(pathToFileURL(file).href)) as Record<string, unknown>;
  } catch (error) {
    throw await loadError(error, file, cwd);
  }
  return compileJob(pickJob(namespace, file));
}
