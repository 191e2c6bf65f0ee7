/**
 * A worker thread's tables (the stores `joinTable` reads): what the worker calls, so that the worker
 * entry only says when.
 *
 * - A **global** table is held whole by every worker: read to its end when the worker starts, before
 *   it answers READY (so before the service is ready), and caught up before each batch the worker runs.
 *   Each worker keeps its own copy: rows are JavaScript values, which cannot be shared between threads,
 *   and a copy per worker keeps lookups a `Map` read with no coordination (memory: workers × table).
 * - A **partitioned** table is held per task partition: the task of partition p holds table partition p
 *   (co-partitioned; checked at start-up). Its store is read to the end when the task is restored,
 *   before the partition takes part in batches, and caught up before each batch the task is in. Tasks
 *   of one worker with the same partition (jobs with several input topics) share the store. A store
 *   outlives its task's rebuilds (after a failed batch): it holds the table topic's records only, never
 *   the task's own effects, so catching up is as good as reading again. It is released when the worker
 *   drops the partition.
 *
 * A record that cannot be read is not applied: it is dead-lettered (`SLUICE_DESERIALIZE_FAILED`, its
 * source headers naming the table topic) through the worker's own producer, at once and outside any task
 * transaction — at least once: a restart reads the table topic again. A global table's by worker 0 only
 * (every worker reads it). A read that fails forgets its store, so the next read starts over and finds
 * those records again. Statistics go to the main thread as they change (table-stats.ts).
 */
import type { Kafka } from 'kafkajs';
import type pino from 'pino';
import { IllegalStateError } from '../errors.ts';
import { type JobPlan, type TablePlan } from '../job/plan.ts';
import { type DeadLetter, type WorkerInit } from '../pool/protocol.ts';
import { type Publication } from '../sink/kafka-sink.ts';
import { TableReader } from '../state/table-reader.ts';
import { type TableStats, TableStatsReporter } from '../state/table-stats.ts';
import {
  type TableAccess,
  type TableRecord,
  TableStore,
  type TableView,
  type UnreadableRecord,
} from '../state/table-store.ts';
import { type CodecRecord } from '../wire/record-codec.ts';
import { DeadLetters } from './dead-letters.ts';
import { taskKindFor } from './task.ts';

export interface WorkerTablesOptions {
  plan: JobPlan;
  workerIndex: number;
  groupId: string;
  /** Partitions of each table topic (read at start-up). */
  tablePartitions: Readonly<Record<string, number>> | undefined;
  /** Publishes dead letters through the worker's own producer. */
  sink: { publish(publication: Publication): Promise<unknown> };
  logger: pino.Logger;
}

/** The options of a worker thread's tables, from what the worker is given at start. */
export function workerTablesOptions(
  plan: JobPlan,
  init: Pick<WorkerInit, 'workerIndex' | 'kafka'>,
  sink: WorkerTablesOptions['sink'],
  logger: pino.Logger,
): WorkerTablesOptions {
  const { groupId, topics } = init.kafka;
  return { plan, workerIndex: init.workerIndex, groupId, tablePartitions: topics.tables, sink, logger };
}

interface Held {
  store: TableStore;
  /** Tasks (`topic:partition`) that read it. */
  holders: Set<string>;
}

const EMPTY: Publication = { outputs: [], repartition: [], dead: [], watermarks: [], changelog: [] };

export class WorkerTables implements TableAccess {
  readonly #options: WorkerTablesOptions;
  readonly #readers = new Map<string, TableReader>();
  readonly #global = new Map<string, TableStore>();
  /** Partitioned stores by `table topic:partition`. */
  readonly #partitioned = new Map<string, Held>();
  readonly #letters: DeadLetters;
  readonly #reporter: TableStatsReporter;
  /** Per table, the misses and unreadable records reported so far, and those of released stores. */
  readonly #counted = new Map<string, { misses: number; unreadable: number; released: [number, number] }>();
  #reportDue = false;

