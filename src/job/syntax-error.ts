/**
 * Where a job module failed to parse, from the error its `import()` threw, so that start-up can say
 * `file:line:column` in one line. The error's shape depends on what compiled the module:
 *
 * - esbuild (through tsx): `errors[].location` `{ file, line, column }` (line 1-based, column 0-based
 *   in bytes), or — tsx deletes `errors` — only the message `Transform failed with 1 error:\n
 *   /path/job.ts:12:4: ERROR: Expected "}" but found end of file`.
 * - Node's own TypeScript stripping (Node 22.6+): a `SyntaxError` with code
 *   `ERR_INVALID_TYPESCRIPT_SYNTAX` (or `ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX`) whose stack starts with
 *   `/path/job.ts:12`, the source line and, when the span has one, a caret line under the column.
 * - V8 compiling CommonJS, or linking ES modules (a missing export): the same decorated stack, the
 *   first line `/path/job.js:12` or `file:///path/job.mjs:12`.
 * - V8 compiling an ES module: a bare `SyntaxError: Unexpected token ';'` with no location at all (Node
 *   20 and 24). Node prints the location only when such an error ends the process, so
 *   {@link locateByCompiling} compiles the file again, in a child process that never runs it, and
 *   reads the location from what that child prints.
 */
import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SyntaxErrorReport {
  /** The module that does not parse (the job module, or a module it imports). */
  readonly file: string;
  /** 1-based. */
  readonly line: number;
  /** 1-based, in characters. */
  readonly column: number;
  /** The compiler's message, on one line. */
  readonly message: string;
  /** `unsupported`: valid TypeScript that type stripping cannot run (an `enum`, a `namespace`). */
  readonly kind: 'syntax' | 'unsupported';
}

const TYPESCRIPT = /\.[cm]?tsx?$/;

function oneLine(text: string): string {
  return text.replace(/\s*\n\s*/g, ' ').trim();
}

function field(value: unknown, key: string): unknown {
  return typeof value === 'object' && value !== null ? (value as Record<string, unknown>)[key] : undefined;
}

/** esbuild counts columns in UTF-8 bytes; editors count characters. */
function charColumn(lineText: string | undefined, byteColumn: number): number {
  const bytes = lineText === undefined ? undefined : Buffer.from(lineText, 'utf8');
  if (bytes === undefined || bytes.length < byteColumn) return byteColumn + 1; // not the line reported
  return bytes.subarray(0, byteColumn).toString('utf8').length + 1;
}

function lineOf(file: string, line: number): string | undefined {
  try {
    return readFileSync(file, 'utf8').split(/\r?\n/)[line - 1];
  } catch {
    return undefined;
  }
}

/** Where relative paths are resolved, and the job module being loaded (when known). */
interface Context {
  readonly cwd: string;
  readonly jobFile?: string | undefined;
}

function absolute(reported: string, ctx: Context): string {
  const file = reported.startsWith('file://') ? fileURLToPath(reported) : path.resolve(ctx.cwd, reported);
  return onDisk(file, ctx.jobFile);
}

/** How tsx names a module's source for esbuild: `.ts` for `.mts`/`.cts`, `.js` for `.mjs`. */
function asTsxNamesIt(file: string): string {
  return file.replace(/\.[mc]ts$/, '.ts').replace(/\.mjs$/, '.js');
}

/**
 * The file on disk a compiler reported: the job module when tsx renamed it (see
 * {@link asTsxNamesIt}), else an imported module's own name or its renamed original.
 */
function onDisk(reported: string, jobFile: string | undefined): string {
  if (jobFile !== undefined && (reported === jobFile || reported === asTsxNamesIt(jobFile))) return jobFile;
  if (existsSync(reported)) return reported;
  const ext = path.extname(reported);
  for (const other of ext === '.ts' ? ['.mts', '.cts'] : ext === '.js' ? ['.mjs'] : []) {
    const file = reported.slice(0, -ext.length) + other;
    if (existsSync(file)) return file;
  }
  return reported;
}

/** esbuild's structured errors (a bare esbuild `transform`, or a loader that keeps them). */
function fromEsbuildErrors(error: unknown, ctx: Context): SyntaxErrorReport | undefined {
  const errors = field(error, 'errors');
  if (!Array.isArray(errors)) return undefined;
  for (const entry of errors) {
    const location = field(entry, 'location');
    const file = field(location, 'file');
    const line = field(location, 'line');
    const column = field(location, 'column');
    const text = field(entry, 'text');
    if (typeof file !== 'string' || typeof line !== 'number' || typeof column !== 'number') continue;
    if (typeof text !== 'string') continue;
    const lineText = field(location, 'lineText');
    const more = errors.length > 1 ? ` (and ${errors.length - 1} more)` : '';
    return {
      file: absolute(file, ctx),
      line,
      column: charColumn(typeof lineText === 'string' ? lineText : undefined, column),
      message: oneLine(text) + more,
      kind: 'syntax',
    };
  }
  return undefined;
}

