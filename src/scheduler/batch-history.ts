/** A bounded history of recent batches, for `/api/batches` and the status page. */

export interface BatchInfo {
  id: number;
  /** When the batch was due (epoch ms). */
  scheduledAt: number;
  startedAt: number;
  /** Records processed in the batch: input topics and, for a re-keyed job, the repartition topic. */
  records: number;
  /** Records read from the job's input topics only (the input rate). */
  inputRecords: number;
  outputs: number;
  late: number;
  deadLettered: number;
  processingMs: number;
  schedulingDelayMs: number;
  totalDelayMs: number;
  outcome: 'ok' | 'failed';
  error?: string;
}

export class BatchHistory {
  readonly #capacity: number;
  readonly #items: BatchInfo[] = [];

  constructor(capacity: number) {
    this.#capacity = Math.max(1, capacity);
  }

  add(info: BatchInfo): void {
    this.#items.push(info);
    if (this.#items.length > this.#capacity) this.#items.splice(0, this.#items.length - this.#capacity);
  }

  /** Most recent last; at most `limit`. */
  recent(limit = this.#capacity): BatchInfo[] {
    if (limit <= 0) return [];
    return this.#items.slice(-limit);
  }

  get last(): BatchInfo | undefined {
    return this.#items[this.#items.length - 1];
  }
}
