/**
 * The process's memory settings, which only take effect when a process starts.
 *
 * - **The main thread's V8 heap.** V8 sizes a heap from the machine's memory (on a 24 GB host: 16 MiB
 *   semi-spaces and a 4 GiB old generation) and collects lazily within it. Measured under a backlog
 *   (docs/benchmarks.md), the main heap then held over 200 MB, nearly all of it garbage from kafkajs
 *   decoding fetches, while its live set is a few tens of MB: the buffered records are array buffers
 *   outside the heap, and the worker threads have heaps of their own (SLUICE_WORKER_HEAP).
 * - **glibc's malloc arenas.** Array buffers are malloc'ed by whichever thread creates them; glibc
 *   gives threads arenas of their own (up to 8 per core), and memory freed in one stays resident
 *   for it. One arena measured 20–30 MB less resident memory under a backlog, at no measurable cost
 *   in records/s (two threads do the allocating).
 *
 * A running process can change neither, so `sluice run` starts itself again, in place, with them:
 * `process.execve` keeps the process id, the open descriptors and the arguments, so a container's
 * PID 1, its signals and its logs are unchanged. The user's own settings win: heap flags on the
 * command line or in NODE_OPTIONS, or MALLOC_ARENA_MAX in the environment.
 */

/** Small semi-spaces (short-lived fetch objects die young) and an old generation with a ceiling. */
export const MAIN_HEAP_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--max-old-space-size=128'];
export const MALLOC_ARENAS = '1';

const SIZING = /--max-(old-space|semi-space|heap)-size\b/;

/** The heap was sized already: by these flags, or by the user's own (command line or NODE_OPTIONS). */
export function heapSized(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return execArgv.some((arg) => SIZING.test(arg)) || SIZING.test(nodeOptions ?? '');
}

type Execve = (file: string, args: string[], env: NodeJS.ProcessEnv) => never;

/**
 * Replaces this process with itself on a sized heap and allocator, unless it already is one (then it
 * returns). Where the runtime cannot (no `process.execve`), the service runs on V8's defaults.
 */
export function sizeProcessMemory(): void {
  if (heapSized(process.execArgv, process.env['NODE_OPTIONS'])) return;
  const execve = (process as { execve?: Execve }).execve;
  const script = process.argv[1];
  if (typeof execve !== 'function' || script === undefined) return;
  execve.call(
    process,
    process.execPath,
    [process.execPath, ...MAIN_HEAP_FLAGS, ...process.execArgv, script, ...process.argv.slice(2)],
    { MALLOC_ARENA_MAX: MALLOC_ARENAS, ...process.env },
  );
}
