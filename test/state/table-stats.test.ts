/** Table statistics from workers to the metrics: rows per worker (summed, or the largest for global tables), counts added. */
import { describe, expect, test } from '@jest/globals';
import { Metrics } from '../../src/metrics/registry.ts';
import { TableStatsListener, TableStatsReporter } from '../../src/state/table-stats.ts';
import { uniqueName } from '../helpers.ts';

async function value(metrics: Metrics, name: string, table: string): Promise<number | undefined> {
  const metric = await metrics.registry.getSingleMetric(name)?.get();
  return metric?.values.find((v) => v.labels['table'] === table)?.value;
}

describe('TableStatsListener', () => {
  test('partitioned rows are summed over the workers, global rows the largest; misses and unreadable records add up', async () => {
    const metrics = new Metrics();
    const listener = new TableStatsListener(uniqueName('stats'), metrics);
    try {
      const report = (worker: number, kind: 'partitioned' | 'global', table: string, rows: number, misses = 0) =>
        listener.apply({ worker, tables: [{ table, kind, rows, misses, unreadable: misses > 0 ? 1 : 0 }] });
      report(0, 'partitioned', 'users', 10, 3);
      report(1, 'partitioned', 'users', 5, 2);
      report(0, 'partitioned', 'users', 12); // worker 0 caught up: its rows now, not added to its last
      report(0, 'global', 'countries', 4);
      report(1, 'global', 'countries', 3); // still reading: the table has the rows the furthest worker holds
      expect(await value(metrics, 'sluice_table_rows', 'users')).toBe(17);
      expect(await value(metrics, 'sluice_table_rows', 'countries')).toBe(4);
      expect(await value(metrics, 'sluice_join_misses_total', 'users')).toBe(5);
      expect(await value(metrics, 'sluice_table_records_unreadable_total', 'users')).toBe(2);
      expect(await value(metrics, 'sluice_join_misses_total', 'countries')).toBeUndefined();
    } finally {
      listener.close();
    }
  });

  test('reports travel from a reporter to the listener of the same group only', async () => {
    const group = uniqueName('stats');
    const metrics = new Metrics();
    const other = new Metrics();
    const listener = new TableStatsListener(group, metrics);
    const stranger = new TableStatsListener(uniqueName('stats'), other);
    const reporter = new TableStatsReporter(group, 3);
    try {
      reporter.report([{ table: 'users', kind: 'partitioned', rows: 7, misses: 2, unreadable: 0 }]);
      const deadline = Date.now() + 5000;
      while ((await value(metrics, 'sluice_table_rows', 'users')) === undefined && Date.now() < deadline) {
        await new Promise((r) => setTimeout(r, 10));
      }
      expect(await value(metrics, 'sluice_table_rows', 'users')).toBe(7);
      expect(await value(metrics, 'sluice_join_misses_total', 'users')).toBe(2);
      expect(await value(other, 'sluice_table_rows', 'users')).toBeUndefined();
    } finally {
      reporter.close();
      listener.close();
      stranger.close();
    }
  });
});
