/**
 * Queryable state, the worker's side: answers a `state-query` request from the partition's task —
 * the key's open windows in its state store, each with the aggregate's `result()` as the output would
 * show it (JSON: what `JSON.stringify` keeps of it). The worker's event loop runs it between batches,
 * or between two tasks of a batch (the batch loop yields there), so a store is never read while a
 * task is changing it.
 *
 * A partition without a restored task here (being restored, or not routed to this worker) answers
 * `held: false`; the main thread tells the client to retry. A `result()` that throws fails that
 * window alone, with its error, as the output would dead-letter it.
 */
import { describeError } from '../errors.ts';
import { type JobPlan } from '../job/plan.ts';
import { partitionId, type QueriedWindow, type StateQueryRequest, type WorkerResponse } from '../pool/protocol.ts';
import { AggregatingTask } from './aggregating-task.ts';
import { type Task } from './task.ts';

export function answerStateQuery(
  tasks: ReadonlyMap<string, Task>,
  plan: JobPlan,
  request: StateQueryRequest,
): WorkerResponse {
  const task = tasks.get(partitionId(request.topic, request.partition));
  const aggregator = plan.window?.aggregator;
  if (!(task instanceof AggregatingTask) || !aggregator) {
    return { type: 'state', requestId: request.requestId, held: false, windows: [] };
  }
  const windows = task.store
    .entriesOf(request.key, request.from, request.to)
    .map(({ start, end, acc }): QueriedWindow => {
      try {
        const json = JSON.stringify(aggregator.result(acc));
        return { windowStart: start, windowEnd: end, value: json === undefined ? null : JSON.parse(json) };
      } catch (error) {
        return { windowStart: start, windowEnd: end, value: null, error: describeError(error) };
      }
    });
  return { type: 'state', requestId: request.requestId, held: true, windows };
}
