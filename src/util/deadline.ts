/** Racing a promise against a deadline, with nothing left armed either way. */
import { setTimeout as sleep } from 'node:timers/promises';

/** What {@link before} throws when the deadline passes first. */
export const DEADLINE_PASSED = Symbol('deadline passed');

/**
 * `running`, or its failure; past `deadline` (epoch ms), throws {@link DEADLINE_PASSED} and
 * `running` goes on unobserved (a later failure of it is not reported as unhandled).
 */
export async function before<T>(running: Promise<T>, deadline: number): Promise<T> {
  const timer = new AbortController();
  running.catch(() => undefined);
  try {
    return await Promise.race([
      running,
      sleep(Math.max(0, deadline - Date.now()), undefined, { signal: timer.signal }).then(() => {
        throw DEADLINE_PASSED;
      }),
    ]);
  } finally {
    timer.abort();
  }
}
