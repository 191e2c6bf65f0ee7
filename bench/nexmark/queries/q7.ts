/**
 * Nexmark q7, highest bid: per tumbling window of 10 s, the highest price and the bids at that price.
 *
 * The suite takes the maximum price per window and joins the bids back to it (`dateTime BETWEEN
 * window_end - 10 s AND window_end`, both ends included). Here one group key (`all`) holds a window's
 * bids and the accumulator keeps the highest price with its bids; the result is the suite's rows of that
 * window as one record. The window is `[start, end)`: a bid exactly at `end` at the same price, which the
 * suite's inclusive BETWEEN would also join to the earlier window, belongs to the next window only.
 */
import { custom, defineJob, tumbling } from 'sluice';
import type { Bid } from '../model.ts';
import {
  ALL,
  byTimeThenIds,
  common,
  settingsFromEnv,
  type HighestBids,
  type QuerySettings,
  type SelectedBid,
} from './common.ts';

export function q7(s: QuerySettings) {
  return defineJob<Bid>({
    ...common(s),
    input: { topics: [s.bids] },
    eventTime: (b) => b.dateTime,
    pipeline: (bids) =>
      bids
        .map((b): SelectedBid => ({
          auction: b.auction,
          bidder: b.bidder,
          price: b.price,
          dateTime: b.dateTime,
          extra: b.extra,
        }))
        .keyBy(() => ALL)
        .window(tumbling('10s'), { lateness: s.latenessMs, idleTimeout: 0 })
        .aggregate(
          custom({
            init: (): HighestBids => ({ price: -Infinity, bids: [] }),
            add: (acc, b: SelectedBid) =>
              b.price > acc.price
                ? { price: b.price, bids: [b] }
                : b.price === acc.price
                  ? { price: acc.price, bids: [...acc.bids, b] }
                  : acc,
            merge: (a, b) =>
              a.price === b.price ? { price: a.price, bids: [...a.bids, ...b.bids] } : a.price > b.price ? a : b,
            result: (acc): HighestBids => ({ price: acc.price, bids: [...acc.bids].sort(byTimeThenIds) }),
          }),
        ),
    output: { topic: s.output },
  });
}

export default q7(settingsFromEnv('q7'));
