/**
 * Reads a table topic into table stores (table-store.ts). The topic is its own changelog, as a Kafka
 * Streams source-topic changelog is: a store is restored by reading its partitions from the beginning
 * to the end that read_committed readers see, and caught up by reading on from its position to the
 * current end — before each batch, so that a batch's events see the table as of its start. Nothing is
 * written anywhere: a restart reads the table topic again, never the stream.
 *
 * Built on the restore consumer (`ChangelogReader`: fetches on kafkajs's cluster internals,
 * read_committed, aborted records left out, retries). Reads of one store are serialized: two tasks that
 * share a store, or a restore and a batch, never apply the same records twice or out of order.
 */
import type { Kafka } from 'kafkajs';
import type pino from 'pino';
import { ChangelogReader } from './changelog-reader.ts';
import { type TableStore, type UnreadableRecord } from './table-store.ts';

/** What one read applied: records read, and the ones that could not be applied. */
export interface TableRead {
  records: number;
  unreadable: UnreadableRecord[];
}

export class TableReader {
  readonly topic: string;
  readonly #reader: ChangelogReader;
  /** Per store, the end of the reads queued for it. */
  readonly #reading = new WeakMap<TableStore, Promise<unknown>>();

  constructor(kafka: Kafka, topic: string, options: { logger?: pino.Logger; maxBytes?: number } = {}) {
    this.topic = topic;
    this.#reader = new ChangelogReader(kafka, topic, options);
  }

  start(): Promise<void> {
    return this.#reader.start();
  }

  stop(): Promise<void> {
    return this.#reader.stop();
  }

  /**
   * Reads `partitions` of the table into `store`, each from the store's position to the end that
   * read_committed readers see now, applying records in offset order. Rejects when Kafka fails (the
   * records already applied stay applied; the positions say how far).
   */
  catchUp(store: TableStore, partitions: readonly number[]): Promise<TableRead> {
    const previous = this.#reading.get(store) ?? Promise.resolve();
    const mine = previous.then(() => this.#read(store, partitions));
    this.#reading.set(
      store,
      mine.catch(() => undefined),
    );
    return mine;
  }

  async #read(store: TableStore, partitions: readonly number[]): Promise<TableRead> {
    const unreadable: UnreadableRecord[] = [];
    let records = 0;
    await Promise.all(
      partitions.map(async (partition) => {
        const read = await this.#reader.restore(
          partition,
          (chunk, position) => {
            for (const u of store.apply(partition, chunk, position)) unreadable.push(u);
          },
          store.position(partition),
        );
        store.apply(partition, [], read.endOffset);
        records += read.records;
      }),
    );
    return { records, unreadable };
  }
}
