/**
 * Finding where a module does not parse, from each shape of error the runtimes we load jobs on throw.
 * The stacks below are verbatim what Node 20 and Node 24 produce; the loader test imports real files.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, test } from '@jest/globals';
import { findSyntaxError, locateByCompiling, syntaxErrorFrom } from '../../src/job/syntax-error.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'sluice-syntax-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
function file(name: string, text: string): string {
  const p = path.join(dir, name);
  writeFileSync(p, text);
  return p;
}

/** An error as Node makes it: the stack replaced by the decorated one, the code set. */
function nodeError(message: string, stack: string, code?: string): SyntaxError {
  const error = new SyntaxError(message);
  error.stack = stack;
  if (code !== undefined) Object.assign(error, { code });
  return error;
}

describe('esbuild (through tsx)', () => {
  test("tsx's message form: file, line and 0-based column; the column becomes 1-based", () => {
    const job = file('a.ts', 'export default {\n  name: "x",\n');
    const error = Object.assign(
      new Error(`Transform failed with 1 error:\n${job}:3:0: ERROR: Expected "}" but found end of file`),
      { name: 'TransformError' },
    );
    expect(syntaxErrorFrom(error, job)).toEqual({
      file: job,
      line: 3,
      column: 1,
      message: 'Expected "}" but found end of file',
      kind: 'syntax',
    });
  });

  test('several errors: the first, with how many more', () => {
    const job = file('b.ts', 'let a = };\n');
    const error = new Error(
      `Transform failed with 2 errors:\n${job}:1:4: ERROR: Unexpected "}"\n${job}:9:0: ERROR: Unexpected end of file`,
    );
    expect(syntaxErrorFrom(error, job)).toMatchObject({ line: 1, column: 5, message: 'Unexpected "}" (and 1 more)' });
  });

  test('errors[].location (esbuild itself): byte columns become character columns', () => {
    const error = Object.assign(new Error('Build failed with 1 error'), {
      errors: [
        {
          text: 'Unexpected ","',
          location: { file: '/jobs/é.ts', line: 12, column: 9, lineText: '  "é→": 1,,' },
        },
      ],
    });
    // 'é' and '→' take 2 and 3 bytes: byte 9 is character 6 (0-based), column 7.
    expect(syntaxErrorFrom(error, '/jobs/é.ts')).toEqual({
      file: '/jobs/é.ts',
      line: 12,
      column: 7,
      message: 'Unexpected ","',
      kind: 'syntax',
    });
  });

  test('tsx names a .mts source .ts: the report names the job module', () => {
    const job = file('c.mts', 'x\n');
    const error = new Error(`Transform failed with 1 error:\n${job.replace(/mts$/, 'ts')}:1:0: ERROR: Unexpected "x"`);
    expect(syntaxErrorFrom(error, job)?.file).toBe(job);
  });
});

