/**
 * The records of `<job>-changelog`, a compacted topic with one partition per aggregating task
 * (Kafka Streams' store changelog). Three kinds of record, told apart by the first byte of the key:
 *
 * - a **window entry**: key `0x01 | f64 window start (big endian) | 0x00` (null group key) or
 *   `0x01 | f64 | 0x01 | group key UTF-8`; value the accumulator in the structured-clone format of
 *   `node:v8` (what `postMessage` uses: numbers, strings, plain objects, arrays, Map, Set, Date,
 *   BigInt and typed arrays round-trip; functions and class prototypes do not). A tombstone (null
 *   value) when the window closed. Compaction keeps the last value per (window, key).
 * - a **session entry** (session windows, whose end is not a function of their start): key
 *   `0x03 | f64 session start | 0x00` or `… | 0x01 | group key UTF-8`, as a window entry; value
 *   `f64 session end (big endian) | accumulator` (structured clone, as above). A merge writes a
 *   tombstone for every session merged away (and for the old start of one a late record moved) and a
 *   put for the result; a closed session stays until no record can reach it any more.
 * - the task's **progress**: key `0x00 | "progress"`; value JSON (below). One per partition, rewritten
 *   whenever it changes, so compaction keeps only the latest.
 *
 * Keys are bytes, not JSON, so that one (window, key) has exactly one key whatever the group key holds.
 */
import { deserialize, serialize } from 'node:v8';

const WINDOW = 0x01;
/** 0x02 is not a kind: a key with it is one this format never writes. */
const SESSION = 0x03;
const PROGRESS = 0x00;

export const PROGRESS_KEY: Uint8Array = Uint8Array.from([PROGRESS, ...new TextEncoder().encode('progress')]);

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { fatal: true });

/** What a changelog partition says about its task besides the windows. */
export interface Progress {
  /** The task (`topic:partition`) whose state this is: a changelog read for another task is refused. */
  task: string;
  /** The next input offset: every record below it is in the state. */
  end: number;
  /** Stream time at `end` (null before any record). */
  streamTime: number | null;
  /** Shuffle reader: per upstream partition, the last (offset, sequence) seen. */
  dedupe: Map<string, readonly [number, number]>;
  /** Shuffle reader: per upstream partition, its last reported stream time and idleness. */
  sources: Map<string, { streamTime: number; idle: boolean }>;
  /**
   * Upgraded from state kept in commit metadata: records below this offset were processed by the
   * previous version and are still being replayed (they rebuild windows but are not emitted again).
   */
  replayUntil?: number;
  /** While replaying: per upstream partition, the last (offset, sequence) replayed. */
  replayDedupe?: Map<string, readonly [number, number]>;
}

interface ProgressWire {
  v: 1;
  task: string;
  end: number;
  st: number | null;
  d?: Record<string, [number, number]>;
  w?: Record<string, [number | null, 0 | 1]>;
  r?: number;
  rd?: Record<string, [number, number]>;
}

function entryKey(kind: number, start: number, key: string | null): Uint8Array {
  const text = key === null ? undefined : encoder.encode(key);
  const out = new Uint8Array(10 + (text?.length ?? 0));
  out[0] = kind;
  new DataView(out.buffer).setFloat64(1, start, false);
  out[9] = text === undefined ? 0 : 1;
  if (text) out.set(text, 10);
  return out;
}

export function windowKey(start: number, key: string | null): Uint8Array {
  return entryKey(WINDOW, start, key);
}

export function sessionKey(start: number, key: string | null): Uint8Array {
  return entryKey(SESSION, start, key);
}

export type ChangelogKey = { kind: 'window' | 'session'; start: number; key: string | null } | { kind: 'progress' };

/** Reads a changelog key; undefined for bytes this format never writes. */
export function readChangelogKey(bytes: Uint8Array | null): ChangelogKey | undefined {
  if (bytes === null || bytes.length === 0) return undefined;
  if (bytes[0] === PROGRESS) {
    return bytes.length === PROGRESS_KEY.length && bytes.every((b, i) => b === PROGRESS_KEY[i])
      ? { kind: 'progress' }
      : undefined;
  }
  if ((bytes[0] !== WINDOW && bytes[0] !== SESSION) || bytes.length < 10) return undefined;
  const kind = bytes[0] === WINDOW ? 'window' : 'session';
  const start = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getFloat64(1, false);
  if (!Number.isFinite(start)) return undefined;
  if (bytes[9] === 0) return bytes.length === 10 ? { kind, start, key: null } : undefined;
  if (bytes[9] !== 1) return undefined;
  try {
    return { kind, start, key: decoder.decode(bytes.subarray(10)) };
  } catch {
    return undefined;
  }
}

/** Objects whose structured clone comes back as the same kind of object (tags from `Object.prototype.toString`). */
const CLONEABLE_TAGS = new Set(['[object Object]', '[object Array]', '[object Map]', '[object Set]', '[object Date]']);

/**
 * Throws a TypeError for a value whose structured clone would come back different: a function or a
 * symbol (structured clone refuses them too), or an instance of a class — it would come back a plain
 * object without its prototype and its private fields, and the aggregate would fail or be wrong after a
 * restore. Prototypes are compared by shape, not identity: the accumulator may come from another realm.
 */
