/**
 * The sessions of one key, as `SessionStore` keeps them: the session record and the operations on a
 * key's list — sorted by start, never overlapping (so sorted by end too), which makes the sessions a
 * record touches one contiguous run of the list — and the retraction a reader of `update` output gets
 * for a session it saw that is gone.
 */
import type { WindowResult } from './state-store.ts';

export interface Session {
  readonly key: string | null;
  start: number;
  end: number;
  /** `undefined` once closed: a closed session is kept only to recognise late records. */
  acc: unknown;
  /** `gone`: merged away, forgotten or deleted; no longer in its key's list. */
  state: 'open' | 'closed' | 'gone';
  /** Merged away into this one (update mode: the retraction names where its records went). */
  mergedInto: Session | undefined;
  /** Changed by a live add since the last collect (update mode only). */
  dirty: boolean;
  /** Changed since the last drainChanges() (the changelog). */
  logged: boolean;
  /** The start its changelog entry has (written by a drain, or restored); undefined: none. */
  loggedStart: number | undefined;
  /** The range a reader of the output last saw (update mode); undefined: never emitted. */
  shownStart: number | undefined;
  shownEnd: number;
}

export function newSession(key: string | null, start: number, end: number, acc: unknown): Session {
  return {
    key,
    start,
    end,
    acc,
    state: 'open',
    mergedInto: undefined,
    dirty: false,
    logged: false,
    loggedStart: undefined,
    shownStart: undefined,
    shownEnd: end,
  };
}

/**
 * The run `list[first..last]` of the sessions that `[from, to)` overlaps (`first > last`: none; then
 * `first` is where a session `[from, to)` goes). Searched from the end: records mostly come late in
 * a key's sessions.
 */
export function overlapping(list: readonly Session[] | undefined, from: number, to: number): [number, number] {
  if (!list) return [0, -1];
  let last = list.length - 1;
  while (last >= 0 && (list[last] as Session).start >= to) last--;
  let first = last;
  while (first >= 0 && (list[first] as Session).end > from) first--;
  return [first + 1, last];
}

/** Inserts `session` into `list` by start, after any session with the same start. */
export function insertByStart(list: Session[], session: Session): void {
  let i = list.length;
  while (i > 0 && (list[i - 1] as Session).start > session.start) i--;
  list.splice(i, 0, session);
}

/** The range a reader saw of `session` is gone: its records are in `into` now (value `null`). */
export function retraction(session: Session, into: Session): WindowResult {
  return {
    key: session.key,
    windowStart: session.shownStart as number,
    windowEnd: session.shownEnd,
    value: null,
    final: false,
    mergedInto: { windowStart: into.start, windowEnd: into.end },
  };
}
