/**
 * A task is one partition's processing inside a worker thread (Kafka Streams' StreamTask): it owns
 * the partition's state and turns a batch of its records into outputs, repartition blocks, dead
 * letters and the offset to commit. Its role is chosen once, from the plan and the partition's
 * topic — never by flags checked per record:
 *
 * - `stateless`: no window; each result is published as it is computed.
 * - `windowed`: a window without re-keying; the input partition aggregates.
 * - `shuffle-writer`: stage 1 of a re-keyed windowed job; writes repartition blocks and reports
 *   its stream time downstream.
 * - `shuffle-reader`: stage 2; reads the repartition topic's blocks and aggregates.
 */
import { type JobPlan } from '../job/plan.ts';
import { type Progress } from '../pool/progress.ts';
import {
  type DeadLetter,
  type PartitionResult,
  type PartitionStart,
  type PartitionStats,
  type Poison,
} from '../pool/protocol.ts';
import { type TableAccess } from '../state/table-store.ts';
import { type RecordWriter } from '../wire/record-codec.ts';
import { type BlockWriter } from '../wire/repartition-block.ts';

export type TaskKind = 'stateless' | 'windowed' | 'shuffle-writer' | 'shuffle-reader';

export function taskKindFor(plan: JobPlan, topic: string): TaskKind {
  if (plan.repartitionTopic !== undefined) return topic === plan.repartitionTopic ? 'shuffle-reader' : 'shuffle-writer';
  return plan.window !== undefined ? 'windowed' : 'stateless';
}

/**
 * The changelog partition of an aggregating task: a shuffle reader's is its repartition partition; a
 * windowed task's is the position of its input partition among the job's input partitions (`sources`).
 * Null for tasks without state.
 */
export function changelogPartitionFor(
  plan: JobPlan,
  sources: readonly string[],
  topic: string,
  partition: number,
): number | null {
  switch (taskKindFor(plan, topic)) {
    case 'shuffle-reader':
      return partition;
    case 'windowed': {
      const at = sources.indexOf(`${topic}:${partition}`);
      return at >= 0 ? at : null;
    }
    default:
      return null;
  }
}

/** Partitions `<job>-changelog` must have: one per aggregating task (0 for a job without window). */
export function changelogPartitionsFor(
  plan: JobPlan,
  sources: readonly string[],
  repartitionPartitions: number,
): number {
  if (plan.window === undefined) return 0;
  return plan.repartitionTopic !== undefined ? repartitionPartitions : sources.length;
}

/** A changelog record as read back (restore). */
export interface StoredRecord {
  key: Uint8Array | null;
  value: Uint8Array | null;
}

/**
 * Whether a partition of this kind takes part in every batch, records or not: aggregating tasks
 * (idle advancement closes windows when traffic stops) once their state is restored, and shuffle
 * writers (they report their stream time downstream).
 */
export function withoutRecordsFor(kind: TaskKind): 'never' | 'once-rebuilt' | 'always' {
  switch (kind) {
    case 'stateless':
      return 'never';
    case 'shuffle-writer':
      return 'always';
    case 'windowed':
    case 'shuffle-reader':
      return 'once-rebuilt';
  }
}

/** What every task of a worker shares. */
export interface TaskContext {
  plan: JobPlan;
  maxRecordBytes: number;
  /** Every input partition (`topic:partition`): the upstream sources of a shuffle reader. */
  sources: readonly string[];
  /** Partitions of the repartition topic (a shuffle writer chooses among them). */
  repartitionPartitions: number;
  /** Where the worker is: set before user code runs for each record. */
  progress: Progress;
  /** The tables `joinTable` operators read; without it every lookup finds no row. */
  tables?: TableAccess;
}

