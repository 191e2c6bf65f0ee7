/**
 * What a partition's committed offset carries in its commit metadata, so that a restart (or the next
 * owner after a rebalance) rebuilds exactly the state the previous owner had:
 *
 * - `e`: the end of what was processed (next offset after the last processed record). The committed
 *   offset itself may be lower — never past the earliest record an open window still needs — so the
 *   records between the committed offset and `e` are *replayed*: they rebuild open windows but are
 *   not dead-lettered or emitted again.
 * - `s`: the stream time at `e`, so lateness decisions made before the restart are made the same way.
 * - per upstream partition of a repartition topic: the last (offset, sequence) of the upstream record
 *   seen (`d`), so records written twice upstream (a crash between publish and commit) count once;
 *   and its last reported stream time (`w`, relative to `s`) and idleness (`i`), since a re-keyed
 *   stage's stream time is the smallest of them.
 *
 * Kafka keeps commit metadata up to `offset.metadata.max.bytes` (4096 by default), so the upstream
 * partitions are stored by position in the job's list of input partitions (`n` entries, checked by
 * the hash `h`), not by name: about 16 bytes per input partition. {@link MAX_SOURCES} bounds it.
 */

export interface SourceMark {
  streamTime: number;
  idle: boolean;
}

export interface Checkpoint {
  end: number;
  streamTime: number | null;
  dedupe: Map<string, readonly [number, number]>;
  /** Repartitioned stage: the last stream time and idleness reported by each upstream partition. */
  sources: Map<string, SourceMark>;
}

/** Input partitions a re-keyed windowed job may have before its checkpoints outgrow Kafka's limit. */
export const MAX_SOURCES = 128;
export const METADATA_LIMIT_BYTES = 4096;

interface Wire {
  v: 2;
  e: number;
  s?: number;
  n?: number;
  h?: string;
  /** Per source: stream time minus `s` (or absolute without `s`); null = none yet. */
  w?: Array<number | null>;
  /** Positions of idle sources. */
  i?: number[];
  /** Per source: offset, or [offset, sequence] when the sequence is not 0; null = none. */
  d?: Array<number | [number, number] | null>;
}

/** FNV-1a over the source list: a checkpoint written for another partition layout is not misread. */
function layoutHash(sources: readonly string[]): string {
  let hash = 0x811c9dc5;
  for (const source of sources) {
    for (let i = 0; i < source.length; i++) hash = Math.imul(hash ^ source.charCodeAt(i), 0x01000193) >>> 0;
    hash = Math.imul(hash ^ 0x2c, 0x01000193) >>> 0;
  }
  return hash.toString(36);
}

export function encodeCheckpoint(checkpoint: Checkpoint, sources: readonly string[] = []): string {
  const wire: Wire = { v: 2, e: checkpoint.end };
  const base =
    checkpoint.streamTime !== null && Number.isFinite(checkpoint.streamTime) ? checkpoint.streamTime : undefined;
  if (base !== undefined) wire.s = base;
  if (sources.length > 0 && (checkpoint.sources.size > 0 || checkpoint.dedupe.size > 0)) {
    wire.n = sources.length;
    wire.h = layoutHash(sources);
    if (checkpoint.sources.size > 0) {
      const idle: number[] = [];
      wire.w = sources.map((source, index) => {
        const mark = checkpoint.sources.get(source);
        if (mark?.idle) idle.push(index);
        if (!mark || !Number.isFinite(mark.streamTime)) return null;
        return base === undefined ? mark.streamTime : mark.streamTime - base;
      });
      if (idle.length > 0) wire.i = idle;
    }
    if (checkpoint.dedupe.size > 0) {
      wire.d = sources.map((source) => {
        const mark = checkpoint.dedupe.get(source);
        if (!mark) return null;
        return mark[1] === 0 ? mark[0] : [mark[0], mark[1]];
      });
    }
  }
  return JSON.stringify(wire);
}

/**
 * Reads metadata written by {@link encodeCheckpoint}; anything else (another tool's commit) is ignored.
 * Per-source marks written for a different list of input partitions are dropped: the stage then waits
 * for every upstream partition to report again.
 */
export function decodeCheckpoint(
  metadata: string | null | undefined,
  sources: readonly string[] = [],
): Checkpoint | undefined {
  if (!metadata) return undefined;
  let wire: Partial<Wire>;
  try {
    wire = JSON.parse(metadata) as Partial<Wire>;
  } catch {
    return undefined;
  }
  if (wire === null || typeof wire !== 'object' || wire.v !== 2 || typeof wire.e !== 'number') return undefined;
  const streamTime = typeof wire.s === 'number' ? wire.s : null;
  const dedupe = new Map<string, readonly [number, number]>();
  const marks = new Map<string, SourceMark>();
  if (wire.n === sources.length && wire.h === layoutHash(sources)) {
    const idle = new Set(Array.isArray(wire.i) ? wire.i : []);
    if (Array.isArray(wire.w)) {
      wire.w.forEach((t, index) => {
        const source = sources[index];
        if (source === undefined) return;
        const absolute = typeof t === 'number' ? t + (streamTime ?? 0) : -Infinity;
        if (typeof t === 'number' || idle.has(index))
          marks.set(source, { streamTime: absolute, idle: idle.has(index) });
      });
    }
    if (Array.isArray(wire.d)) {
      wire.d.forEach((mark, index) => {
        const source = sources[index];
        if (source === undefined) return;
        if (typeof mark === 'number') dedupe.set(source, [mark, 0]);
        else if (Array.isArray(mark) && typeof mark[0] === 'number' && typeof mark[1] === 'number')
          dedupe.set(source, [mark[0], mark[1]]);
      });
    }
  }
  return { end: wire.e, streamTime, dedupe, sources: marks };
}
