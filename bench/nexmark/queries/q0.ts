/** Nexmark q0, pass-through: every bid, as the suite selects it (auction, bidder, price, dateTime, extra). */
import { defineJob } from 'sluice';
import type { Bid } from '../model.ts';
import { common, settingsFromEnv, type QuerySettings, type SelectedBid } from './common.ts';

export function q0(s: QuerySettings) {
  return defineJob<Bid>({
    ...common(s),
    input: { topics: [s.bids] },
    pipeline: (bids) =>
      bids.map((b): SelectedBid => ({
        auction: b.auction,
        bidder: b.bidder,
        price: b.price,
        dateTime: b.dateTime,
        extra: b.extra,
      })),
    output: { topic: s.output },
  });
}

export default q0(settingsFromEnv('q0'));
