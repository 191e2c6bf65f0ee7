/** The benchmark's page-views job (same as examples/page-views.ts), topics from the environment. */
import { count, defineJob, tumbling } from 'sluice';

interface PageView {
  page: string;
  user: string;
  ts: number;
}

export default defineJob<PageView>({
  name: process.env['BENCH_JOB_NAME'] ?? 'bench-page-views',
  input: { topics: [process.env['BENCH_INPUT'] ?? 'bench-input'] },
  eventTime: (e) => e.ts,
  batchInterval: Number(process.env['BENCH_BATCH_INTERVAL_MS'] ?? 1000),
  // The default (50 000) unless the run asks for another.
  ...(process.env['BENCH_MAX_BATCH'] ? { maxBatchRecords: Number(process.env['BENCH_MAX_BATCH']) } : {}),
  pipeline: (s) =>
    s
      .filter((e) => typeof e.page === 'string')
      .keyBy((e) => e.page)
      .window(tumbling('10s'), {
        lateness: '5s',
        emit: 'final',
        idleTimeout: Number(process.env['BENCH_IDLE_MS'] ?? 5000),
      })
      .aggregate(count()),
  output: { topic: process.env['BENCH_OUTPUT'] ?? 'bench-output' },
});