  private constructor(options: WorkerTablesOptions) {
    this.#options = options;
    this.#letters = new DeadLetters(options.plan.name);
    this.#reporter = new TableStatsReporter(options.groupId, options.workerIndex);
  }

  /** Connects a reader per table topic and reads every global table to its end. */
  static async start(kafka: Kafka, options: WorkerTablesOptions): Promise<WorkerTables> {
    const tables = new WorkerTables(options);
    try {
      for (const table of options.plan.tables) {
        const reader = new TableReader(kafka, table.topic, { logger: options.logger });
        tables.#readers.set(table.topic, reader);
        await reader.start();
        if (table.kind === 'global') tables.#global.set(table.topic, new TableStore(table));
      }
      await tables.#catchUpGlobal();
    } catch (error) {
      await tables.stop();
      throw error;
    }
    return tables;
  }

  /** The view a join of `table` reads in the task of `partition` (TaskContext `tables`). */
  view(table: TablePlan, partition: number): TableView {
    const store = table.kind === 'global' ? this.#global.get(table.topic) : this.#held(table, partition).store;
    if (!store) throw new IllegalStateError(`no store for table ${table.topic}`);
    return {
      get: (key) => store.get(key),
      missed: () => {
        store.missed();
        this.#reportSoon();
      },
    };
  }

  /** A task was built: reads its partitioned tables' partition to the end (before it takes part in batches). */
  async open(task: { topic: string; partition: number }): Promise<void> {
    if (this.#options.plan.tables.length === 0) return;
    const id = `${task.topic}:${task.partition}`;
    const held = this.#partitionedOf(task.topic).map((table) => this.#held(table, task.partition));
    for (const h of held) h.holders.add(id);
    await Promise.all(held.map((h) => this.#read(h.store, [task.partition], true)));
  }

  /** Before a batch: the global tables and the partitioned stores of the batch's tasks, to their current end. */
  async catchUp(tasks: ReadonlyArray<{ topic: string; partition: number }>): Promise<void> {
    if (this.#options.plan.tables.length === 0) return;
    const stores = new Map<TableStore, number>();
    for (const { topic, partition } of tasks) {
      for (const table of this.#partitionedOf(topic)) stores.set(this.#held(table, partition).store, partition);
    }
    await Promise.all([
      this.#catchUpGlobal(),
      ...[...stores].map(([s, partition]) => this.#read(s, [partition], true)),
    ]);
  }

  /** The worker dropped a task: its partitioned stores are released once no task of the worker reads them. */
  drop(task: { topic: string; partition: number }): void {
    if (this.#options.plan.tables.length === 0) return;
    const id = `${task.topic}:${task.partition}`;
    for (const [key, held] of this.#partitioned) {
      held.holders.delete(id);
      if (held.holders.size > 0) continue;
      this.#partitioned.delete(key);
      this.#release(held.store);
    }
    this.#report();
  }

  async stop(): Promise<void> {
    await Promise.all([...this.#readers.values()].map((r) => r.stop().catch(() => undefined)));
    this.#reporter.close();
  }

  #partitionedOf(taskTopic: string): TablePlan[] {
    const { plan } = this.#options;
    const ops = taskKindFor(plan, taskTopic) === 'shuffle-reader' ? plan.stage2 : plan.stage1;
    const tables = new Map<string, TablePlan>();
    for (const op of ops) if (op.join?.table.kind === 'partitioned') tables.set(op.join.table.topic, op.join.table);
    return [...tables.values()];
  }

  #held(table: TablePlan, partition: number): Held {
    const key = `${table.topic}:${partition}`;
    let held = this.#partitioned.get(key);
    if (!held) this.#partitioned.set(key, (held = { store: new TableStore(table), holders: new Set() }));
    return held;
  }

  async #catchUpGlobal(): Promise<void> {
    await Promise.all(
      [...this.#global.values()].map((store) => {
        const partitions = this.#options.tablePartitions?.[store.table.topic];
        if (partitions === undefined) throw new IllegalStateError(`no partition count for table ${store.table.topic}`);
        return this.#read(
          store,
          Array.from({ length: partitions }, (_, p) => p),
          this.#options.workerIndex === 0,
        );
      }),
    );
  }

  /** Reads `partitions` into `store`; dead-letters what it could not apply (`letters`), or forgets it all on failure. */
  async #read(store: TableStore, partitions: number[], letters: boolean): Promise<void> {
    const reader = this.#readers.get(store.table.topic);
    if (!reader) throw new IllegalStateError(`no reader for table ${store.table.topic}`);
    try {
      const { unreadable } = await reader.catchUp(store, partitions);
      if (unreadable.length > 0) {
        this.#options.logger.warn(
          { table: store.table.topic, records: unreadable.length, reason: unreadable[0]!.reason },
          'table records could not be read: not applied, dead-lettered',
        );
        if (letters) {
          const dead = unreadable.map((u) => this.#letter(store.table.topic, u));
          await this.#options.sink.publish({ ...EMPTY, dead });
        }
      }
    } catch (error) {
      store.clear();
      throw error;
    } finally {
      this.#report();
    }
  }

  /** The dead letter of a table record: its source headers name the table topic. */
  #letter(topic: string, { partition, record, reason }: UnreadableRecord): DeadLetter {
    const timestamp = record.timestamp === undefined ? undefined : Number(record.timestamp);
    const codec: CodecRecord = {
      offset: record.offset,
      timestamp: timestamp ?? -1,
      key: record.key,
      value: record.value,
      headers: headersOf(record),
    };
    const origin = { topic, partition, offset: record.offset, timestamp };
    return this.#letters.record(codec, origin, 'SLUICE_DESERIALIZE_FAILED', reason);
  }

  #release(store: TableStore): void {
    const counted = this.#countedOf(store.table.topic);
    counted.released[0] += store.misses;
    counted.released[1] += store.unreadable;
  }

  #countedOf(topic: string) {
    let counted = this.#counted.get(topic);
    if (!counted) this.#counted.set(topic, (counted = { misses: 0, unreadable: 0, released: [0, 0] }));
    return counted;
  }

