/**
 * The scheduler's view of the assigned partitions: per partition its task kind, the committed
 * position its state is rebuilt from, the next offset to process, the last high watermark and stream
 * time. Each group (re)join replaces the table (a new epoch). Reading committed positions is the
 * only I/O here (admin fetchOffsets).
 */
import { type Admin } from 'kafkajs';
import { type JobPlan } from '../job/plan.ts';
import { partitionId, type PartitionStart } from '../pool/protocol.ts';
import { type Assignment } from '../receiver/receiver.ts';
import { taskKindFor, withoutRecordsFor, type TaskKind } from '../worker/task.ts';

export interface PartitionEntry {
  readonly id: string;
  readonly topic: string;
  readonly partition: number;
  readonly kind: TaskKind;
  /** Whether it takes part in a batch that has no records for it (see withoutRecordsFor). */
  readonly withoutRecords: 'never' | 'once-rebuilt' | 'always';
  /** Committed position, once read for this epoch (or rewind). */
  start: PartitionStart | undefined;
  /** The task must be (re)built on its worker: opened, its commit read, its state restored. */
  needsStart: boolean;
  /** Its changelog is being read: records so far, and the end being read to. */
  restoring: { records: number; end: number } | undefined;
  /** Being moved back to its committed offset: it takes part in no batch until that is done. */
  rewinding: boolean;
  /** Next offset to process (last cut record + 1). */
  position: number | undefined;
  /** Read up to here, past records that were filtered out (transaction markers): see BatchRun. */
  fetchedTo: number | undefined;
  highWatermark: number | undefined;
  streamTime: number | null;
}

export interface PartitionStatus {
  topic: string;
  partition: number;
  kind: TaskKind;
  position: number | null;
  highWatermark: number | null;
  lag: number | null;
  streamTime: number | null;
  buffered: number;
  rewinding: boolean;
  /** Restoring its state: changelog records read so far and the end being read to. */
  restoring: { records: number; end: number } | null;
}

export class PartitionTable {
  readonly #plan: JobPlan;
  readonly #groupId: string;
  readonly #admin: Admin;
  readonly #startFrom: 'earliest' | 'latest';
  #epoch = -1;
  #entries = new Map<string, PartitionEntry>();

  constructor(plan: JobPlan, groupId: string, admin: Admin, startFrom: 'earliest' | 'latest' = 'earliest') {
    this.#plan = plan;
    this.#groupId = groupId;
    this.#admin = admin;
    this.#startFrom = startFrom;
  }

  get epoch(): number {
    return this.#epoch;
  }
  get size(): number {
    return this.#entries.size;
  }
  entries(): IterableIterator<PartitionEntry> {
    return this.#entries.values();
  }
  get(topic: string, partition: number): PartitionEntry | undefined {
    return this.#entries.get(partitionId(topic, partition));
  }
  /** Every partition has its task restored and none is being rewound. */
  get ready(): boolean {
    for (const e of this.#entries.values()) if (e.start === undefined || e.needsStart || e.rewinding) return false;
    return true;
  }

  /** A new epoch: returns the partitions no longer assigned (revoked). */
  assign(assignment: Assignment): PartitionEntry[] {
    this.#epoch = assignment.epoch;
    const next = new Map<string, PartitionEntry>();
    for (const { topic, partition } of assignment.partitions) {
      const id = partitionId(topic, partition);
      const kind = taskKindFor(this.#plan, topic);
      next.set(id, {
        id,
        topic,
        partition,
        kind,
        withoutRecords: withoutRecordsFor(kind),
        start: undefined,
        needsStart: true,
        restoring: undefined,
        rewinding: false,
        position: undefined,
        fetchedTo: undefined,
        highWatermark: this.#entries.get(id)?.highWatermark,
        streamTime: null,
      });
    }
    const revoked = [...this.#entries.values()].filter((e) => !next.has(e.id));
    this.#entries = next;
    return revoked;
  }

  /**
   * Reads the committed positions of `which` (default: those not read yet) for the current epoch,
   * and the partitions' end offsets: a partition is known to be caught up (and may go idle) even if no
   * fetch ever brought it a record — kafkajs reports a high watermark only with records, and an input
   * partition that stays empty must not hold a re-keyed job's windows open for ever.
   * Returns false when the epoch changed meanwhile (the result belongs to no one).
   */
  async loadStarts(
    which: readonly PartitionEntry[] = [...this.#entries.values()].filter((e) => !e.start),
  ): Promise<boolean> {
    const epoch = this.#epoch;
    const topics = [...new Set(which.map((e) => e.topic))];
    if (topics.length === 0) return true;
    const [fetched, ends] = await Promise.all([
      this.#admin.fetchOffsets({ groupId: this.#groupId, topics }),
      Promise.all(topics.map(async (topic) => ({ topic, offsets: await this.#admin.fetchTopicOffsets(topic) }))),
    ]);
    if (epoch !== this.#epoch) return false;
    const wanted = new Set(which.map((e) => e.id));
    for (const { topic, partitions } of fetched) {
      for (const p of partitions) {
        const entry = this.#entries.get(partitionId(topic, p.partition));
        if (!entry || !wanted.has(entry.id)) continue;
        const offset = Number(p.offset);
        entry.start = {
          committedOffset: offset >= 0 ? offset : null,
          metadata: offset >= 0 ? (p.metadata ?? null) : null,
        };
      }
    }
    for (const entry of which) entry.start ??= { committedOffset: null, metadata: null };
    for (const { topic, offsets } of ends) {
      for (const o of offsets) {
        const entry = this.#entries.get(partitionId(topic, o.partition));
        if (!entry || !wanted.has(entry.id)) continue;
        const high = Number(o.high);
        entry.highWatermark = Math.max(entry.highWatermark ?? high, high);
        // Where fetching starts: the committed offset, else where a partition without one starts.
        entry.position = entry.start?.committedOffset ?? Number(this.#startFrom === 'earliest' ? o.low : o.high);
      }
    }
    return true;
  }

  status(buffered: (id: string) => number): PartitionStatus[] {
    return [...this.#entries.values()].map((e) => ({
      topic: e.topic,
      partition: e.partition,
      kind: e.kind,
      position: e.position ?? null,
      highWatermark: e.highWatermark ?? null,
      lag: lagOf(e),
      streamTime: e.streamTime,
      buffered: buffered(e.id),
      rewinding: e.rewinding,
      restoring: e.restoring ?? null,
    }));
  }
}

export function lagOf(e: PartitionEntry): number | null {
  return e.highWatermark !== undefined && e.position !== undefined ? Math.max(0, e.highWatermark - e.position) : null;
}
