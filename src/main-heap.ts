/**
 * The main thread's V8 heap. V8 sizes a heap from the machine's memory (on a 24 GB host: 16 MiB
 * semi-spaces and a 4 GiB old generation) and collects lazily within it. Measured under a backlog
 * (docs/benchmarks.md), the main heap then held over 200 MB, nearly all of it garbage from kafkajs
 * decoding fetches, while its live set is a few tens of MB: the buffered records are array buffers
 * outside the heap, and the worker threads have heaps of their own (SLUICE_WORKER_HEAP). A running
 * heap cannot be resized, so `sluice run` starts itself again, in place, with the flags below:
 * `process.execve` keeps the process id, the environment, the open descriptors and the arguments,
 * so a container's PID 1, its signals and its logs are unchanged.
 */

/** Small semi-spaces (short-lived fetch objects die young) and an old generation with a ceiling. */
export const MAIN_HEAP_FLAGS: readonly string[] = ['--max-semi-space-size=2', '--max-old-space-size=128'];

const SIZING = /--max-(old-space|semi-space|heap)-size\b/;

/** The heap was sized already: by these flags, or by the user's own (command line or NODE_OPTIONS). */
export function heapSized(execArgv: readonly string[], nodeOptions: string | undefined): boolean {
  return execArgv.some((arg) => SIZING.test(arg)) || SIZING.test(nodeOptions ?? '');
}

/**
 * Replaces this process with itself on a sized heap, unless it already is one (then it returns). Where
 * the runtime cannot (no `process.execve`), the service runs on V8's default heap.
 */
export function sizeMainHeap(): void {
  if (heapSized(process.execArgv, process.env['NODE_OPTIONS'])) return;
  const execve = (process as { execve?: (file: string, args: string[], env: NodeJS.ProcessEnv) => never }).execve;
  if (typeof execve !== 'function') return;
  const script = process.argv[1];
  if (script === undefined) return;
  execve.call(
    process,
    process.execPath,
    [process.execPath, ...MAIN_HEAP_FLAGS, ...process.execArgv, script, ...process.argv.slice(2)],
    process.env,
  );
}
