/**
 * The worker-thread side (Kafka Streams' StreamThread): loads the job module, connects its own
 * producer, answers READY, then runs batches for the partitions routed to it — one task per
 * partition, which owns that partition's state (sticky ownership) — and publishes their results
 * itself. Publishing here, not in the main thread, keeps kafkajs's record encoding off the thread
 * that also consumes (profiled: 29% of the main thread). One `switch` handles requests; any failure
 * is serialized back, never thrown across the boundary.
 *
 * A partition's life here: `open` (exactly-once: its transactional producer, which fences the
 * previous owner), `restore` (its task, built from the committed position, reads its changelog
 * partition and its tables' partition to the end), batches (tables caught up first: tables.ts),
 * `drop`. In exactly-once delivery each task's batch is one
 * transaction with its input offset; at-least-once publishes through the worker's idempotent
 * producer and the scheduler commits.
 */
// First: fixes kafkajs's producer before kafkajs is loaded (see the module).
import { abortedFilterFixActive, kafkajsFixesActive } from '../kafka/kafkajs-fixes.ts';
import { parentPort, workerData } from 'node:worker_threads';
import { Kafka } from 'kafkajs';
import pino from 'pino';
import { serializeError } from '../error-serialization.ts';
import { loadJobPlan } from '../job/loader.ts';
import { type JobPlan } from '../job/plan.ts';
import { kafkaClientConfig } from '../kafka/client.ts';
import { ConnectionWatch } from '../kafka/connection-watch.ts';
import { Progress } from '../pool/progress.ts';
import {
  partitionId,
  type BatchRequest,
  type HeldTask,
  type PartitionResult,
  type RestoredTask,
  type RestoreRequest,
  type WorkerInit,
  type WorkerRequest,
  type WorkerResponse,
} from '../pool/protocol.ts';
import { KafkaSink, messagesOf } from '../sink/kafka-sink.ts';
import { type TaskProducer } from '../sink/task-producer.ts';
import { ChangelogReader } from '../state/changelog-reader.ts';
import { BatchFailedError, IllegalStateError } from '../errors.ts';
import { createTask } from './create-task.ts';
import { publicationOf, release, withLast } from './publication.ts';
import { TaskProducers } from './task-producers.ts';
import { answerStateQuery } from './state-query.ts';
import { WorkerTables, workerTablesOptions } from './tables.ts';
import { type Task, type TaskContext } from './task.ts';

