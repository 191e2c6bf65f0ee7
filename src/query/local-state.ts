/**
 * Queryable state on this replica: whether it owns a partition now, and the answer of the partitions'
 * tasks, asked on the worker each is routed to (`WorkerPool.queryState`). A partition that is
 * assigned but not ready — its commit not read yet, its state being restored from the changelog or
 * rebuilt after a failed batch — answers `restoring`, with why, so the client retries.
 */
import { describeError } from '../errors.ts';
import { partitionId, type QueriedWindow, type StateQueryRequest } from '../pool/protocol.ts';
import { type PartitionStatus } from '../scheduler/partition-table.ts';
import { type TopicPartition } from './key-partitions.ts';

/** A window as a replica answers it; `topic` names the input topic when the job has several. */
export interface ReplicaWindow extends QueriedWindow {
  topic?: string;
}

export type LocalAnswer =
  { ok: true; windows: ReplicaWindow[] } | { ok: false; error: 'restoring' | 'not-owner' | 'busy'; reason: string };

export type Ownership = 'owned' | 'not-assigned' | 'rebalancing';

export interface LocalStateDeps {
  /** The consumer's view: in the group (not rebalancing), and the partitions assigned to this replica. */
  assignment: () => { joined: boolean; partitions: ReadonlyArray<TopicPartition> };
  /** The scheduler's view of the assigned partitions. */
  partitions: () => readonly PartitionStatus[];
  /** Asks the partition's task on its worker. */
  query: (query: Omit<StateQueryRequest, 'type' | 'requestId'>) => Promise<{ held: boolean; windows: QueriedWindow[] }>;
  /** Windows carry their topic (a job with several input topics: each aggregates on its own). */
  tagTopics: boolean;
  /** A worker that has not answered by then (a long batch) answers `busy`. */
  timeoutMs?: number;
}

const BUSY = Symbol('busy');

export class LocalState {
  readonly #deps: LocalStateDeps;

  constructor(deps: LocalStateDeps) {
    this.#deps = deps;
  }

  ownership(tp: TopicPartition): Ownership {
    const { joined, partitions } = this.#deps.assignment();
    if (!joined) return 'rebalancing';
    return partitions.some((p) => p.topic === tp.topic && p.partition === tp.partition) ? 'owned' : 'not-assigned';
  }

  /** Why an assigned partition cannot answer yet, or undefined when it can. */
  #notReady(tp: TopicPartition): string | undefined {
    const id = partitionId(tp.topic, tp.partition);
    const status = this.#deps.partitions().find((p) => p.topic === tp.topic && p.partition === tp.partition);
    if (!status) return `${id} was just assigned to this replica`;
    if (status.restoring) {
      const { records, end } = status.restoring;
      return `${id} is restoring its state: ${records} of about ${end} changelog records read`;
    }
    if (status.rewinding) return `${id} is being rebuilt from its committed offset after a failed batch`;
    if (status.position === null) return `${id} is being opened (its committed offset is read)`;
    return undefined;
  }

  /** The key's windows in `partitions`, all of which must be this replica's. */
  async answer(key: string, partitions: readonly TopicPartition[], from: number, to: number): Promise<LocalAnswer> {
    for (const tp of partitions) {
      const ownership = this.ownership(tp);
      if (ownership === 'rebalancing')
        return { ok: false, error: 'restoring', reason: 'the consumer group is rebalancing' };
      if (ownership === 'not-assigned') {
        return { ok: false, error: 'not-owner', reason: `${partitionId(tp.topic, tp.partition)} is not assigned here` };
      }
      const why = this.#notReady(tp);
      if (why) return { ok: false, error: 'restoring', reason: why };
    }
    const timeoutMs = this.#deps.timeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<typeof BUSY>((resolve) => {
      timer = setTimeout(() => resolve(BUSY), timeoutMs);
    });
    try {
      const answers = await Promise.race([
        Promise.all(partitions.map((tp) => this.#deps.query({ ...tp, key, from, to }))),
        timeout,
      ]);
      if (answers === BUSY) {
        return { ok: false, error: 'busy', reason: `the workers did not answer within ${timeoutMs} ms (a long batch)` };
      }
      const windows: ReplicaWindow[] = [];
      for (const [i, answer] of answers.entries()) {
        const tp = partitions[i]!;
        if (!answer.held) {
          const reason = `${partitionId(tp.topic, tp.partition)} is restoring its state on its worker`;
          return { ok: false, error: 'restoring', reason };
        }
        for (const w of answer.windows) windows.push(this.#deps.tagTopics ? { topic: tp.topic, ...w } : w);
      }
      return { ok: true, windows };
    } catch (error) {
      // A worker that crashed (it is being replaced, its partitions rebuilt) or a pool that is closing.
      return { ok: false, error: 'restoring', reason: `the worker could not answer: ${describeError(error)}` };
    } finally {
      clearTimeout(timer);
    }
  }
}
