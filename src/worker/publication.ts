/**
 * What a task's batch publishes, and what is freed after: the publication a task's results make (in
 * order per source), produce calls with a last one appended, and the release of a batch's buffers.
 */
import { partitionId, type BatchRequest, type PartitionResult } from '../pool/protocol.ts';
import { type Publication } from '../sink/kafka-sink.ts';

/**
 * Frees a batch's buffers once it is published (or has failed): its input records and its results'
 * packed outputs, changelog records and repartition blocks; the main thread gets counts, statistics and
 * commits only. Left to the collector they outlive the batch by several: they survive the scavenges
 * that run while the batch does, so only a full collection frees them (measured: 55–75 MB of array
 * buffers held by a worker under a backlog). Detaching one (`transfer(0)`) frees it at once. The input
 * stays when the job reads values as bytes: user code may hold views of it (in state, say).
 */
export function release(request: BatchRequest, results: PartitionResult[], input: boolean): void {
  if (input) for (const work of request.partitions) work.records.transfer(0);
  const empty = new ArrayBuffer(0);
  for (const r of results) {
    r.outputs.transfer(0);
    r.changelog.transfer(0);
    for (const block of r.repartition) (block.data.buffer as ArrayBuffer).transfer(0);
    r.outputs = empty;
    r.changelog = empty;
    r.repartition = [];
    for (const d of r.dead) {
      d.key = null;
      d.value = null;
    }
  }
}

/** `calls`, then `last`, as they are iterated. */
export function* withLast<T>(calls: Iterable<T>, last: T): Generator<T> {
  yield* calls;
  yield last;
}

/** What a batch's results publish, in order per source. */
export function publicationOf(results: readonly PartitionResult[]): Publication {
  return {
    outputs: results.map((r) => ({ buffer: r.outputs, count: r.outputCount })),
    repartition: results.flatMap((r) =>
      r.repartition.length > 0 ? [{ source: partitionId(r.topic, r.partition), blocks: r.repartition }] : [],
    ),
    dead: results.flatMap((r) => r.dead),
    watermarks: results.flatMap((r) =>
      r.watermark ? [{ source: partitionId(r.topic, r.partition), watermark: r.watermark }] : [],
    ),
    changelog: results.flatMap((r) =>
      r.changelogPartition !== null && r.changelog.byteLength > 0
        ? [{ partition: r.changelogPartition, buffer: r.changelog }]
        : [],
    ),
  };
}
