/**
 * What a partition's committed offset carries in its commit metadata, so that a restart (or the next
 * owner after a rebalance) rebuilds exactly the state the previous owner had:
 *
 * - `e`: the end of what was processed (next offset after the last processed record). The committed
 *   offset itself may be lower — never past the earliest record an open window still needs — so the
 *   records between the committed offset and `e` are *replayed*: they rebuild open windows but are
 *   not dead-lettered or emitted again.
 * - `s`: the stream time at `e`, so lateness decisions made before the restart are made the same way.
 * - `d`: per source partition of a repartition topic, the last (offset, sequence) of the upstream
 *   record seen, so records written twice upstream (a crash between publish and commit) count once.
 * - `w`: per source partition of a repartition topic, its last reported stream time and idleness
 *   (the aggregating stage's stream time is the smallest of them).
 *
 * Kafka keeps commit metadata up to `offset.metadata.max.bytes` (4096 by default).
 */

export interface Checkpoint {
  end: number;
  streamTime: number | null;
  dedupe: Map<string, readonly [number, number]>;
  /** Repartitioned stage: the last stream time and idleness reported by each upstream partition. */
  sources: Map<string, { streamTime: number; idle: boolean }>;
}

interface Wire {
  v: 1;
  e: number;
  s?: number;
  d?: Record<string, [number, number]>;
  w?: Record<string, [number, 0 | 1]>;
}

export function encodeCheckpoint(checkpoint: Checkpoint): string {
  const wire: Wire = { v: 1, e: checkpoint.end };
  if (checkpoint.streamTime !== null && Number.isFinite(checkpoint.streamTime)) wire.s = checkpoint.streamTime;
  if (checkpoint.dedupe.size > 0) {
    wire.d = {};
    for (const [source, [offset, seq]] of checkpoint.dedupe) wire.d[source] = [offset, seq];
  }
  if (checkpoint.sources.size > 0) {
    wire.w = {};
    for (const [source, { streamTime, idle }] of checkpoint.sources) wire.w[source] = [streamTime, idle ? 1 : 0];
  }
  return JSON.stringify(wire);
}

/** Reads metadata written by {@link encodeCheckpoint}; anything else (another tool's commit) is ignored. */
export function decodeCheckpoint(metadata: string | null | undefined): Checkpoint | undefined {
  if (!metadata) return undefined;
  try {
    const wire = JSON.parse(metadata) as Partial<Wire>;
    if (wire.v !== 1 || typeof wire.e !== 'number') return undefined;
    const dedupe = new Map<string, readonly [number, number]>();
    for (const [source, mark] of Object.entries(wire.d ?? {})) {
      if (Array.isArray(mark) && typeof mark[0] === 'number' && typeof mark[1] === 'number')
        dedupe.set(source, [mark[0], mark[1]]);
    }
    const sources = new Map<string, { streamTime: number; idle: boolean }>();
    for (const [source, mark] of Object.entries(wire.w ?? {})) {
      if (Array.isArray(mark) && typeof mark[0] === 'number')
        sources.set(source, { streamTime: mark[0], idle: mark[1] === 1 });
    }
    return { end: wire.e, streamTime: typeof wire.s === 'number' ? wire.s : null, dedupe, sources };
  } catch {
    return undefined;
  }
}
