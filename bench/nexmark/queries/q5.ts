/**
 * Nexmark q5, hot items: per sliding window of 10 s every 2 s, the auction(s) with the most bids.
 *
 * The suite counts bids per (auction, window), takes the maximum count per window and joins the two:
 * two aggregations in a row. A Sluice job has one aggregation (`aggregate` ends the pipeline), so the
 * window holds every bid (one group key, `all`) and its accumulator counts per auction; the result is the
 * maximum count and every auction that has it (ties included, ascending) — the suite's rows of that window,
 * as one record. The count per auction happens inside one task (the suite's first aggregation runs in
 * parallel by auction; its second, per window, does not).
 */
import { custom, defineJob, sliding } from 'sluice';
import type { Bid } from '../model.ts';
import { ALL, common, settingsFromEnv, type HotItems, type QuerySettings } from './common.ts';

export function q5(s: QuerySettings) {
  return defineJob<Bid>({
    ...common(s),
    input: { topics: [s.bids] },
    eventTime: (b) => b.dateTime,
    pipeline: (bids) =>
      bids
        .map((b) => b.auction) // only the auction id goes through the repartition topic
        .keyBy(() => ALL)
        .window(sliding('10s', '2s'), { lateness: s.latenessMs, idleTimeout: 0 })
        .aggregate(
          custom({
            init: () => new Map<number, number>(),
            // In place: a window's map is its own, and copying it per bid would be quadratic.
            add: (counts, auction: number) => counts.set(auction, (counts.get(auction) ?? 0) + 1),
            merge: (a, b) => {
              const merged = new Map(a);
              for (const [auction, n] of b) merged.set(auction, (merged.get(auction) ?? 0) + n);
              return merged;
            },
            result: (counts): HotItems => {
              let num = 0;
              for (const n of counts.values()) if (n > num) num = n;
              const auctions: number[] = [];
              for (const [auction, n] of counts) if (n === num) auctions.push(auction);
              return { num, auctions: auctions.sort((x, y) => x - y) };
            },
          }),
        ),
    output: { topic: s.output },
  });
}

export default q5(settingsFromEnv('q5'));
