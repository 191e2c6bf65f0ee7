/**
 * The shipped example job: page views per page in tumbling 10 s event-time windows.
 *
 * Input `page-views`: JSON `{ page, user, ts }` keyed by user. Output `page-views-per-10s`: one record
 * per page and window when the window closes, `{ key: page, windowStart, windowEnd, value: count }`.
 * Records more than 5 s late for their window go to `page-views-dlq`, as do values that are not JSON.
 */
import { defineJob, tumbling, count } from 'sluice';

/** What producers put on `page-views`; the filter below guards the shape at run time. */
interface PageView {
  page: string;
  user: string;
  ts: number;
}

export default defineJob<PageView>({
  name: 'page-views',
  input: { topics: ['page-views'], format: 'json' },
  eventTime: (e) => e.ts,
  batchInterval: '1s',
  pipeline: (s) =>
    s
      .filter((e) => typeof e.page === 'string')
      .keyBy((e) => e.page)
      .window(tumbling('10s'), { lateness: '5s', emit: 'final' })
      .aggregate(count()),
  output: { topic: 'page-views-per-10s' },
});
