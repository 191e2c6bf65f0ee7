/**
 * A table's in-memory state store: the latest row per key of some partitions of a table topic, as far
 * as they have been read (a position per partition). Records are applied in offset order: a value
 * replaces the key's row, a null value (a tombstone) deletes it. A record that cannot be read — no key,
 * or a value its format cannot decode — is not applied and is returned, for its dead letter.
 *
 * A store is what a join looks up (`TableView`): the row of a key, and a count of the lookups that found
 * none. Rows are shared by every event that finds them, so user code must not modify them.
 */
import { type TableFormat, type TablePlan } from '../job/table.ts';

/** A table as a join operator reads it. */
export interface TableView {
  /** The key's row, or `undefined` when the table has none. */
  get(key: string): unknown;
  /** A lookup found no row (counted). */
  missed(): void;
}

/** How a task reaches the tables its joins read: the view of `table` for the task's `partition`. */
export interface TableAccess {
  view(table: TablePlan, partition: number): TableView;
}

/** A record of a table topic as read (a changelog reader's record). */
export interface TableRecord {
  offset: number;
  key: Uint8Array | null;
  value: Uint8Array | null;
  /** Epoch ms as a decimal string (kafkajs's), for a dead letter. */
  timestamp?: string | undefined;
  headers?: Readonly<Record<string, Buffer | Buffer[] | undefined>> | undefined;
}

/** A record the store could not apply, and why. */
export interface UnreadableRecord {
  partition: number;
  record: TableRecord;
  reason: string;
}

const utf8 = new TextDecoder('utf-8', { fatal: true });
const utf8Key = new TextDecoder();

/** A table value as `format` reads it; throws a reason when it cannot. */
function decode(value: Uint8Array, format: TableFormat): unknown {
  // A copy: the record points into a fetch response, which would otherwise stay in memory with the row.
  if (format === 'bytes') return Buffer.from(value);
  let text: string;
  try {
    text = utf8.decode(value);
  } catch {
    throw new Error('value is not valid UTF-8');
  }
  if (format === 'string') return text;
  try {
    return JSON.parse(text) as unknown;
  } catch (error) {
    throw new Error(`value is not valid JSON: ${(error as Error).message}`);
  }
}

export class TableStore implements TableView {
  readonly table: TablePlan;
  readonly #rows = new Map<string, unknown>();
  /** Per partition, the next offset to read. */
  readonly #positions = new Map<number, number>();
  #misses = 0;
  #unreadable = 0;

  constructor(table: TablePlan) {
    this.table = table;
  }

  /** Rows held. */
  get size(): number {
    return this.#rows.size;
  }

  /** Lookups that found no row, since the store was created. */
  get misses(): number {
    return this.#misses;
  }

  /** Records not applied because they could not be read, since the store was created. */
  get unreadable(): number {
    return this.#unreadable;
  }

  get(key: string): unknown {
    return this.#rows.get(key);
  }

  missed(): void {
    this.#misses++;
  }

  /** The next offset of `partition` to read (0 before any). */
  position(partition: number): number {
    return this.#positions.get(partition) ?? 0;
  }

  /**
   * Applies records of `partition` in offset order (records below its position were applied already and
   * are skipped), then moves its position to `next`. Returns the records it could not read.
   */
  apply(partition: number, records: readonly TableRecord[], next: number): UnreadableRecord[] {
    const unreadable: UnreadableRecord[] = [];
    let position = this.position(partition);
    for (const record of records) {
      if (record.offset < position) continue;
      position = record.offset + 1;
      if (record.key === null) {
        unreadable.push({ partition, record, reason: 'table record has no key' });
        continue;
      }
      const key = utf8Key.decode(record.key);
      if (record.value === null) {
        this.#rows.delete(key);
        continue;
      }
      try {
        this.#rows.set(key, decode(record.value, this.table.format));
      } catch (error) {
        unreadable.push({ partition, record, reason: `table record: ${(error as Error).message}` });
      }
    }
    this.#positions.set(partition, Math.max(position, next));
    this.#unreadable += unreadable.length;
    return unreadable;
  }

  /** Forgets every row and position: the next read starts from the beginning. */
  clear(): void {
    this.#rows.clear();
    this.#positions.clear();
  }
}
