/**
 * Prepares partitions before they take part in a batch, newly assigned or rewound: 1. their worker
 * opens them (exactly-once: a transactional producer per partition, which fences the previous owner);
 * 2. their committed offsets are read — after the fencing, so that a previous owner's last
 * transaction has settled; 3. their worker builds each task from its committed position and restores
 * its state from the changelog. Only then do they take part in batches (`needsStart` cleared).
 */
import type pino from 'pino';
import { type Metrics } from '../metrics/registry.ts';
import { type WorkerPool } from '../pool/worker-pool.ts';
import { type PartitionEntry, type PartitionTable } from './partition-table.ts';

export class PartitionPreparer {
  readonly #table: PartitionTable;
  readonly #pool: WorkerPool;
  readonly #metrics: Metrics;
  readonly #logger: pino.Logger;

  constructor(table: PartitionTable, pool: WorkerPool, metrics: Metrics, logger: pino.Logger) {
    this.#table = table;
    this.#pool = pool;
    this.#metrics = metrics;
    this.#logger = logger;
  }

  /** Partitions whose state is being restored, and how far their changelogs have been read. */
  restoring(): { partitions: number; records: number; end: number } {
    let partitions = 0;
    let records = 0;
    let end = 0;
    for (const e of this.#table.entries()) {
      if (!e.restoring) continue;
      partitions++;
      records += e.restoring.records;
      end += e.restoring.end;
    }
    return { partitions, records, end };
  }

  /**
   * Opens, reads the committed positions of, and restores `entries`. Returns false when the epoch
   * changed meanwhile (a new assignment prepares every partition again).
   */
  async prepare(entries: readonly PartitionEntry[]): Promise<boolean> {
    const pool = this.#pool;
    const metrics = this.#metrics;
    const logger = this.#logger;
    const epoch = this.#table.epoch;
    const byWorker = new Map<number, PartitionEntry[]>();
    for (const e of entries) {
      const worker = pool.route(e.topic, e.partition);
      const list = byWorker.get(worker) ?? [];
      list.push(e);
      byWorker.set(worker, list);
    }
    const parts = (list: readonly PartitionEntry[]) => list.map((e) => ({ topic: e.topic, partition: e.partition }));
    await Promise.all([...byWorker].map(([worker, list]) => pool.open(worker, parts(list))));
    if (epoch !== this.#table.epoch) return false;
    for (const e of entries) e.start = undefined;
    if (!(await this.#table.loadStarts(entries))) return false;
    for (const e of entries) e.restoring = { records: 0, end: 0 };
    metrics.restoringPartitions.set(this.restoring().partitions);
    try {
      const restored = await Promise.all(
        [...byWorker].map(([worker, list]) =>
          pool.restore(
            worker,
            list.map((e) => ({ topic: e.topic, partition: e.partition, start: e.start! })),
            (p) => {
              const entry = this.#table.get(p.topic, p.partition);
              if (entry?.restoring) entry.restoring = { records: p.records, end: p.end };
            },
          ),
        ),
      );
      if (epoch !== this.#table.epoch) return false;
      for (const r of restored.flat()) {
        const entry = this.#table.get(r.topic, r.partition);
        if (!entry || !entries.includes(entry)) continue;
        entry.needsStart = false;
        if (r.position !== null && (entry.position === undefined || r.position > entry.position))
          entry.position = r.position;
        const labels = { topic: r.topic, partition: String(r.partition) };
        if (r.records > 0) metrics.restoredRecords.inc(labels, r.records);
        if (r.settled) metrics.settledTransactions.inc({ outcome: r.settled });
        metrics.restoreSeconds.observe(r.ms / 1000);
        if (r.records > 0) logger.info({ ...labels, records: r.records, ms: Math.round(r.ms) }, 'state restored');
      }
      return true;
    } finally {
      for (const e of entries) e.restoring = undefined;
      metrics.restoringPartitions.set(this.restoring().partitions);
    }
  }
}
