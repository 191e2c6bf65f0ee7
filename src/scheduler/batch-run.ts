/**
 * One batch: cut the buffer (each partition's records in one transferable buffer), send each
 * worker its partitions, wait for all, commit what succeeded (workers have published it), and
 * account for it in metrics and the batch history record. A worker that fails costs only its own
 * partitions: the others have published, and rewinding them too would only emit their results again.
 */
import { BatchFailedError } from '../errors.ts';
import { type Metrics } from '../metrics/registry.ts';
import { type PartitionResult, type PartitionWork } from '../pool/protocol.ts';
import { type BatchAnswer, type Suspect, type WorkerPool } from '../pool/worker-pool.ts';
import { type BufferQueue } from '../queue/buffer-queue.ts';
import { type Receiver } from '../receiver/receiver.ts';
import { DLQ_HEADERS } from '../wire/headers.ts';
import { readRecords } from '../wire/record-codec.ts';
import { repartitionRecords } from '../wire/repartition-block.ts';
import { type BatchInfo } from './batch-history.ts';
import { type PartitionEntry, type PartitionTable } from './partition-table.ts';
import { type PoisonPills } from './poison-pills.ts';
import { type RepartitionPurger } from './repartition-purger.ts';

export interface BatchRunDeps {
  maxBatchRecords: number;
  queue: BufferQueue;
  receiver: Receiver;
  pool: WorkerPool;
  table: PartitionTable;
  poison: PoisonPills;
  purger: RepartitionPurger | undefined;
  metrics: Metrics;
}

export interface BatchOutcome {
  /** Undefined when no partition had anything to do. */
  info: BatchInfo | undefined;
  /** The cut was full, or a partition it read was still behind its high watermark. */
  backlogged: boolean;
  /** Repartition blocks were written: the aggregating stage has work from this batch. */
  wroteRepartition: boolean;
  /** What failed, and the partitions that must be rewound to their committed offsets. */
  failure?: { error: unknown; rewind: PartitionEntry[]; suspects: Array<{ suspect: Suspect; error: unknown }> };
}

export class BatchRun {
  readonly #d: BatchRunDeps;
  #batchId = 0;

  constructor(deps: BatchRunDeps) {
    this.#d = deps;
  }

