/**
 * Table statistics, from the worker threads to the main thread's metrics: rows held per table, join
 * lookups that found no row, table records that could not be read. They change outside any request
 * the main thread makes — a worker reads its global tables before it answers READY, and its stores
 * change with every restore, catch-up and drop — so they travel on a `BroadcastChannel` of their own
 * (one per consumer group), not in the answers of the worker protocol. Both sides import this module;
 * messages are plain data.
 *
 * A worker sends, whenever something changed: per table, the rows it holds now and the misses and
 * unreadable records since its last report. The main side keeps the rows per worker: a partitioned
 * table's rows are the sum over the workers (this replica's share), a global table's the largest
 * (every worker holds the whole table).
 */
import { BroadcastChannel } from 'node:worker_threads';
import { type TableKind } from '../job/table.ts';

/** One table's numbers in a report. */
export interface TableStats {
  table: string;
  kind: TableKind;
  /** Rows the worker holds now. */
  rows: number;
  /** Lookups without a row since the last report. */
  misses: number;
  /** Records not applied (unreadable) since the last report. */
  unreadable: number;
}

export interface TableStatsReport {
  worker: number;
  tables: TableStats[];
}

/** The metrics the reports feed (registry.ts). */
export interface TableMetrics {
  tableRows: { set(labels: { table: string }, value: number): void };
  joinMisses: { inc(labels: { table: string }, value: number): void };
  tableRecordsUnreadable: { inc(labels: { table: string }, value: number): void };
}

function channelName(groupId: string): string {
  return `sluice:table-stats:${groupId}`;
}

/** The worker side: posts reports; never keeps the thread alive. */
export class TableStatsReporter {
  readonly #channel: BroadcastChannel;
  readonly #worker: number;

  constructor(groupId: string, worker: number) {
    this.#channel = new BroadcastChannel(channelName(groupId));
    (this.#channel as unknown as { unref(): void }).unref();
    this.#worker = worker;
  }

  report(tables: TableStats[]): void {
    if (tables.length > 0) this.#channel.postMessage({ worker: this.#worker, tables } satisfies TableStatsReport);
  }

  close(): void {
    this.#channel.close();
  }
}

/** The main side: applies the workers' reports to the metrics until closed. */
export class TableStatsListener {
  readonly #channel: BroadcastChannel;
  readonly #metrics: TableMetrics;
  /** Per table, its kind and the rows each worker reported last. */
  readonly #rows = new Map<string, { kind: TableKind; byWorker: Map<number, number> }>();

  constructor(groupId: string, metrics: TableMetrics) {
    this.#metrics = metrics;
    this.#channel = new BroadcastChannel(channelName(groupId));
    (this.#channel as unknown as { unref(): void }).unref();
    this.#channel.onmessage = (event) => this.apply(event.data as TableStatsReport);
  }

  /** Applies one report (what the channel delivers). */
  apply(report: TableStatsReport): void {
    for (const t of report.tables) {
      const labels = { table: t.table };
      if (t.misses > 0) this.#metrics.joinMisses.inc(labels, t.misses);
      if (t.unreadable > 0) this.#metrics.tableRecordsUnreadable.inc(labels, t.unreadable);
      let entry = this.#rows.get(t.table);
      if (!entry) this.#rows.set(t.table, (entry = { kind: t.kind, byWorker: new Map() }));
      entry.byWorker.set(report.worker, t.rows);
      const rows = [...entry.byWorker.values()];
      this.#metrics.tableRows.set(labels, t.kind === 'global' ? Math.max(...rows) : rows.reduce((a, b) => a + b, 0));
    }
  }

  close(): void {
    this.#channel.close();
  }
}
