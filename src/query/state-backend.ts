/**
 * What queryable state needs of the running service, put together once the topics' layout is known:
 * where a key lives (`key-partitions.ts`), whether this replica owns it and what its tasks hold
 * (`local-state.ts`), and who owns it otherwise (`partition-owners.ts`). The HTTP route
 * (`src/http/state-routes.ts`) routes each query with it.
 *
 * The owners read from the group are dropped whenever the consumer's epoch moved (each group join,
 * which every rebalance is for every member): the next query reads the group again.
 */
import { type Admin } from 'kafkajs';
import type pino from 'pino';
import { type ResolvedConfig } from '../config/resolve.ts';
import { type JobPlan } from '../job/plan.ts';
import { type Metrics } from '../metrics/registry.ts';
import { type WorkerPool } from '../pool/worker-pool.ts';
import { type Receiver } from '../receiver/receiver.ts';
import { type Scheduler } from '../scheduler/scheduler.ts';
import { keyPartitions, type PartitionLayout, type TopicPartition } from './key-partitions.ts';
import { type LocalAnswer, LocalState, type Ownership } from './local-state.ts';
import { type OwnerLookup, PartitionOwners } from './partition-owners.ts';

/** How a state query ended, for the metrics. */
export type StateQueryOutcome = 'local' | 'proxied' | 'redirected' | 'unavailable' | 'failed';

export interface StateBackend {
  /** This replica's advertised URL. */
  selfUrl: string;
  partitionsOf(key: string): TopicPartition[];
  local: {
    ownership(tp: TopicPartition): Ownership;
    answer(key: string, partitions: readonly TopicPartition[], from: number, to: number): Promise<LocalAnswer>;
  };
  owners: { ownerOf(topic: string, partition: number, options?: { stale?: boolean }): Promise<OwnerLookup> };
  counted(outcome: StateQueryOutcome): void;
}

/** What the service is (the app's own fields). */
export interface ServiceView {
  readonly plan: Pick<JobPlan, 'inputTopics' | 'repartitionTopic'>;
  readonly config: Pick<ResolvedConfig, 'http'>;
  readonly groupId: string;
  readonly metrics: Pick<Metrics, 'stateQueries'>;
  readonly logger: pino.Logger;
}

/** Its running parts. */
export interface RunningParts {
  layout: PartitionLayout;
  admin: Pick<Admin, 'describeGroups'>;
  receiver: Pick<Receiver, 'joined' | 'assignment' | 'epoch'>;
  scheduler: Pick<Scheduler, 'partitions'>;
  pool: Pick<WorkerPool, 'queryState'>;
}

export function stateBackend(service: ServiceView, parts: RunningParts): StateBackend {
  const { plan, metrics } = service;
  const { layout, receiver, scheduler, pool } = parts;
  const owners = new PartitionOwners(parts.admin, service.groupId, service.logger.child({ component: 'state-query' }));
  let epoch = receiver.epoch;
  return {
    selfUrl: service.config.http.advertisedUrl,
    partitionsOf: (key) => keyPartitions(plan, layout, key),
    local: new LocalState({
      assignment: () => ({ joined: receiver.joined, partitions: receiver.assignment.partitions }),
      partitions: () => scheduler.partitions(),
      query: (query) => pool.queryState(query),
      tagTopics: plan.repartitionTopic === undefined && plan.inputTopics.length > 1,
    }),
    owners: {
      ownerOf(topic, partition, options) {
        if (receiver.epoch !== epoch) {
          epoch = receiver.epoch;
          owners.invalidate();
        }
        return owners.ownerOf(topic, partition, options);
      },
    },
    counted: (outcome) => metrics.stateQueries.inc({ outcome }),
  };
}
