/**
 * Rewinds partitions after a failed batch: they are held (paused, their buffered records dropped) at
 * once and take part in no batch until they are prepared again (partition-preparer.ts: opened, their
 * commit read, their state restored) and the consumer is moved back to their committed offsets. A
 * rewind that cannot reach the broker is retried with backoff until it succeeds or the epoch changes
 * (a rejoin prepares every partition anyway) — never does a partition go on from where a failed batch
 * left it.
 */
import { type Admin } from 'kafkajs';
import type pino from 'pino';
import { type Receiver } from '../receiver/receiver.ts';
import { Sleeper } from './batch-clock.ts';
import { type PartitionPreparer } from './partition-preparer.ts';
import { type PartitionEntry, type PartitionTable } from './partition-table.ts';

/** How long a rewind waits after its partitions were fenced: the longest consumer heartbeat interval. */
export const FENCED_REWIND_DELAY_MS = 3_000;

/** Backoff of retried rewinds and failed batches. */
export function backoff(attempt: number): number {
  return Math.min(10_000, 250 * 2 ** Math.min(attempt, 6));
}

export interface RewinderOptions {
  table: PartitionTable;
  preparer: PartitionPreparer;
  receiver: Receiver;
  admin: Admin;
  startFrom: 'earliest' | 'latest';
  logger: pino.Logger;
  /** The scheduler still runs: the loop goes on. */
  running: () => boolean;
}

export class Rewinder {
  readonly #options: RewinderOptions;
  /** The loop's backoff, which wake() cuts short. */
  readonly #sleeper = new Sleeper();
  #running: Promise<void> | undefined;
  /** No rewind before then (after fencing: see the scheduler). */
  #notBefore = 0;

  constructor(options: RewinderOptions) {
    this.#options = options;
  }

  /** Cuts a backoff short (the scheduler stops). */
  wake(): void {
    this.#sleeper.wake();
  }

  /** Resolves when no rewind is running. */
  async idle(): Promise<void> {
    await this.#running;
  }

  /**
   * Moves partitions back to their committed offsets. They are held (paused, their buffered records
   * dropped) at once and take part in no batch until the rewind is done; a rewind that cannot reach
   * the broker is retried until it succeeds or the epoch changes (a rejoin rebuilds every partition).
   */
  rewind(failed: readonly PartitionEntry[], notBeforeMs = 0): void {
    const { receiver } = this.#options;
    if (notBeforeMs > 0) this.#notBefore = Math.max(this.#notBefore, Date.now() + notBeforeMs);
    // Entries of an epoch that ended while the batch ran are gone: the rejoin rebuilds every
    // partition, and holding one here would leave it paused with nothing to seek it.
    const entries = failed.filter((e) => this.#options.table.get(e.topic, e.partition) === e);
    if (entries.length === 0) return;
    for (const entry of entries) {
      entry.rewinding = true;
      entry.needsStart = true;
      entry.position = undefined;
      entry.fetchedTo = undefined;
      entry.start = undefined;
    }
    receiver.hold(entries.map((e) => ({ topic: e.topic, partition: e.partition })));
    this.#running ??= this.#loop().finally(() => (this.#running = undefined));
  }

  async #loop(): Promise<void> {
    const { logger } = this.#options;
    let attempt = 0;
    while (this.#options.running()) {
      const wait = this.#notBefore - Date.now();
      if (wait > 0) await this.#sleeper.sleep(wait);
      if (!this.#options.running()) return;
      const epoch = this.#options.table.epoch;
      const entries = [...this.#options.table.entries()].filter((e) => e.rewinding);
      if (entries.length === 0) return;
      try {
        if (!(await this.#options.preparer.prepare(entries))) continue; // a new epoch rebuilds every partition
        const positions = await this.#startOffsets(entries);
        if (epoch !== this.#options.table.epoch) continue;
        this.#options.receiver.seek(positions);
        for (const entry of entries) entry.rewinding = false;
        attempt = 0; // more may have failed meanwhile: look again
      } catch (error) {
        for (const entry of entries) entry.start = undefined;
        logger.warn({ err: error, attempt, partitions: entries.map((e) => e.id) }, 'rewind failed; will retry');
        if (!this.#options.running()) return;
        await this.#sleeper.sleep(backoff(attempt++));
      }
    }
  }

  /** Where each rewound partition starts: its committed offset, else the topic's start or end. */
  async #startOffsets(
    entries: readonly PartitionEntry[],
  ): Promise<Array<{ topic: string; partition: number; offset: number }>> {
    const { admin, startFrom } = this.#options;
    const topicStarts = new Map<string, number>();
    const withoutCommit = entries.filter((e) => e.start?.committedOffset == null);
    for (const topic of new Set(withoutCommit.map((e) => e.topic))) {
      for (const o of await admin.fetchTopicOffsets(topic)) {
        topicStarts.set(`${topic}:${o.partition}`, Number(startFrom === 'earliest' ? o.low : o.high));
      }
    }
    return entries.map((e) => ({
      topic: e.topic,
      partition: e.partition,
      offset: e.start?.committedOffset ?? topicStarts.get(e.id) ?? 0,
    }));
  }
}
