/**
 * The process's memory settings: `sluice run` starts itself again with them unless the user sized the
 * heap; the restarted process keeps its id and arguments (checked on a real process: /proc).
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { describe, expect, test } from '@jest/globals';
import { heapSized, MAIN_HEAP_FLAGS, MALLOC_ARENAS } from '../src/process-memory.ts';

const root = new URL('../', import.meta.url).pathname;

describe('heapSized', () => {
  test('by the flags, on the command line or in NODE_OPTIONS; other flags do not count', () => {
    expect(heapSized([...MAIN_HEAP_FLAGS], undefined)).toBe(true);
    expect(heapSized(['--max-old-space-size=512'], undefined)).toBe(true);
    expect(heapSized(['--conditions=sluice-source'], '--max-semi-space-size=8')).toBe(true);
    expect(heapSized([], '--max-heap-size=300')).toBe(true);
    expect(heapSized(['--conditions=sluice-source', '--enable-source-maps'], '--trace-warnings')).toBe(false);
    expect(heapSized([], undefined)).toBe(false);
  });
});

describe('sizeProcessMemory', () => {
  /** Runs a script that sizes its memory and reports what it runs with. */
  function run(env: Record<string, string>): {
    pids: number[];
    execArgv: string[];
    arena: string | null;
    args: string[];
  } {
    const script = [
      "import { writeSync } from 'node:fs';",
      "writeSync(1, JSON.stringify({ pid: process.pid }) + '\\n');",
      `const { sizeProcessMemory } = await import('${root}src/process-memory.ts');`,
      'sizeProcessMemory();',
      'console.log(JSON.stringify({ pid: process.pid, execArgv: process.execArgv, arena: process.env.MALLOC_ARENA_MAX ?? null, args: process.argv.slice(2) }));',
    ].join('\n');
    const file = `${root}test/artifacts/size-memory-${process.pid}.mjs`;
    mkdirSync(`${root}test/artifacts`, { recursive: true });
    writeFileSync(file, script);
    const { NODE_OPTIONS: _, ...rest } = process.env;
    const out = execFileSync(process.execPath, [file, 'run', 'job.ts'], {
      cwd: root,
      encoding: 'utf8',
      env: { ...rest, ...env },
    });
    const lines = out
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const last = lines[lines.length - 1]!;
    return {
      pids: lines.map((l) => l['pid'] as number),
      execArgv: last['execArgv'] as string[],
      arena: last['arena'] as string | null,
      args: last['args'] as string[],
    };
  }

  test('starts again in place with the heap flags and one malloc arena, its arguments kept', () => {
    const r = run({});
    // The first line comes from before the restart, the last from after: the same process.
    expect(r.pids).toHaveLength(3);
    expect(new Set(r.pids).size).toBe(1);
    expect(r.execArgv).toEqual([...MAIN_HEAP_FLAGS]);
    expect(r.arena).toBe(MALLOC_ARENAS);
    expect(r.args).toEqual(['run', 'job.ts']);
  });

  test('the user’s own settings win: a sized heap is not started again, an arena count is kept', () => {
    const own = run({ NODE_OPTIONS: '--max-old-space-size=300' });
    expect(own.pids).toHaveLength(2);
    expect(own.execArgv).toEqual([]);
    expect(run({ MALLOC_ARENA_MAX: '4' }).arena).toBe('4');
  });
});
