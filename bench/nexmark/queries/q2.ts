/** Nexmark q2, selection: auction and price of the bids whose auction id is a multiple of 123 (the suite's SQL). */
import { defineJob } from 'sluice';
import type { Bid } from '../model.ts';
import { common, settingsFromEnv, type QuerySettings } from './common.ts';

export function q2(s: QuerySettings) {
  return defineJob<Bid>({
    ...common(s),
    input: { topics: [s.bids] },
    pipeline: (bids) => bids.filter((b) => b.auction % 123 === 0).map((b) => ({ auction: b.auction, price: b.price })),
    output: { topic: s.output },
  });
}

export default q2(settingsFromEnv('q2'));
