/**
 * Job modules that do not parse, written to a fresh temporary folder (a file that does not parse
 * cannot live in the source tree: the type checker, the linter and Prettier read it). Each sits in
 * its own folder: tsx resolves `job.js` to a `job.ts` beside it.
 */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';

/** A job whose `pipeline` method lacks its closing brace: line 6, column 3 is the stray comma. */
const BROKEN_TS = `export default {
  name: 'broken',
  input: { topics: ['in'] },
  pipeline(s: { map(f: (v: unknown) => unknown): unknown }) {
    return s.map((v) => v);
  ,
  output: { topic: 'out' },
};
`;
const BROKEN_JS = BROKEN_TS.replace(/pipeline\(s: .*\) \{/, 'pipeline(s) {');

export const BROKEN_AT = { line: 6, column: 3 } as const;

export interface BrokenJobs {
  /** TypeScript (tsx/esbuild on Node 20; Node's type stripping where it loads `.ts` itself). */
  readonly ts: string;
  /** JavaScript in a folder without package.json (`.js`: tsx transforms it when it is registered). */
  readonly js: string;
  /** An ES module Node always compiles itself: its SyntaxError carries no location. */
  readonly mjs: string;
  /** A TypeScript `enum`, which type stripping cannot run. */
  readonly tsEnum: string;
  remove(): void;
}

export function writeBrokenJobs(): BrokenJobs {
  const dir = mkdtempSync(path.join(tmpdir(), 'sluice-broken-'));
  const write = (folder: string, name: string, text: string): string => {
    mkdirSync(path.join(dir, folder), { recursive: true });
    const file = path.join(dir, folder, name);
    writeFileSync(file, text);
    return file;
  };
  return {
    ts: write('ts', 'broken.ts', BROKEN_TS),
    js: write('js', 'broken.js', BROKEN_JS),
    mjs: write('mjs', 'broken.mjs', BROKEN_JS),
    tsEnum: write('enum', 'enum.ts', 'enum Kind {\n  A,\n}\nexport default { name: String(Kind.A) };\n'),
    remove: () => rmSync(dir, { recursive: true, force: true }),
  };
}
