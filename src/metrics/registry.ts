/**
 * Every metric Sluice exports, in one place: one prom-client Registry per service (no globals), with
 * the `sluice_` prefix and Prometheus naming. Labels stay bounded: topic and partition, never a key.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60];

/** The fields of a worker's `getHeapStatistics()` that the metrics show. */
export interface WorkerHeap {
  used_heap_size: number;
  total_heap_size: number;
  external_memory: number;
  heap_size_limit: number;
}

export class Metrics {
  readonly registry = new Registry();

  readonly recordsIn = new Counter({
    name: 'sluice_records_in_total',
    help: 'Records read from input and repartition topics.',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });
  readonly bytesIn = new Counter({
    name: 'sluice_bytes_in_total',
    help: 'Bytes (key + value + headers) read.',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });
  readonly recordsProcessed = new Counter({
    name: 'sluice_records_processed_total',
    help: 'Records processed by workers (including replayed ones).',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });
  readonly recordsOut = new Counter({
    name: 'sluice_records_out_total',
    help: 'Results published to the output topic.',
    registers: [this.registry],
  });
  readonly recordsRepartitioned = new Counter({
    name: 'sluice_records_repartitioned_total',
    help: 'Records written to the repartition topic.',
    registers: [this.registry],
  });
  readonly recordsLate = new Counter({
    name: 'sluice_records_late_total',
    help: 'Records for windows already closed (sent to the dead-letter topic).',
    labelNames: ['topic'] as const,
    registers: [this.registry],
  });
  readonly recordsDeadLettered = new Counter({
    name: 'sluice_records_dead_lettered_total',
    help: 'Records sent to the dead-letter topic, by error code.',
    labelNames: ['code'] as const,
    registers: [this.registry],
  });
  readonly recordsDuplicate = new Counter({
    name: 'sluice_records_duplicate_total',
    help: 'Repartition records seen twice (written again upstream after a restart) and skipped.',
    registers: [this.registry],
  });
  readonly recordsReplayed = new Counter({
    name: 'sluice_records_replayed_total',
    help: 'Records re-read to rebuild window state kept in commit metadata by a version before the changelog (an upgrade).',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });
  readonly recordsSkipped = new Counter({
    name: 'sluice_records_skipped_total',
    help: 'Records read again after a restart whose effects the restored state already holds (not processed again).',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });
  readonly changelogRecords = new Counter({
    name: 'sluice_changelog_records_total',
    help: 'Records written to the changelog topic (window entries, tombstones, progress).',
    registers: [this.registry],
  });
  readonly restoredRecords = new Counter({
    name: 'sluice_state_restored_records_total',
    help: 'Changelog records read to restore state, per task.',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });
  readonly settledTransactions = new Counter({
    name: 'sluice_transactions_settled_total',
    help: 'Failed transactions whose outcome Sluice wrote into their partitions before restoring the task (markers a broker skipped), by outcome.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly restoreSeconds = new Histogram({
    name: 'sluice_state_restore_seconds',
    help: 'Time to restore a task: read its changelog partition to the end and rebuild its state.',
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  readonly restoringPartitions = new Gauge({
    name: 'sluice_state_restoring_partitions',
    help: 'Partitions whose state is being restored from the changelog.',
    registers: [this.registry],
  });
  readonly tableRows = new Gauge({
    name: 'sluice_table_rows',
    help: 'Rows held per table (its topic): a partitioned table’s partitions held by this replica, a global table whole (as every worker holds it).',
    labelNames: ['table'] as const,
    registers: [this.registry],
  });
  readonly joinMisses = new Counter({
    name: 'sluice_join_misses_total',
    help: 'Table lookups of joinTable that found no row, per table (inner joins drop those events, left joins pass them on without a row).',
    labelNames: ['table'] as const,
    registers: [this.registry],
  });
  readonly tableRecordsUnreadable = new Counter({
    name: 'sluice_table_records_unreadable_total',
    help: 'Table records not applied (no key, or a value the table’s format cannot read), per table; each is dead-lettered.',
    labelNames: ['table'] as const,
    registers: [this.registry],
  });

  readonly batches = new Counter({
    name: 'sluice_batches_total',
    help: 'Batches completed, by outcome.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });
  readonly batchRecords = new Histogram({
    name: 'sluice_batch_records',
    help: 'Records per batch.',
    buckets: [0, 10, 100, 1000, 5000, 10000, 25000, 50000, 100000, 250000],
    registers: [this.registry],
  });
  readonly batchProcessing = new Histogram({
    name: 'sluice_batch_processing_seconds',
    help: 'Time from batch start to offsets committed.',
    buckets: latencyBuckets,
    registers: [this.registry],
  });
  readonly schedulingDelay = new Histogram({
    name: 'sluice_batch_scheduling_delay_seconds',
    help: 'Time a batch waited after its scheduled time for the previous one to finish.',
    buckets: latencyBuckets,
    registers: [this.registry],
  });
  readonly totalDelay = new Histogram({
    name: 'sluice_batch_total_delay_seconds',
    help: 'Scheduling delay plus processing time.',
    buckets: latencyBuckets,
    registers: [this.registry],
  });
  readonly lastSchedulingDelay = new Gauge({
    name: 'sluice_last_batch_scheduling_delay_seconds',
    help: 'Scheduling delay of the last batch.',
    registers: [this.registry],
  });
  readonly lastBatchTime = new Gauge({
    name: 'sluice_last_batch_completed_timestamp_seconds',
    help: 'When the last batch completed (Unix time).',
    registers: [this.registry],
  });
  readonly publishLatency = new Histogram({
    name: 'sluice_publish_seconds',
    help: 'Time to publish a batch and get every acknowledgement.',
    buckets: latencyBuckets,
    registers: [this.registry],
  });
  readonly commitLatency = new Histogram({
    name: 'sluice_commit_seconds',
    help: 'Time to commit a batch’s offsets.',
    buckets: latencyBuckets,
    registers: [this.registry],
  });

  readonly bufferRecords = new Gauge({
    name: 'sluice_buffer_records',
    help: 'Records buffered between receiver and scheduler.',
    registers: [this.registry],
  });
  readonly bufferBytes = new Gauge({
    name: 'sluice_buffer_bytes',
    help: 'Bytes buffered between receiver and scheduler.',
    registers: [this.registry],
  });
  readonly pausedPartitions = new Gauge({
    name: 'sluice_paused_partitions',
    help: 'Partitions paused because their buffer share is full.',
    registers: [this.registry],
  });
  readonly assignedPartitions = new Gauge({
    name: 'sluice_assigned_partitions',
    help: 'Partitions assigned to this replica.',
    registers: [this.registry],
  });
  readonly consumerLag = new Gauge({
    name: 'sluice_consumer_lag_records',
    help: 'High watermark minus the next offset to process.',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });
  readonly watermarkLag = new Gauge({
    name: 'sluice_watermark_lag_seconds',
    help: 'Wall clock minus stream time (largest event time seen) per partition.',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });
  readonly openWindows = new Gauge({
    name: 'sluice_open_windows',
    help: 'Open (key, window) aggregates held in state.',
    registers: [this.registry],
  });
  readonly stateEntries = new Gauge({
    name: 'sluice_state_entries',
    help: 'Open (key, window) entries in the state store of each aggregating task, by the partition it holds (input or repartition topic).',
    labelNames: ['topic', 'partition'] as const,
    registers: [this.registry],
  });
  readonly workerBusy = new Gauge({
    name: 'sluice_worker_busy_ratio',
    help: 'Share of wall time each worker spent processing, over the last batch interval.',
    labelNames: ['worker'] as const,
    registers: [this.registry],
  });
  /** Set once the worker pool runs: each worker thread's heap statistics (undefined: not running). */
  workerHeapSource: (() => Promise<ReadonlyArray<WorkerHeap | undefined>>) | undefined;
  readonly workerHeap = new Gauge({
    name: 'sluice_worker_heap_bytes',
    help: 'Each worker thread’s V8 heap, read on scrape: used, total (reserved), external (array buffers) and limit.',
    labelNames: ['worker', 'kind'] as const,
    registers: [this.registry],
    collect: async () => {
      const heaps = (await this.workerHeapSource?.()) ?? [];
      this.workerHeap.reset();
      heaps.forEach((heap, i) => {
        if (!heap) return;
        const worker = String(i);
        this.workerHeap.set({ worker, kind: 'used' }, heap.used_heap_size);
        this.workerHeap.set({ worker, kind: 'total' }, heap.total_heap_size);
        this.workerHeap.set({ worker, kind: 'external' }, heap.external_memory);
        this.workerHeap.set({ worker, kind: 'limit' }, heap.heap_size_limit);
      });
    },
  });
  readonly workerRestarts = new Counter({
    name: 'sluice_worker_restarts_total',
    help: 'Worker threads replaced after a crash.',
    registers: [this.registry],
  });
  readonly rebalances = new Counter({
    name: 'sluice_rebalances_total',
    help: 'Consumer group (re)joins.',
    registers: [this.registry],
  });
  readonly resets = new Counter({
    name: 'sluice_partition_resets_total',
    help: 'Times partitions were rewound to their committed offsets after a failed batch.',
    registers: [this.registry],
  });
  readonly stateQueries = new Counter({
    name: 'sluice_state_queries_total',
    help: 'Queries of /api/state by outcome: answered here (local), by the owning replica (proxied), redirected to it, unavailable (503: restoring, rebalancing, busy) or failed.',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }
}
