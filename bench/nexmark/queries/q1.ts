/**
 * Nexmark q1, currency conversion: every bid with its price in euro, `0.908 * price`. The suite's column
 * is `DECIMAL(23, 3)`, exact: computed as `price * 908 / 1000` (an exact integer divided once), the JSON
 * number is that decimal, where `0.908 * price` in floating point prints e.g. `33.596000000000004` for 37.
 */
import { defineJob } from 'sluice';
import type { Bid } from '../model.ts';
import { common, settingsFromEnv, type QuerySettings, type SelectedBid } from './common.ts';

export function q1(s: QuerySettings) {
  return defineJob<Bid>({
    ...common(s),
    input: { topics: [s.bids] },
    pipeline: (bids) =>
      bids.map((b): SelectedBid => ({
        auction: b.auction,
        bidder: b.bidder,
        price: (b.price * 908) / 1000,
        dateTime: b.dateTime,
        extra: b.extra,
      })),
    output: { topic: s.output },
  });
}

export default q1(settingsFromEnv('q1'));
