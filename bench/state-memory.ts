/**
 * `npm run bench:state`: what state costs in memory. Fills one task's window store (the store an
 * aggregating task holds) with N distinct keys in one open window, as a batch would, drains its changes
 * for the changelog as a batch does, and reports the V8 heap it holds per open (key, window) entry.
 * Needs `--expose-gc` (the npm script and `npm run bench` pass it) so that only live memory is counted.
 *
 * Options: --keys N (1000000)
 */
import { parseArgs } from 'node:util';
import { avg, count } from '../src/windows/aggregators.ts';
import { WindowStore } from '../src/windows/window-store.ts';
import { type Aggregator } from '../src/windows/aggregators.ts';

export interface StateMemory {
  aggregator: string;
  keys: number;
  entries: number;
  heapBytes: number;
  bytesPerEntry: number;
  /** Average key length in characters (keys like `user-123456`). */
  keyChars: number;
}

function measure(name: string, aggregator: Aggregator<unknown, unknown, unknown>, keys: number): StateMemory {
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error('run with --expose-gc');
  gc();
  const before = process.memoryUsage().heapUsed;
  const store = new WindowStore({
    assigner: { kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000 },
    latenessMs: 5_000,
    emit: 'final',
    aggregator,
    idleTimeoutMs: 0,
  });
  let keyChars = 0;
  for (let i = 0; i < keys; i++) {
    const key = `user-${i}`;
    keyChars += key.length;
    store.add(key, 1_000 + (i % 5_000), { page: '/a', user: key, ts: 1_000 }, 0);
  }
  store.drainChanges();
  gc();
  const heapBytes = process.memoryUsage().heapUsed - before;
  const entries = store.openWindows;
  return { aggregator: name, keys, entries, heapBytes, bytesPerEntry: heapBytes / entries, keyChars: keyChars / keys };
}

export function stateMemory(keys: number): StateMemory[] {
  return [
    measure('count()', count(), keys),
    measure('avg(e => e.ts)', avg<{ ts: number }>((e) => e.ts) as never, keys),
  ];
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({ options: { keys: { type: 'string', default: '1000000' } } });
  const results = stateMemory(Number(values.keys));
  for (const r of results) {
    console.log(
      `${r.aggregator}: ${r.entries} open (key, window) entries, ${(r.heapBytes / 1e6).toFixed(1)} MB of heap, ` +
        `${Math.round(r.bytesPerEntry)} bytes per entry (keys of ${r.keyChars.toFixed(1)} characters)`,
    );
  }
  if (process.env['STATE_MEMORY_JSON']) console.log(JSON.stringify(results));
}
