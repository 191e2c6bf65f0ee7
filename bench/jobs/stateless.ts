/** The benchmark's stateless job: drop bots, normalise the path. */
import { defineJob } from 'sluice';

interface PageView {
  page: string;
  user: string;
  ts: number;
}

export default defineJob<PageView>({
  name: process.env['BENCH_JOB_NAME'] ?? 'bench-stateless',
  input: { topics: [process.env['BENCH_INPUT'] ?? 'bench-input'] },
  batchInterval: Number(process.env['BENCH_BATCH_INTERVAL_MS'] ?? 1000),
  // The default (50 000) unless the run asks for another.
  ...(process.env['BENCH_MAX_BATCH'] ? { maxBatchRecords: Number(process.env['BENCH_MAX_BATCH']) } : {}),
  pipeline: (s) =>
    s
      .filter((e) => typeof e.page === 'string' && !e.user.startsWith('bot-'))
      .map((e) => ({ ...e, path: e.page.toLowerCase() })),
  output: { topic: process.env['BENCH_OUTPUT'] ?? 'bench-stateless-output' },
});