describe("Node's decorated stack", () => {
  test('Node 24 type stripping, ERR_INVALID_TYPESCRIPT_SYNTAX with a caret', () => {
    const error = nodeError(
      'Unexpected token `,`. Expected an identifier, void, yield',
      [
        '/tmp/jobs/badtype.ts:3',
        'export default {',
        '  name: "x" as,',
        '              ^',
        '};',
        '',
        'SyntaxError [ERR_INVALID_TYPESCRIPT_SYNTAX]: Unexpected token `,`. Expected an identifier, void, yield',
        '    at parseTypeScript (node:internal/modules/typescript:72:36)',
      ].join('\n'),
      'ERR_INVALID_TYPESCRIPT_SYNTAX',
    );
    expect(syntaxErrorFrom(error, '/tmp/jobs/badtype.ts')).toEqual({
      file: '/tmp/jobs/badtype.ts',
      line: 3,
      column: 15,
      message: 'Unexpected token `,`. Expected an identifier, void, yield',
      kind: 'syntax',
    });
  });

  test('Node 24 at end of file: no caret, the column is the end of the line shown', () => {
    const error = nodeError(
      "Expected ',', got '<eof>'",
      [
        '/tmp/jobs/broken.ts:4',
        '    return 1;',
        '',
        "SyntaxError [ERR_INVALID_TYPESCRIPT_SYNTAX]: Expected ',', got '<eof>'",
        '    at parseTypeScript (node:internal/modules/typescript:72:36)',
      ].join('\n'),
      'ERR_INVALID_TYPESCRIPT_SYNTAX',
    );
    expect(syntaxErrorFrom(error, '/tmp/jobs/broken.ts')).toMatchObject({ line: 4, column: 14 });
  });

  test('Node 24 ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX (an enum) is reported as unsupported syntax', () => {
    const error = nodeError(
      'TypeScript enum is not supported in strip-only mode',
      [
        '/tmp/jobs/enum.ts:1',
        'enum E { A }',
        '^^^^^^^^^^^^',
        'export default E;',
        '',
        'SyntaxError [ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX]: TypeScript enum is not supported in strip-only mode',
      ].join('\n'),
      'ERR_UNSUPPORTED_TYPESCRIPT_SYNTAX',
    );
    expect(syntaxErrorFrom(error, '/tmp/jobs/enum.ts')).toMatchObject({ line: 1, column: 1, kind: 'unsupported' });
  });

  test('CommonJS (Node 20 and 24): the path and line, an empty source line at end of input', () => {
    const error = nodeError(
      'Unexpected end of input',
      [
        '/tmp/jobs/broken.cjs:5',
        '',
        '',
        '',
        'SyntaxError: Unexpected end of input',
        '    at wrapSafe (node:internal/modules/cjs/loader:1464:18)',
      ].join('\n'),
    );
    expect(syntaxErrorFrom(error, '/tmp/jobs/broken.cjs')).toMatchObject({ line: 5, column: 1 });
  });

  test('ES module linking (a missing export): a file URL, the caret under the name', () => {
    const error = nodeError(
      "The requested module './ok.mjs' does not provide an export named 'nope'",
      [
        'file:///tmp/jobs/missing.mjs:1',
        'import { nope } from "./ok.mjs";',
        '         ^^^^',
        "SyntaxError: The requested module './ok.mjs' does not provide an export named 'nope'",
        '    at ModuleJob._instantiate (node:internal/modules/esm/module_job:213:21)',
      ].join('\n'),
    );
    expect(syntaxErrorFrom(error, '/tmp/jobs/missing.mjs')).toMatchObject({
      file: '/tmp/jobs/missing.mjs',
      line: 1,
      column: 10,
    });
  });
});

describe('no location in the error', () => {
  test('an ES module SyntaxError says only what: the file is compiled again, without running it', async () => {
    const job = file('caret.mjs', 'export const a = 1;\nfunction f() {\n  return a +;\n}\nglobalThis.ran = true;\n');
    const error = nodeError(
      "Unexpected token ';'",
      "SyntaxError: Unexpected token ';'\n    at compileSourceTextModule",
    );
    expect(syntaxErrorFrom(error, job)).toBeUndefined();
    expect(await findSyntaxError(error, job)).toEqual({
      file: job,
      line: 3,
      column: 13,
      message: "Unexpected token ';'",
      kind: 'syntax',
    });
  });

  test('a file that compiles: undefined (the error came from an imported module, or ran at load time)', async () => {
    const job = file('ok.mjs', 'export default JSON.parse("{");\n');
    expect(await locateByCompiling(job, 'Unexpected end of JSON input')).toBeUndefined();
    const runtime = nodeError(
      'Unexpected end of JSON input',
      `SyntaxError: Unexpected end of JSON input\n    at JSON.parse (<anonymous>)\n    at file://${job}:1:21`,
    );
    expect(await findSyntaxError(runtime, job)).toBeUndefined();
  });

  test('not a syntax error, or not an error: undefined', async () => {
    const job = file('d.mjs', 'x\n');
    for (const value of [new TypeError('x is not a function'), new Error('boom'), 'text', null, { errors: 'no' }]) {
      expect(await findSyntaxError(value, job)).toBeUndefined();
    }
  });
});
