/**
 * What every Nexmark query job reads from the environment (set by `bench/nexmark/run.ts`), and the shapes
 * of their results (`../reference.ts` recomputes them on its own).
 */

export interface QuerySettings {
  /** Job name: consumer group and prefix of the internal topics. */
  name: string;
  bids: string;
  auctions: string;
  persons: string;
  output: string;
  /** Window lateness: the model's out-of-orderness (0 when its events are in order). */
  latenessMs: number;
  batchIntervalMs: number;
  maxBatchRecords?: number;
}

const env = (name: string): string | undefined => process.env[name];

/** Settings from `NEXMARK_*` variables; the defaults are what the tests use. */
export function settingsFromEnv(query: string): QuerySettings {
  const maxBatch = env('NEXMARK_MAX_BATCH');
  return {
    name: env('NEXMARK_JOB_NAME') ?? `nexmark-${query}`,
    bids: env('NEXMARK_BIDS') ?? 'nexmark-bids',
    auctions: env('NEXMARK_AUCTIONS') ?? 'nexmark-auctions',
    persons: env('NEXMARK_PERSONS') ?? 'nexmark-persons',
    output: env('NEXMARK_OUTPUT') ?? `nexmark-${query}-out`,
    latenessMs: Number(env('NEXMARK_LATENESS_MS') ?? 0),
    batchIntervalMs: Number(env('NEXMARK_BATCH_INTERVAL_MS') ?? 1000),
    ...(maxBatch ? { maxBatchRecords: Number(maxBatch) } : {}),
  };
}

/** The job spec fields every query sets the same way. */
export function common(s: QuerySettings): { name: string; batchInterval: number; maxBatchRecords?: number } {
  return {
    name: s.name,
    batchInterval: s.batchIntervalMs,
    ...(s.maxBatchRecords !== undefined ? { maxBatchRecords: s.maxBatchRecords } : {}),
  };
}

/** The one group key of the queries that aggregate all bids of a window (q5, q7). */
export const ALL = 'all';

/** A bid as q0, q1 and q7 select it (the suite's columns: no channel, no url). */
export interface SelectedBid {
  auction: number;
  bidder: number;
  price: number;
  dateTime: number;
  extra: string;
}

/** q5's result per window: the auctions with the most bids, and that count. */
export interface HotItems {
  num: number;
  auctions: number[];
}

/** q7's result per window: the highest price and every bid at that price. */
export interface HighestBids {
  price: number;
  bids: SelectedBid[];
}

/** Ties in q7 in a stable order (bids of one window reach the aggregate in no fixed order). */
export function byTimeThenIds(a: SelectedBid, b: SelectedBid): number {
  return a.dateTime - b.dateTime || a.auction - b.auction || a.bidder - b.bidder || (a.extra < b.extra ? -1 : 1);
}
