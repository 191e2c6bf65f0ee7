/**
 * Nexmark q11, user sessions: bids per bidder session, a session ending after 10 s without a bid.
 *
 * Sessions are the suite's (`SESSION(dateTime, INTERVAL '10' SECOND)`: start at the first bid, end at the
 * last + 10 s) but for two bids exactly 10 s apart: Flink's session windows touch and merge, Sluice's
 * (Spark's rule) are two sessions.
 */
import { count, defineJob, session } from 'sluice';
import type { Bid } from '../model.ts';
import { common, settingsFromEnv, type QuerySettings } from './common.ts';

export function q11(s: QuerySettings) {
  return defineJob<Bid>({
    ...common(s),
    input: { topics: [s.bids] },
    eventTime: (b) => b.dateTime,
    pipeline: (bids) =>
      bids
        .keyBy((b) => String(b.bidder))
        .window(session('10s'), { lateness: s.latenessMs, idleTimeout: 0 })
        .aggregate(count()),
    output: { topic: s.output },
  });
}

export default q11(settingsFromEnv('q11'));