  /** After the current turn of the event loop (a batch yields between its tasks): one report for many misses. */
  #reportSoon(): void {
    if (this.#reportDue) return;
    this.#reportDue = true;
    setImmediate(() => this.#report());
  }

  #report(): void {
    this.#reportDue = false;
    const stats: TableStats[] = [];
    for (const table of this.#options.plan.tables) {
      const stores =
        table.kind === 'global'
          ? [this.#global.get(table.topic)].filter((s) => s !== undefined)
          : [...this.#partitioned.values()].flatMap((h) => (h.store.table.topic === table.topic ? [h.store] : []));
      const counted = this.#countedOf(table.topic);
      let [misses, unreadable] = counted.released;
      let rows = 0;
      for (const s of stores) {
        misses += s.misses;
        unreadable += s.unreadable;
        rows += s.size;
      }
      // A global table's unreadable records are dead-lettered (and counted) by worker 0 alone.
      if (table.kind === 'global' && this.#options.workerIndex !== 0) unreadable = 0;
      stats.push({
        table: table.topic,
        kind: table.kind,
        rows,
        misses: misses - counted.misses,
        unreadable: unreadable - counted.unreadable,
      });
      counted.misses = misses;
      counted.unreadable = unreadable;
    }
    this.#reporter.report(stats);
  }
}

function headersOf(record: TableRecord): Array<readonly [string, Uint8Array]> {
  const headers: Array<readonly [string, Uint8Array]> = [];
  for (const [name, value] of Object.entries(record.headers ?? {})) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) headers.push([name, v]);
  }
  return headers;
}
