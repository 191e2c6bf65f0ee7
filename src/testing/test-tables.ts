/**
 * The tables of a job under test (`joinTable`), in memory: the rows a test sends to a table topic,
 * applied by the workers' own `TableStore` (in offset order: a value replaces the key's row, a null
 * value deletes it) before the next batch runs — so an event sees the table as of the start of its
 * batch, as in the service. A partitioned table has the partitions of the stream it is joined against
 * (the largest input's count, like `<job>-repartition`), its records going where Kafka's default
 * partitioner puts their key, and the task of partition p reads partition p; a global table is one
 * store every task reads. A record the table's format cannot read is not applied: it becomes a dead
 * letter (`SLUICE_DESERIALIZE_FAILED`, the table topic as its source), as in the service.
 */
import { type JobPlan, type TablePlan } from '../job/plan.ts';
import { type DeadLetter } from '../pool/protocol.ts';
import { type TableAccess, type TableRecord, TableStore, type TableView } from '../state/table-store.ts';
import { DeadLetters } from '../worker/dead-letters.ts';
import { DefaultPartitioner, encodeKey, encodeValue } from './test-records.ts';

/** A record sent to a table topic: a row for its key, or `null` to delete it. */
export interface TestTableRecord {
  key: string | Uint8Array;
  /** The row, as a producer would send it (see `TestRecord.value`); `null` deletes the key's row. */
  value: unknown;
  /** @defaultValue Kafka's default partitioner of the key over the table's partitions */
  partition?: number;
}

export class TestTables implements TableAccess {
  readonly #tables = new Map<string, TablePlan>();
  readonly #partitions: number;
  /** Per table topic, its store (global) or its store per partition (partitioned). */
  readonly #stores = new Map<string, TableStore[]>();
  /** Records sent and not applied yet, per table topic and partition, in order. */
  readonly #pending = new Map<string, Map<number, TableRecord[]>>();
  readonly #offsets = new Map<string, number>();
  readonly #partitioner = new DefaultPartitioner();
  readonly #letters: DeadLetters;

  constructor(plan: JobPlan, streamPartitions: number) {
    for (const table of plan.tables) this.#tables.set(table.topic, table);
    this.#partitions = streamPartitions;
    this.#letters = new DeadLetters(plan.name);
  }

  #partitionsOf(table: TablePlan): number {
    return table.kind === 'global' ? 1 : this.#partitions;
  }

  #storesOf(table: TablePlan): TableStore[] {
    let stores = this.#stores.get(table.topic);
    if (!stores) {
      stores = Array.from({ length: this.#partitionsOf(table) }, () => new TableStore(table));
      this.#stores.set(table.topic, stores);
    }
    return stores;
  }

  view(table: TablePlan, partition: number): TableView {
    const stores = this.#storesOf(this.#tables.get(table.topic) ?? table);
    return (table.kind === 'global' ? stores[0] : stores[partition]) ?? new TableStore(table);
  }

  /**
   * Appends records to a table topic of the job; they apply before the next batch. None when one of
   * them is refused (not a table of the job, partition out of range, a value its format cannot hold).
   */
  append(topic: string, records: readonly TestTableRecord[], now: number): void {
    const table = this.#tables.get(topic);
    if (!table) {
      const known = [...this.#tables.keys()];
      throw new RangeError(`${topic} is not a table of this job (${known.length > 0 ? known.join(', ') : 'none'})`);
    }
    const count = this.#partitionsOf(table);
    const placed = records.map((record) => {
      const key = encodeKey(record.key);
      const partition = record.partition ?? this.#partitioner.partition(topic, key, count);
      if (!Number.isInteger(partition) || partition < 0 || partition >= count) {
        throw new RangeError(`partition ${partition} of table ${topic} does not exist (it has ${count})`);
      }
      return { partition, key, value: encodeValue(record.value, table.format) };
    });
    const pending = this.#pending.get(topic) ?? new Map<number, TableRecord[]>();
    this.#pending.set(topic, pending);
    for (const { partition, key, value } of placed) {
      const id = `${topic}:${partition}`;
      const offset = this.#offsets.get(id) ?? 0;
      this.#offsets.set(id, offset + 1);
      const list = pending.get(partition) ?? [];
      list.push({ offset, key, value, timestamp: String(now) });
      pending.set(partition, list);
    }
  }

  /** Applies every record sent since the last call; returns the dead letters of those it could not read. */
  catchUp(): DeadLetter[] {
    const dead: DeadLetter[] = [];
    for (const [topic, pending] of this.#pending) {
      const stores = this.#storesOf(this.#tables.get(topic)!);
      for (const [partition, records] of pending) {
        const last = records[records.length - 1]!;
        for (const { record, reason } of stores[partition]!.apply(partition, records, last.offset + 1)) {
          const timestamp = Number(record.timestamp);
          const codec = { offset: record.offset, timestamp, key: record.key, value: record.value, headers: [] };
          const origin = { topic, partition, offset: record.offset, timestamp };
          dead.push(this.#letters.record(codec, origin, 'SLUICE_DESERIALIZE_FAILED', reason));
        }
      }
    }
    this.#pending.clear();
    return dead;
  }
}
