/**
 * The repartition topic of a re-keyed job, in process: what a shuffle writer's batch result puts on
 * `<job>-repartition` — its repartition blocks, then its stream time as a control record to every
 * repartition partition — as the records a shuffle reader then reads. The layout (key, value and
 * headers of each record, and their order) is the one the sink publishes (`publishedMessages` in
 * src/sink/kafka-sink.ts, which `sluice/testing` cannot import: it needs kafkajs); a test checks that
 * both agree.
 */
import { partitionId, type PartitionResult } from '../pool/protocol.ts';
import { BLOCK_HEADER, IDLE_HEADER, SOURCE_HEADER, WATERMARK_HEADER } from '../wire/headers.ts';
import { BLOCK_VERSION } from '../wire/repartition-block.ts';

/** A repartition-topic record before it has an offset. */
export interface ShuffleRecord {
  partition: number;
  key: null;
  value: Buffer | null;
  headers: Record<string, string>;
}

/**
 * The repartition records of one task's batch, in the order the sink writes them: the blocks (in the
 * order the task wrote them), then, when the task's stream time changed, one control record per
 * repartition partition.
 */
export function shuffleRecords(result: PartitionResult, repartitionPartitions: number): ShuffleRecord[] {
  const source = partitionId(result.topic, result.partition);
  const records: ShuffleRecord[] = [];
  for (const block of result.repartition) {
    records.push({
      partition: block.partition,
      key: null,
      value: Buffer.from(block.data.buffer, block.data.byteOffset, block.data.byteLength),
      headers: { [SOURCE_HEADER]: source, [BLOCK_HEADER]: String(BLOCK_VERSION) },
    });
  }
  const watermark = result.watermark;
  if (watermark) {
    const headers = {
      [SOURCE_HEADER]: source,
      [WATERMARK_HEADER]: watermark.streamTime === null ? '' : String(watermark.streamTime),
      [IDLE_HEADER]: watermark.idle ? '1' : '0',
    };
    for (let partition = 0; partition < repartitionPartitions; partition++) {
      records.push({ partition, key: null, value: null, headers: { ...headers } });
    }
  }
  return records;
}
