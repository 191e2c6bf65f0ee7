/**
 * The worker-thread side: loads the job module, connects its own producer, answers READY, then
 * processes batches for the partitions routed to it and publishes their results itself. Each
 * partition's state lives here (sticky ownership). Publishing here, not in the main thread, keeps
 * kafkajs's record encoding off the thread that also consumes (profiled: 29% of the main thread).
 * One `switch` handles requests; any failure is serialized back, never thrown across the boundary.
 */
// First: fixes kafkajs's producer before kafkajs is loaded (see the module).
import { kafkajsFixesActive } from '../sink/kafkajs-fixes.ts';
import { parentPort, workerData } from 'node:worker_threads';
import { Kafka, logLevel, type SASLOptions } from 'kafkajs';
import pino from 'pino';
import { serializeError } from '../errors.ts';
import { loadJobPlan } from '../job/loader.ts';
import { type JobPlan } from '../job/plan.ts';
import { kafkaLogCreator } from '../receiver/receiver.ts';
import { KafkaSink } from '../sink/kafka-sink.ts';
import { PartitionProcessor } from './partition-processor.ts';
import {
  partitionId,
  type WorkerInit,
  type WorkerRequest,
  type WorkerResponse,
  type PartitionResult,
} from './protocol.ts';

const port = parentPort;
if (!port) throw new Error('worker-entry must run in a worker thread');
const init = workerData as WorkerInit;
const post = (message: WorkerResponse): void => port.postMessage(message);
const logger = pino({ level: init.kafka.logLevel, base: { service: 'sluice', worker: init.workerIndex } });

let plan: JobPlan;
let sink: KafkaSink;
try {
  plan = await loadJobPlan(init.jobPath);
  if (init.batchIntervalMs !== undefined) plan = { ...plan, batchIntervalMs: init.batchIntervalMs };
  const { kafka } = init;
  const client = new Kafka({
    clientId: `${kafka.clientId}-worker-${init.workerIndex}`,
    brokers: kafka.brokers,
    ...(kafka.ssl ? { ssl: kafka.ssl } : {}),
    ...(kafka.sasl ? { sasl: kafka.sasl as SASLOptions } : {}),
    connectionTimeout: 5_000,
    requestTimeout: 30_000,
    logLevel: logLevel.WARN,
    logCreator: kafkaLogCreator(logger.child({ component: 'kafkajs' })),
  });
  sink = new KafkaSink(client, kafka.topics);
  await sink.start();
  if (!kafkajsFixesActive()) logger.warn('kafkajs producer runs without its grouping fix: publishing is slower');
} catch (error) {
  post({ type: 'init-error', error: serializeError(error) });
  // Let the main thread terminate us after it has read the error.
  await new Promise(() => undefined);
  throw error;
}

const processors = new Map<string, PartitionProcessor>();

async function handle(request: WorkerRequest): Promise<void> {
  switch (request.type) {
    case 'batch': {
      const started = performance.now();
      const results: PartitionResult[] = [];
      const wallNow = Date.now();
      for (const work of request.partitions) {
        const id = partitionId(work.topic, work.partition);
        let processor = processors.get(id);
        if (work.start || !processor) {
          processor = new PartitionProcessor(
            {
              plan,
              maxRecordBytes: init.maxRecordBytes,
              sources: init.sources,
              repartitionPartitions: init.kafka.topics.repartitionPartitions,
            },
            work.topic,
            work.partition,
            work.start ?? { committedOffset: null, metadata: null },
          );
          processors.set(id, processor);
        }
        results.push(processor.process(work.records, request.batchTime, wallNow, work.caughtUp));
      }
      const processingMs = performance.now() - started;
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
      post({ type: 'result', requestId: request.requestId, partitions: results, processingMs, publishMs });
      return;
    }
    case 'drop':
      for (const { topic, partition } of request.partitions) processors.delete(partitionId(topic, partition));
      post({ type: 'dropped', requestId: request.requestId });
      return;
    case 'close':
      await sink.close().catch(() => undefined);
      post({ type: 'closed', requestId: request.requestId });
      return;
  }
}

port.on('message', (request: WorkerRequest) => {
  handle(request).catch((error: unknown) => {
    post({ type: 'error', requestId: request.requestId, error: serializeError(error) });
  });
});
post({ type: 'ready', workerIndex: init.workerIndex });