export interface Task {
  readonly kind: TaskKind;
  readonly topic: string;
  readonly partition: number;
  readonly openWindows: number;
  /** The changelog partition holding this task's state; null for a task without state. */
  readonly changelogPartition: number | null;
  /** Applies changelog records, in offset order (a task without state has none). */
  restore(records: readonly StoredRecord[]): void;
  /**
   * The changelog was read to its end: returns the next input offset to process (records below it are
   * in the state, or were before the restart), or null when the group has no commit and no state.
   */
  restored(): number | null;
  /**
   * Processes one batch of the partition's packed records. `caughtUp`: nothing else is waiting for
   * the partition, so it may be idle (see PartitionWork). `poison`: records not to run again.
   * `through`: the partition has been read up to there (past transaction markers): the commit may go
   * that far.
   */
  process(
    records: ArrayBuffer,
    batchTime: number,
    wallNow: number,
    caughtUp: boolean,
    poison?: readonly Poison[],
    through?: number,
  ): PartitionResult;
}

/** Poison pills by position (`offset:sub`), or undefined when there are none. */
export type PoisonIndex = Map<string, Poison> | undefined;

export function poisonIndex(poison: readonly Poison[] | undefined): PoisonIndex {
  if (!poison || poison.length === 0) return undefined;
  return new Map(poison.map((p) => [`${p.offset}:${p.sub}`, p]));
}

/** A batch's result for a partition; the statistics' output and dead-letter counts are filled in. */
export function resultOf(
  task: { readonly topic: string; readonly partition: number },
  parts: {
    stats: PartitionStats;
    dead: DeadLetter[];
    commit: PartitionResult['commit'];
    outputs?: RecordWriter;
    repartition?: BlockWriter;
    watermark?: PartitionResult['watermark'];
    changelog?: { writer: RecordWriter; partition: number };
  },
): PartitionResult {
  const { stats, dead, outputs, repartition, changelog } = parts;
  stats.changelog = changelog?.writer.count ?? 0;
  stats.recordsOut = outputs?.count ?? 0;
  stats.dead = dead.length;
  return {
    topic: task.topic,
    partition: task.partition,
    outputs: outputs?.finish() ?? new ArrayBuffer(0),
    outputCount: outputs?.count ?? 0,
    repartition: repartition?.finish() ?? [],
    repartitionCount: repartition?.count ?? 0,
    dead,
    watermark: parts.watermark ?? null,
    changelog: changelog?.writer.finish() ?? new ArrayBuffer(0),
    changelogPartition: changelog?.partition ?? null,
    commit: parts.commit,
    committed: false,
    stats,
  };
}

/** Statistics of a batch, all zero. */
export function emptyStats(): PartitionStats {
  return {
    recordsIn: 0,
    recordsOut: 0,
    late: 0,
    dead: 0,
    duplicates: 0,
    replayed: 0,
    skipped: 0,
    changelog: 0,
    openWindows: 0,
    streamTime: null,
  };
}

/**
 * The end offset to commit, or null when it did not move since the last commit. Records below the
 * committed offset are skipped: the consumer may have started from an older commit, read before an
 * exactly-once task fenced the partition's previous owner, whose last transaction then committed.
 */
export class EndOffset {
  readonly #from: number;
  readonly #start: number | null;
  #end: number;
  #committed: number | undefined;
  constructor(start: PartitionStart) {
    this.#start = start.committedOffset;
    this.#from = start.committedOffset ?? 0;
    this.#end = this.#from;
  }
  /** The committed offset the task started from. */
  get start(): number | null {
    return this.#start;
  }
  /** Notes a record; false when it is below the committed offset (skip it). */
  saw(offset: number): boolean {
    if (offset < this.#from) return false;
    if (offset + 1 > this.#end) this.#end = offset + 1;
    return true;
  }
  /** The partition was read up to `through` (offsets past the last record hold none). */
  readThrough(through: number | undefined): void {
    if (through !== undefined && through > this.#end) this.#end = through;
  }
  commit(): { offset: number; metadata: null } | null {
    if (this.#committed === this.#end) return null;
    this.#committed = this.#end;
    return { offset: this.#end, metadata: null };
  }
}
