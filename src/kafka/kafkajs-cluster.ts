/**
 * kafkajs's `Cluster` for the parts of Sluice that need requests its clients do not make: the restore
 * consumer (fetches without a group) and the transaction settler (a transaction without records).
 *
 * Each kafkajs client is built on a `Cluster` (metadata, leader lookup, one `Broker` connection per
 * node) that `new Kafka()` creates through the private symbol `private:Kafka:createCluster`. The
 * kafkajs version is pinned to 2.2.4 (`package-lock.json`); a missing symbol fails at construction,
 * never mid-run. The interfaces name only what Sluice calls (`src/cluster/index.js`,
 * `src/broker/index.js`).
 */
import { createRequire } from 'node:module';
import type { Kafka } from 'kafkajs';

const require = createRequire(import.meta.url);

/** Fetch responses are as kafkajs decodes them (`fetched-records.ts` types what the restore reads). */
export interface KafkajsBroker {
  /** The API versions the broker announced (ApiVersions), by API key; null before it connected. */
  versions: Record<number, { minVersion: number; maxVersion: number }> | null;
  /** Sends a request kafkajs has no method for (`describe-transactions.ts`). */
  connectionPool: { send(request: { request: object; response: object }): Promise<unknown> };
  fetch(request: {
    replicaId: number;
    isolationLevel: number;
    maxWaitTime: number;
    minBytes: number;
    maxBytes: number;
    topics: Array<{ topic: string; partitions: Array<{ partition: number; fetchOffset: string; maxBytes: number }> }>;
  }): Promise<{
    errorCode?: number;
    responses: Array<{ topicName: string; partitions: Array<{ partition: number }> }>;
  }>;
  initProducerId(request: {
    transactionalId: string;
    transactionTimeout: number;
  }): Promise<{ producerId: string; producerEpoch: number }>;
  addPartitionsToTxn(request: {
    transactionalId: string;
    producerId: string;
    producerEpoch: number;
    topics: Array<{ topic: string; partitions: number[] }>;
  }): Promise<unknown>;
  addOffsetsToTxn(request: {
    transactionalId: string;
    producerId: string;
    producerEpoch: number;
    groupId: string;
  }): Promise<unknown>;
  endTxn(request: {
    transactionalId: string;
    producerId: string;
    producerEpoch: number;
    transactionResult: boolean;
  }): Promise<unknown>;
}

export interface KafkajsCluster {
  connect(): Promise<void>;
  disconnect(): Promise<void>;
  addTargetTopic(topic: string): Promise<void>;
  addMultipleTargetTopics(topics: string[]): Promise<void>;
  refreshMetadata(): Promise<void>;
  findLeaderForPartitions(topic: string, partitions: number[]): Record<string, number[]>;
  findBroker(query: { nodeId: string }): Promise<KafkajsBroker>;
  /** `coordinatorType` 1: the transaction coordinator of the transactional id `groupId`. */
  findGroupCoordinator(query: { groupId: string; coordinatorType: number }): Promise<KafkajsBroker>;
  fetchTopicsOffset(
    topics: Array<{ topic: string; partitions: Array<{ partition: number }>; fromBeginning: boolean }>,
  ): Promise<Array<{ topic: string; partitions: Array<{ partition: number; offset: string }> }>>;
}

type CreateCluster = (options: {
  metadataMaxAge: number;
  allowAutoTopicCreation: boolean;
  maxInFlightRequests: null;
  instrumentationEmitter: null;
  isolationLevel: number;
}) => KafkajsCluster;

const CREATE_CLUSTER = 'private:Kafka:createCluster';
export const READ_COMMITTED = 1;
export const TRANSACTION_COORDINATOR = 1;

export const { createErrorFromCode } = require('kafkajs/src/protocol/error.js') as {
  createErrorFromCode: (code: number) => Error;
};

/**
 * A new `Cluster` of `kafka`'s configuration (brokers, TLS, SASL, retries). `failure` builds the error
 * for a kafkajs without the symbol, naming what needs it.
 */
export function createCluster(kafka: Kafka, failure: (message: string) => Error): KafkajsCluster {
  const symbol = Object.getOwnPropertySymbols(kafka).find((s) => s.description === CREATE_CLUSTER);
  const create = symbol === undefined ? undefined : (kafka as unknown as Record<symbol, unknown>)[symbol];
  if (typeof create !== 'function') {
    const version = (require('kafkajs/package.json') as { version: string }).version;
    throw failure(`kafkajs ${version} has no Symbol(${CREATE_CLUSTER}) on its Kafka client`);
  }
  return (create as CreateCluster).call(kafka, {
    metadataMaxAge: 300_000,
    allowAutoTopicCreation: false,
    maxInFlightRequests: null,
    instrumentationEmitter: null,
    isolationLevel: READ_COMMITTED,
  });
}