function checkCloneable(value: unknown, seen: Set<object>): void {
  if (typeof value === 'function' || typeof value === 'symbol')
    throw new TypeError(`a ${typeof value} cannot be stored`);
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (ArrayBuffer.isView(value) || Object.prototype.toString.call(value) === '[object ArrayBuffer]') return;
  const proto = Object.getPrototypeOf(value) as object | null;
  const tag = Object.prototype.toString.call(value);
  // A built-in's prototype sits right on a realm's Object.prototype (whose own prototype is null).
  const plain =
    proto === null ||
    (tag === '[object Object]'
      ? Object.getPrototypeOf(proto) === null
      : CLONEABLE_TAGS.has(tag) && Object.getPrototypeOf(Object.getPrototypeOf(proto) as object) === null);
  if (!plain) {
    const name = (proto as { constructor?: { name?: unknown } }).constructor?.name;
    throw new TypeError(
      `an instance of ${typeof name === 'string' && name ? name : 'a class'} would lose its prototype in the changelog (use plain objects, arrays, Map, Set or Date)`,
    );
  }
  if (value instanceof Map || tag === '[object Map]') {
    for (const [k, v] of value as Map<unknown, unknown>) {
      checkCloneable(k, seen);
      checkCloneable(v, seen);
    }
  } else if (tag === '[object Set]') {
    for (const v of value as Set<unknown>) checkCloneable(v, seen);
  } else {
    for (const v of Object.values(value)) checkCloneable(v, seen);
  }
}

/**
 * An accumulator as changelog bytes; throws a TypeError for what would not come back the same (see
 * `checkCloneable`) and a DataCloneError for what structured clone refuses.
 */
export function encodeAccumulator(acc: unknown): Uint8Array {
  if (acc !== null && (typeof acc === 'object' || typeof acc === 'function' || typeof acc === 'symbol'))
    checkCloneable(acc, new Set());
  return serialize(acc);
}

export function decodeAccumulator(bytes: Uint8Array): unknown {
  return deserialize(bytes);
}

/** A session entry's value: its end, then its accumulator (throws as `encodeAccumulator`). */
export function encodeSession(end: number, acc: unknown): Uint8Array {
  const accBytes = encodeAccumulator(acc);
  const out = new Uint8Array(8 + accBytes.length);
  new DataView(out.buffer).setFloat64(0, end, false);
  out.set(accBytes, 8);
  return out;
}

/** Reads a session entry's value; throws (a RangeError or the deserializer's error) for bytes it cannot read. */
export function decodeSession(bytes: Uint8Array): { end: number; acc: unknown } {
  if (bytes.length < 9) throw new RangeError(`a session entry of ${bytes.length} bytes is too short`);
  const end = new DataView(bytes.buffer, bytes.byteOffset, bytes.length).getFloat64(0, false);
  if (!Number.isFinite(end)) throw new RangeError(`a session entry ends at ${end}`);
  return { end, acc: deserialize(bytes.subarray(8)) };
}

export function encodeProgress(progress: Progress): Uint8Array {
  const wire: ProgressWire = { v: 1, task: progress.task, end: progress.end, st: progress.streamTime };
  if (progress.dedupe.size > 0) {
    wire.d = {};
    for (const [source, [offset, sequence]] of progress.dedupe) wire.d[source] = [offset, sequence];
  }
  if (progress.sources.size > 0) {
    wire.w = {};
    for (const [source, mark] of progress.sources) {
      wire.w[source] = [Number.isFinite(mark.streamTime) ? mark.streamTime : null, mark.idle ? 1 : 0];
    }
  }
  if (progress.replayUntil !== undefined && progress.replayUntil > progress.end) {
    wire.r = progress.replayUntil;
    if (progress.replayDedupe && progress.replayDedupe.size > 0) {
      wire.rd = {};
      for (const [source, [offset, sequence]] of progress.replayDedupe) wire.rd[source] = [offset, sequence];
    }
  }
  return encoder.encode(JSON.stringify(wire));
}

/** Reads a progress record; undefined when it is not one this format wrote. */
export function decodeProgress(bytes: Uint8Array): Progress | undefined {
  let wire: Partial<ProgressWire>;
  try {
    wire = JSON.parse(decoder.decode(bytes)) as Partial<ProgressWire>;
  } catch {
    return undefined;
  }
  if (wire === null || typeof wire !== 'object' || wire.v !== 1) return undefined;
  if (typeof wire.task !== 'string' || typeof wire.end !== 'number') return undefined;
  const marks = (from: Record<string, [number, number]> | undefined): Map<string, readonly [number, number]> => {
    const out = new Map<string, readonly [number, number]>();
    for (const [source, mark] of Object.entries(from ?? {})) {
      if (Array.isArray(mark) && typeof mark[0] === 'number' && typeof mark[1] === 'number')
        out.set(source, [mark[0], mark[1]]);
    }
    return out;
  };
  const dedupe = marks(wire.d);
  const sources = new Map<string, { streamTime: number; idle: boolean }>();
  for (const [source, mark] of Object.entries(wire.w ?? {})) {
    if (!Array.isArray(mark)) continue;
    sources.set(source, { streamTime: typeof mark[0] === 'number' ? mark[0] : -Infinity, idle: mark[1] === 1 });
  }
  return {
    task: wire.task,
    end: wire.end,
    streamTime: typeof wire.st === 'number' ? wire.st : null,
    dedupe,
    sources,
    ...(typeof wire.r === 'number' ? { replayUntil: wire.r, replayDedupe: marks(wire.rd) } : {}),
  };
}
