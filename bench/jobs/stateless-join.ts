/**
 * The benchmark's stateless job with a table join: drop bots, then enrich each page view with its
 * user's row from a partitioned `users` table (co-partitioned: keyed by user, like the input) while
 * normalising the path — the stateless job's work plus one lookup per record, so the two rows of one
 * run give the join's cost per record.
 */
import { defineJob, table } from 'sluice';

interface PageView {
  page: string;
  user: string;
  ts: number;
}

const users = table<{ country: string }>(process.env['BENCH_USERS'] ?? 'bench-users');

export default defineJob<PageView>({
  name: process.env['BENCH_JOB_NAME'] ?? 'bench-stateless-join',
  input: { topics: [process.env['BENCH_INPUT'] ?? 'bench-input'] },
  batchInterval: Number(process.env['BENCH_BATCH_INTERVAL_MS'] ?? 1000),
  ...(process.env['BENCH_MAX_BATCH'] ? { maxBatchRecords: Number(process.env['BENCH_MAX_BATCH']) } : {}),
  pipeline: (s) =>
    s
      .filter((e) => typeof e.page === 'string' && !e.user.startsWith('bot-'))
      .joinTable(users, (e, u) => ({ ...e, path: e.page.toLowerCase(), country: u?.country ?? null }), {
        kind: 'left',
      }),
  output: { topic: process.env['BENCH_OUTPUT'] ?? 'bench-stateless-join-output' },
});
