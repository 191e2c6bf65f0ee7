/**
 * The worker-thread side (Kafka Streams' StreamThread): loads the job module, connects its own
 * producer, answers READY, then runs batches for the partitions routed to it — one task per
 * partition, which owns that partition's state (sticky ownership) — and publishes their results
 * itself. Publishing here, not in the main thread, keeps kafkajs's record encoding off the thread
 * that also consumes (profiled: 29% of the main thread). One `switch` handles requests; any failure
 * is serialized back, never thrown across the boundary.
 */
// First: fixes kafkajs's producer before kafkajs is loaded (see the module).
import { kafkajsFixesActive } from '../kafka/kafkajs-fixes.ts';
import { parentPort, workerData } from 'node:worker_threads';
import { Kafka } from 'kafkajs';
import pino from 'pino';
import { serializeError } from '../error-serialization.ts';
import { loadJobPlan } from '../job/loader.ts';
import { type JobPlan } from '../job/plan.ts';
import { kafkaClientConfig } from '../kafka/client.ts';
import { Progress } from '../pool/progress.ts';
import {
  partitionId,
  type BatchRequest,
  type HeldTask,
  type PartitionResult,
  type WorkerInit,
  type WorkerRequest,
  type WorkerResponse,
} from '../pool/protocol.ts';
import { KafkaSink } from '../sink/kafka-sink.ts';
import { createTask } from './create-task.ts';
import { type Task, type TaskContext } from './task.ts';

if (!parentPort) throw new Error('worker-entry must run in a worker thread');
const port = parentPort;
const init = workerData as WorkerInit;
const post = (message: WorkerResponse): void => port.postMessage(message);
const logger = pino({ level: init.kafka.logLevel, base: { service: 'sluice', worker: init.workerIndex } });
const progress = new Progress(init.progress);

/** Loads the job and connects the producer: the worker is ready once both are. */
async function start(): Promise<{ plan: JobPlan; sink: KafkaSink }> {
  let plan = await loadJobPlan(init.jobPath);
  if (init.batchIntervalMs !== undefined) plan = { ...plan, batchIntervalMs: init.batchIntervalMs };
  const { connection } = init.kafka;
  const client = new Kafka(kafkaClientConfig(connection, logger, `${connection.clientId}-worker-${init.workerIndex}`));
  const sink = new KafkaSink(client, init.kafka.topics);
  await sink.start();
  if (!kafkajsFixesActive()) logger.warn('kafkajs producer runs without its grouping fix: publishing is slower');
  return { plan, sink };
}

/** Answers the main thread's requests for the partitions routed here. */
function serve(plan: JobPlan, sink: KafkaSink): void {
  const context: TaskContext = {
    plan,
    maxRecordBytes: init.maxRecordBytes,
    sources: init.sources,
    repartitionPartitions: init.kafka.topics.repartitionPartitions,
    progress,
  };
  const tasks = new Map<string, Task>();

  function held(): HeldTask[] {
    return [...tasks.values()].map((t) => ({
      topic: t.topic,
      partition: t.partition,
      kind: t.kind,
      openWindows: t.openWindows,
    }));
  }

  async function runBatch(request: BatchRequest): Promise<void> {
    const started = performance.now();
    const results: PartitionResult[] = [];
    const wallNow = Date.now();
    for (const [index, work] of request.partitions.entries()) {
      const id = partitionId(work.topic, work.partition);
      let task = tasks.get(id);
      if (work.start || !task) {
        task = createTask(context, work.topic, work.partition, work.start ?? { committedOffset: null, metadata: null });
        tasks.set(id, task);
      }
      progress.phase('processing', index);
      results.push(task.process(work.records, request.batchTime, wallNow, work.caughtUp, work.poison));
    }
    const processingMs = performance.now() - started;
    progress.phase('publishing');
    await sink.publish({
      outputs: results.map((r) => ({ buffer: r.outputs, count: r.outputCount })),
      repartition: results.flatMap((r) =>
        r.repartition.length > 0 ? [{ source: partitionId(r.topic, r.partition), blocks: r.repartition }] : [],
      ),
      dead: results.flatMap((r) => r.dead),
      watermarks: results.flatMap((r) =>
        r.watermark ? [{ source: partitionId(r.topic, r.partition), watermark: r.watermark }] : [],
      ),
    });
    progress.phase('idle');
    const publishMs = performance.now() - started - processingMs;
    // Published: the record buffers stay here; the main thread gets counts, statistics and commits.
    const empty = new ArrayBuffer(0);
    for (const r of results) {
      r.outputs = empty;
      r.repartition = [];
      for (const d of r.dead) {
        d.key = null;
        d.value = null;
      }
    }
    post({ type: 'result', requestId: request.requestId, partitions: results, processingMs, publishMs, held: held() });
  }

  async function handle(request: WorkerRequest): Promise<void> {
    switch (request.type) {
      case 'batch':
        return runBatch(request);
      case 'drop':
        for (const { topic, partition } of request.partitions) tasks.delete(partitionId(topic, partition));
        post({ type: 'dropped', requestId: request.requestId, held: held() });
        return;
      case 'close':
        await sink.close().catch(() => undefined);
        post({ type: 'closed', requestId: request.requestId });
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

// No top-level await: a job that fails to load must not leave an unsettled one behind (Node reports it
// on stderr, and a start-up failure is one line). The thread stays until the main thread ends it.
start().then(
  ({ plan, sink }) => serve(plan, sink),
  (error: unknown) => {
    port.on('message', () => undefined);
    post({ type: 'init-error', error: serializeError(error) });
  },
);
