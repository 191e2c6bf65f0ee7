/**
 * A stateless example job: drops bot traffic and adds a normalised `path` to each page view. No
 * window, no state, no repartition: records keep their key (the user) and their partition.
 *
 * Input `page-views`: JSON `{ page, user, ts }`. Output `page-views-clean`: `{ page, user, ts, path }`.
 */
import { defineJob } from 'sluice';

interface PageView {
  page: string;
  user: string;
  ts: number;
}

const isBot = (user: string): boolean => user.startsWith('bot-');

export default defineJob<PageView>({
  name: 'page-views-stateless',
  input: { topics: ['page-views'], format: 'json' },
  pipeline: (s) =>
    s
      .filter((e) => typeof e.page === 'string' && typeof e.user === 'string' && !isBot(e.user))
      .map((e) => ({ page: e.page, user: e.user, ts: e.ts, path: e.page.toLowerCase() })),
  output: { topic: 'page-views-clean' },
});
