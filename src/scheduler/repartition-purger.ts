/**
 * Deletes repartition records below the committed offsets, at most every `intervalMs` (as Kafka
 * Streams purges its repartition topics). The topic keeps records forever (retention.ms=-1), so
 * what stage 2 has not committed is never lost to time-based retention, however far behind it is.
 */
import { type Admin } from 'kafkajs';
import type pino from 'pino';

export class RepartitionPurger {
  readonly #admin: Admin;
  readonly #topic: string;
  readonly #logger: pino.Logger;
  readonly #intervalMs: number;
  readonly #committed = new Map<number, number>();
  readonly #purged = new Map<number, number>();
  #lastPurge = 0;
  #purging: Promise<void> | undefined;

  constructor(admin: Admin, topic: string, logger: pino.Logger, intervalMs = 10_000) {
    this.#admin = admin;
    this.#topic = topic;
    this.#logger = logger;
    this.#intervalMs = intervalMs;
  }

  /** Offsets just committed; purges in the background when it is time. */
  committed(offsets: ReadonlyArray<{ topic: string; partition: number; offset: number }>): void {
    for (const o of offsets) if (o.topic === this.#topic) this.#committed.set(o.partition, o.offset);
    const now = Date.now();
    if (this.#purging || now - this.#lastPurge < this.#intervalMs) return;
    const partitions = [...this.#committed]
      .filter(([partition, offset]) => offset > (this.#purged.get(partition) ?? 0))
      .map(([partition, offset]) => ({ partition, offset: String(offset) }));
    if (partitions.length === 0) return;
    this.#lastPurge = now;
    this.#purging = this.#admin
      .deleteTopicRecords({ topic: this.#topic, partitions })
      .then(() => {
        for (const p of partitions) this.#purged.set(p.partition, Number(p.offset));
      })
      .catch((error: unknown) =>
        this.#logger.debug({ err: error, topic: this.#topic }, 'purging repartition records failed; will retry'),
      )
      .finally(() => (this.#purging = undefined));
  }

  /** Waits for a purge in flight (shutdown). */
  async idle(): Promise<void> {
    await this.#purging;
  }
}