/** esbuild's formatted message: `/path/job.ts:12:4: ERROR: Expected "}" but found end of file`. */
function fromEsbuildMessage(message: string, ctx: Context): SyntaxErrorReport | undefined {
  const pattern = /^(.+?):(\d+):(\d+): ERROR: (.+)$/gm;
  const found = [...message.matchAll(pattern)];
  const first = found[0];
  if (!first?.[1] || !first[2] || !first[3] || !first[4]) return undefined;
  const file = absolute(first[1], ctx);
  const line = Number(first[2]);
  const more = found.length > 1 ? ` (and ${found.length - 1} more)` : '';
  return {
    file,
    line,
    column: charColumn(lineOf(file, line), Number(first[3])),
    message: oneLine(first[4]) + more,
    kind: 'syntax',
  };
}

/**
 * Node's decorated form, in an error's stack or in what a process printed when the error ended it:
 *
 * ```
 * /path/job.ts:12            (or file:///path/job.mjs:12)
 *   return a +;              the source line (more lines may follow for a longer span)
 *             ^              the column, when the span has one
 *
 * SyntaxError: Unexpected token ';'
 * ```
 */
function fromDecoratedStack(text: string, message: string, ctx: Context): SyntaxErrorReport | undefined {
  const lines = text.split('\n');
  const head = /^(file:\/\/\S+|\/.*|[A-Za-z]:[\\/].*):(\d+)$/.exec(lines[0] ?? '');
  if (!head?.[1] || !head[2]) return undefined;
  const snippet: string[] = [];
  for (const line of lines.slice(1)) {
    if (line.trim() === '' || /^\w*(Error|Exception)\b/.test(line)) break;
    snippet.push(line);
  }
  const caretAt = snippet.findIndex((l) => /^\s*\^+\s*$/.test(l));
  const source = snippet[0] ?? '';
  let column: number;
  if (caretAt > 0) column = (snippet[caretAt] ?? '').indexOf('^') + 1;
  else if (/<eof>|end of (input|file)/i.test(message)) column = source.length + 1;
  else column = source.search(/\S/) + 1 || 1;
  return { file: absolute(head[1], ctx), line: Number(head[2]), column, message: oneLine(message), kind: 'syntax' };
}

/**
 * What is known from the error alone, without compiling anything again. `jobFile`: the module whose
 * import threw, to recognise it under the name tsx gave it.
 */
export function syntaxErrorFrom(
  error: unknown,
  jobFile?: string,
  cwd: string = process.cwd(),
): SyntaxErrorReport | undefined {
  const ctx: Context = { cwd, jobFile };
  const fromErrors = fromEsbuildErrors(error, ctx);
  if (fromErrors) return fromErrors;
  if (!(error instanceof Error)) return undefined;
  const fromMessage = fromEsbuildMessage(error.message, ctx);
  if (fromMessage) return fromMessage;
  if (error.name !== 'SyntaxError') return undefined;
  const decorated = fromDecoratedStack(error.stack ?? '', error.message, ctx);
  if (!decorated) return undefined;
  return field(error, 'code') === 'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX'
    ? { ...decorated, kind: 'unsupported' }
    : decorated;
}

/**
 * The child's program: compile `file` as an ES module (types stripped first for TypeScript, where
 * this Node can) without linking or evaluating it, and let a syntax error end the process, so Node
 * prints it with its location. Warnings are off: the child's stderr is read, never shown.
 */
const COMPILE_ONLY = `
const file = process.argv[1];
let code = require('node:fs').readFileSync(file, 'utf8');
if (${TYPESCRIPT}.test(file)) {
  const { stripTypeScriptTypes } = require('node:module');
  if (typeof stripTypeScriptTypes !== 'function') process.exit(0);
  code = stripTypeScriptTypes(code);
}
new (require('node:vm').SourceTextModule)(code, { identifier: file });
`;

/**
 * Finds where an ES module fails to compile when the error says only what (see the module comment).
 * Resolves `undefined` when the file compiles (the error came from a module it imports, or was
 * thrown at run time by `JSON.parse` or `new RegExp`) or the child cannot tell.
 */
export function locateByCompiling(
  file: string,
  message: string,
  timeoutMs = 10_000,
): Promise<SyntaxErrorReport | undefined> {
  // CommonJS errors carry their location already; compiling such a file as a module would mislead.
  if (/\.c[jt]s$/.test(file)) return Promise.resolve(undefined);
  const env = { ...process.env };
  delete env['NODE_OPTIONS']; // a preloaded loader (tsx) is not needed to compile, and slows the child
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      ['--no-warnings', '--experimental-vm-modules', '-e', COMPILE_ONLY, file],
      { env, timeout: timeoutMs, encoding: 'utf8' },
      (error, _stdout, stderr) => {
        if (!error) return resolve(undefined);
        const report = fromDecoratedStack(stderr, /^SyntaxError: (.*)$/m.exec(stderr)?.[1] ?? message, {
          cwd: '/',
          jobFile: file,
        });
        resolve(report && path.resolve(report.file) === path.resolve(file) ? report : undefined);
      },
    );
  });
}

/**
 * Where `error` (thrown by importing `file`) says the module does not parse; `undefined` when it is
 * not a syntax error or no location can be found.
 */
export async function findSyntaxError(
  error: unknown,
  file: string,
  cwd: string = process.cwd(),
): Promise<SyntaxErrorReport | undefined> {
  const known = syntaxErrorFrom(error, file, cwd);
  if (known) return known;
  if (!(error instanceof Error) || error.name !== 'SyntaxError') return undefined;
  return locateByCompiling(file, error.message);
}