  async run(scheduledAt: number, startedAt: number): Promise<BatchOutcome> {
    const { queue, receiver, pool, table, metrics } = this.#d;
    const epoch = table.epoch;
    const cut = queue.cut(this.#d.maxBatchRecords);
    let cutRecords = 0;
    for (const raw of cut.values()) cutRecords += raw.count;
    let backlogged = cutRecords >= this.#d.maxBatchRecords;
    receiver.resumeDrained();
    const byWorker = new Map<number, { works: PartitionWork[]; entries: PartitionEntry[] }>();
    let records = 0;
    let inputRecords = 0;
    const paused = new Set(queue.pausedPartitions);
    // A partition is caught up only when the broker has said that nothing more is there: its last
    // fetch answer is recent. While brokers do not answer, no partition is idle.
    const fetchHealthy = receiver.fetchHealthy();
    for (const entry of table.entries()) {
      // Only restored tasks take part; what was cut for the others is fetched again after the rewind.
      if (entry.rewinding || entry.start === undefined || entry.needsStart) continue;
      const raw = cut.get(entry.id);
      const hasRecords = raw !== undefined && raw.count > 0;
      if (!hasRecords && entry.withoutRecords === 'never') continue;
      if (hasRecords) {
        // A repartition block holds many records, a control record none.
        const n = entry.kind === 'shuffle-reader' ? repartitionRecords(readRecords(raw.buffer)) : raw.count;
        records += n;
        if (entry.kind !== 'shuffle-reader') inputRecords += n;
        metrics.recordsIn.inc({ topic: entry.topic, partition: String(entry.partition) }, n);
        entry.position = raw.lastOffset + 1;
      }
      // Everything buffered is cut: the offsets read past it hold no record (transaction markers).
      if (
        entry.fetchedTo !== undefined &&
        entry.position !== undefined &&
        entry.fetchedTo > entry.position &&
        queue.sizeOf(entry.id).records === 0
      )
        entry.position = entry.fetchedTo;
      const caughtUp =
        fetchHealthy &&
        queue.sizeOf(entry.id).records === 0 &&
        !paused.has(entry.id) &&
        entry.highWatermark !== undefined &&
        entry.position !== undefined &&
        entry.position >= entry.highWatermark;
      if (hasRecords && !caughtUp) backlogged = true;
      const work: PartitionWork = {
        caughtUp,
        topic: entry.topic,
        partition: entry.partition,
        records: raw?.buffer ?? new ArrayBuffer(0),
        count: raw?.count ?? 0,
      };
      if (entry.position !== undefined) work.through = entry.position;
      const poison = this.#d.poison.forPartition(entry.id);
      if (poison) work.poison = poison;
      const worker = pool.route(entry.topic, entry.partition);
      let group = byWorker.get(worker);
      if (!group) byWorker.set(worker, (group = { works: [], entries: [] }));
      group.works.push(work);
      group.entries.push(entry);
    }
    if (byWorker.size === 0) return { info: undefined, backlogged: false, wroteRepartition: false };

    const id = ++this.#batchId;
    const info: BatchInfo = {
      id,
      scheduledAt,
      startedAt,
      records,
      inputRecords,
      outputs: 0,
      late: 0,
      deadLettered: 0,
      processingMs: 0,
      schedulingDelayMs: Math.max(0, startedAt - scheduledAt),
      totalDelayMs: 0,
      outcome: 'ok',
    };
    const groups = [...byWorker];
    const settled = await Promise.allSettled(
      groups.map(([worker, { works }]) =>
        pool.runBatch(worker, { batchId: id, batchTime: startedAt, partitions: works }),
      ),
    );
    const answers: BatchAnswer[] = [];
    const failed: Array<{ error: unknown; entries: PartitionEntry[] }> = [];
    settled.forEach((s, i) => {
      if (s.status === 'fulfilled') answers.push(s.value);
      else failed.push({ error: s.reason, entries: groups[i]![1].entries });
    });
    const results = answers.flatMap((a) => a.partitions);
    // After a rebalance while the batch ran, the table holds the new epoch's entries, which are
    // rebuilt from their commits: this batch's answers must not mark them started.
    const current = epoch === table.epoch;
    for (const r of results) {
      const entry = current ? table.get(r.topic, r.partition) : undefined;
      if (entry) this.#d.poison.passed(entry.id, entry.position);
    }
    if (answers.length > 0) metrics.publishLatency.observe(Math.max(...answers.map((a) => a.publishMs)) / 1000);
    const suspects = failed.flatMap((f) => {
      const suspect = pool.suspectOf(f.error);
      return suspect ? [{ suspect, error: f.error }] : [];
    });
    try {
      await this.#commit(epoch, results);
    } catch (error) {
      // The commit failed: every partition of the batch is rewound (their results may repeat).
      const rewind = groups.flatMap(([, g]) => g.entries);
      return {
        info: this.#account(results, info),
        backlogged,
        wroteRepartition: false,
        failure: { error, rewind, suspects },
      };
    }
    this.#account(results, info);
    const wroteRepartition = results.some((r) => r.repartitionCount > 0);
    if (failed.length === 0) return { info, backlogged, wroteRepartition };
    const errors = failed.map((f) => (f.error instanceof Error ? f.error : new Error(String(f.error))));
    const error = new BatchFailedError(errors);
    return {
      info,
      backlogged,
      wroteRepartition,
      failure: { error, rewind: failed.flatMap((f) => f.entries), suspects },
    };
  }

  /** Commits what the workers did not commit in their transactions (at-least-once: all of it). */
  async #commit(epoch: number, results: PartitionResult[]): Promise<void> {
    const { receiver, table, metrics, purger } = this.#d;
    const transacted = results.flatMap((r) =>
      r.commit && r.committed ? [{ topic: r.topic, partition: r.partition, ...r.commit }] : [],
    );
    if (transacted.length > 0) purger?.committed(transacted);
    const offsets = results.flatMap((r) =>
      r.commit && !r.committed ? [{ topic: r.topic, partition: r.partition, ...r.commit }] : [],
    );
    if (offsets.length === 0) return;
    // A rebalance while this batch ran: the partitions are being rebuilt elsewhere; do not commit.
    if (epoch !== table.epoch || epoch !== receiver.epoch) return;
    const started = performance.now();
    await receiver.commit(offsets);
    metrics.commitLatency.observe((performance.now() - started) / 1000);
    purger?.committed(offsets);
  }

  #account(results: PartitionResult[], info: BatchInfo): BatchInfo {
    const m = this.#d.metrics;
    let open = 0;
    for (const r of results) {
      const s = r.stats;
      info.outputs += r.outputCount;
      info.late += s.late;
      info.deadLettered += r.dead.length;
      m.recordsProcessed.inc({ topic: r.topic }, s.recordsIn);
      if (s.late > 0) m.recordsLate.inc({ topic: r.topic }, s.late);
      if (s.duplicates > 0) m.recordsDuplicate.inc(s.duplicates);
      if (s.replayed > 0) m.recordsReplayed.inc({ topic: r.topic, partition: String(r.partition) }, s.replayed);
      if (s.skipped > 0) m.recordsSkipped.inc({ topic: r.topic, partition: String(r.partition) }, s.skipped);
      if (s.changelog > 0) m.changelogRecords.inc(s.changelog);
      if (r.repartitionCount > 0) m.recordsRepartitioned.inc(r.repartitionCount);
      for (const d of r.dead) {
        const code = d.headers.find(([n]) => n === DLQ_HEADERS.errorCode)?.[1];
        m.recordsDeadLettered.inc({ code: typeof code === 'string' ? code : 'unknown' });
      }
      if (r.changelogPartition !== null)
        m.stateEntries.set({ topic: r.topic, partition: String(r.partition) }, s.openWindows);
      const entry = this.#d.table.get(r.topic, r.partition);
      if (entry) entry.streamTime = s.streamTime;
      open += s.openWindows;
    }
    m.recordsOut.inc(info.outputs);
    m.openWindows.set(open);
    return info;
  }
}
