/**
 * The worker-thread side: loads the job module, answers READY, then processes batches for the
 * partitions routed to it. Each partition's state lives here (sticky ownership). One `switch`
 * handles requests; any failure is serialized back, never thrown across the boundary.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { serializeError } from '../errors.ts';
import { loadJobPlan } from '../job/loader.ts';
import { type JobPlan } from '../job/plan.ts';
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
const post = (message: WorkerResponse, transfer: ArrayBuffer[] = []): void => port.postMessage(message, transfer);

let plan: JobPlan;
try {
  plan = await loadJobPlan(init.jobPath);
  if (init.batchIntervalMs !== undefined) plan = { ...plan, batchIntervalMs: init.batchIntervalMs };
} catch (error) {
  post({ type: 'init-error', error: serializeError(error) });
  // Let the main thread terminate us after it has read the error.
  await new Promise(() => undefined);
  throw error;
}

const processors = new Map<string, PartitionProcessor>();

function handle(request: WorkerRequest): void {
  switch (request.type) {
    case 'batch': {
      const started = performance.now();
      const results: PartitionResult[] = [];
      const transfer: ArrayBuffer[] = [];
      const wallNow = Date.now();
      for (const work of request.partitions) {
        const id = partitionId(work.topic, work.partition);
        let processor = processors.get(id);
        if (work.start || !processor) {
          processor = new PartitionProcessor(
            { plan, maxRecordBytes: init.maxRecordBytes, sources: init.sources },
            work.topic,
            work.partition,
            work.start ?? { committedOffset: null, metadata: null },
          );
          processors.set(id, processor);
        }
        const result = processor.process(work.records, request.batchTime, wallNow, work.caughtUp);
        results.push(result);
        transfer.push(result.outputs, result.repartition);
      }
      post(
        {
          type: 'result',
          requestId: request.requestId,
          partitions: results,
          processingMs: performance.now() - started,
        },
        transfer,
      );
      return;
    }
    case 'drop':
      for (const { topic, partition } of request.partitions) processors.delete(partitionId(topic, partition));
      post({ type: 'dropped', requestId: request.requestId });
      return;
  }
}

port.on('message', (request: WorkerRequest) => {
  try {
    handle(request);
  } catch (error) {
    post({ type: 'error', requestId: request.requestId, error: serializeError(error) });
  }
});
post({ type: 'ready', workerIndex: init.workerIndex });