if (!parentPort) throw new Error('worker-entry must run in a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;
const post = (message: WorkerResponse): void => port.postMessage(message);
const logger = pino({ level: init.kafka.logLevel, base: { service: 'sluice', worker: init.workerIndex } });
const progress = new Progress(init.progress);
/** Failed connections of the worker's client: exactly-once producers stop writing after one. */
const connections = new ConnectionWatch();

interface Clients {
  client: Kafka;
  sink: KafkaSink;
  reader: ChangelogReader | undefined;
  tables: WorkerTables;
}

/** Loads the job and connects the producer (and the changelog reader): the worker is ready once all are. */
async function start(): Promise<{ plan: JobPlan; clients: Clients }> {
  if (!abortedFilterFixActive()) throw new IllegalStateError('kafkajs was loaded before its aborted-record fix');
  let plan = await loadJobPlan(init.jobPath);
  if (init.batchIntervalMs !== undefined) plan = { ...plan, batchIntervalMs: init.batchIntervalMs };
  const { connection, topics } = init.kafka;
  const clientId = `${connection.clientId}-worker-${init.workerIndex}`;
  const client = new Kafka(kafkaClientConfig(connection, logger, clientId, connections.socketFactory));
  const sink = new KafkaSink(client, topics);
  await sink.start();
  const reader = topics.changelog !== undefined ? new ChangelogReader(client, topics.changelog, { logger }) : undefined;
  await reader?.start();
  const tables = await WorkerTables.start(client, workerTablesOptions(plan, init, sink, logger));
  if (!kafkajsFixesActive()) logger.warn('kafkajs producer runs without its grouping fix: publishing is slower');
  return { plan, clients: { client, sink, reader, tables } };
}

/** Answers the main thread's requests for the partitions routed here. */
function serve(plan: JobPlan, { client, sink, reader, tables }: Clients): void {
  const exactlyOnce = init.kafka.delivery === 'exactly-once';
  const context: TaskContext = {
    plan,
    maxRecordBytes: init.maxRecordBytes,
    sources: init.sources,
    repartitionPartitions: init.kafka.topics.repartitionPartitions,
    progress,
    tables,
  };
  const tasks = new Map<string, Task>();
  /** Exactly-once: each partition's transactional producer, and the settling of failed transactions. */
  const producers = exactlyOnce
    ? new TaskProducers(
        client,
        {
          groupId: init.kafka.groupId,
          transactionTimeoutMs: init.kafka.transactionTimeoutMs,
          connectionFailures: () => connections.failures,
        },
        logger,
      )
    : undefined;

  /** A new producer per partition (a failed one cannot be used again), opened: the old owner is fenced. */
  async function open(partitions: ReadonlyArray<{ topic: string; partition: number }>): Promise<void> {
    if (!exactlyOnce) return;
    await Promise.all(
      partitions.map(({ topic, partition }) => producers?.open(partitionId(topic, partition), topic, partition)),
    );
  }

  async function restore(request: RestoreRequest): Promise<RestoredTask[]> {
    return Promise.all(
      request.partitions.map(async ({ topic, partition, start }) => {
        const started = performance.now();
        const id = partitionId(topic, partition);
        tasks.delete(id);
        const settling = await producers?.settleFailed(id, topic, partition, start.committedOffset);
        const settled = settling?.outcome;
        const from = settling ? { ...start, committedOffset: settling.committedOffset } : start;
        const task = createTask(context, topic, partition, from);
        await tables.open(task);
        let records = 0;
        if (task.changelogPartition !== null) {
          if (!reader) throw new IllegalStateError('an aggregating task needs the changelog topic');
          let reported = 0;
          const read = await reader.restore(task.changelogPartition, (chunk, _position, end) => {
            task.restore(chunk);
            records += chunk.length;
            const now = performance.now();
            if (now - reported >= 200) {
              reported = now;
              post({ type: 'restore-progress', requestId: request.requestId, topic, partition, records, end });
            }
          });
          records = read.records;
        }
        const position = task.restored();
        tasks.set(id, task);
        return { topic, partition, records, ms: performance.now() - started, position, ...(settled && { settled }) };
      }),
    );
  }

  /**
   * Publishes one task's results. Exactly-once: in the task's own transaction, with its input offset,
   * through the producer the partition had when its task ran. A partition opened again meanwhile (a
   * rebalance) has a new producer that fenced that one: the commit then fails rather than landing after
   * the new owner read its committed offset. At-least-once: through the worker's idempotent producer.
   */
  async function publishTask(r: PartitionResult, producer: TaskProducer | undefined): Promise<void> {
    if (!exactlyOnce) {
      await sink.publish(publicationOf([r]));
      return;
    }
    const id = partitionId(r.topic, r.partition);
    if (!producer) throw new IllegalStateError(`no transactional producer for ${id}`);
    const { calls, changelog } = messagesOf(publicationOf([r]), init.kafka.topics);
    const offset = r.commit ? { topic: r.topic, partition: r.partition, offset: r.commit.offset } : null;
    await producer.commit(changelog ? withLast(calls, [changelog]) : calls, offset);
    if (r.commit) r.committed = true;
  }

  function held(): HeldTask[] {
    return [...tasks.values()].map((t) => ({
      topic: t.topic,
      partition: t.partition,
      kind: t.kind,
      openWindows: t.openWindows,
    }));
  }

  /**
   * Runs a batch task by task, and publishes each task's results while the next one is processed:
   * the network waits of one overlap the processing of the next, and at most
   * {@link PUBLISHING_TASKS} tasks' results are held at once, not the whole batch's. Every publication
   * is settled before the batch answers, failed or not: a transaction still in flight could otherwise
   * commit after the main thread read the committed offsets to rebuild a failed partition.
   */
  async function runBatch(request: BatchRequest): Promise<void> {
    const started = performance.now();
    const results: PartitionResult[] = [];
    const wallNow = Date.now();
    const publishing = new Set<Promise<void>>();
    const failures: Error[] = [];
    let processingMs = 0;
    try {
      await tables.catchUp(request.partitions);
      for (const [index, work] of request.partitions.entries()) {
        const id = partitionId(work.topic, work.partition);
        const task = tasks.get(id);
        // A replaced worker holds no task: the batch fails and the partition is rebuilt from its commit.
        if (!task) throw new IllegalStateError(`${id} has no task here: it was not restored on this worker`);
        const producer = producers?.get(id);
        progress.phase('processing', index);
        const taskStarted = performance.now();
        const result = task.process(work.records, request.batchTime, wallNow, work.caughtUp, work.poison, work.through);
        processingMs += performance.now() - taskStarted;
        results.push(result);
        progress.phase('publishing');
        const publication: Promise<void> = publishTask(result, producer).then(
          () => void publishing.delete(publication),
          (error: unknown) => {
            publishing.delete(publication);
            failures.push(error as Error);
          },
        );
        publishing.add(publication);
        while (publishing.size >= PUBLISHING_TASKS) await Promise.race(publishing);
        // A turn of the event loop: the publications' network I/O goes on while the next task runs.
        await new Promise<void>((resolve) => setImmediate(resolve));
      }
    } finally {
      progress.phase('publishing');
      await Promise.all(publishing);
      release(request, results, plan.format !== 'bytes');
    }
    if (failures.length > 0) throw failures.length === 1 ? failures[0]! : new BatchFailedError(failures);
    progress.phase('idle');
    const publishMs = performance.now() - started - processingMs;
    post({ type: 'result', requestId: request.requestId, partitions: results, processingMs, publishMs, held: held() });
  }

  async function handle(request: WorkerRequest): Promise<void> {
    switch (request.type) {
      case 'batch':
        return runBatch(request);
      case 'open':
        await open(request.partitions);
        post({ type: 'opened', requestId: request.requestId });
        return;
      case 'restore': {
        const partitions = await restore(request);
        post({ type: 'restored', requestId: request.requestId, partitions, held: held() });
        return;
      }
      case 'drop':
        for (const { topic, partition } of request.partitions) {
          const id = partitionId(topic, partition);
          tasks.delete(id);
          tables.drop({ topic, partition });
          // Another replica restores it: it cannot know this one's failed transaction.
          await producers?.drop(id);
        }
        post({ type: 'dropped', requestId: request.requestId, held: held() });
        return;
      case 'close':
        await producers?.close();
        await tables.stop();
        await reader?.stop().catch(() => undefined);
        await sink.close().catch(() => undefined);
        post({ type: 'closed', requestId: request.requestId });
        return;
      case 'state-query':
        post(answerStateQuery(tasks, plan, request));
        return;
    }
  }

  port.on('message', (request: WorkerRequest) => {
    handle(request).catch((error: unknown) => {
      progress.phase('idle');
      post({ type: 'error', requestId: request.requestId, error: serializeError(error) });
    });
  });
  post({ type: 'ready', workerIndex: init.workerIndex });
}

/** Tasks whose results may be publishing at once while the next task of the batch is processed. */
const PUBLISHING_TASKS = 3;

// No top-level await: a job that fails to load must not leave an unsettled one behind (Node reports it
// on stderr, and a start-up failure is one line). The thread stays until the main thread ends it.
start().then(
  ({ plan, clients }) => serve(plan, clients),
  (error: unknown) => {
    port.on('message', () => undefined);
    post({ type: 'init-error', error: serializeError(error) });
  },
);
