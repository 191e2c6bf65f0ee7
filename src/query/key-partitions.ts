/**
 * Where a group key's state lives: the partitions whose tasks aggregate it. A job with a `keyBy`
 * before its window aggregates in the repartition topic, at the partition its shuffle writer sends
 * the key to: Kafka's default partitioner (murmur2, `partitionFor`) over the key's UTF-8 bytes, as
 * `BlockWriter.add` encodes a text key. A job without `keyBy` aggregates in its input partitions by
 * the Kafka record key; a producer using Kafka's default partitioner put that key in the same
 * partition of each input topic by the same rule, over that topic's partition count. Keys that are
 * not UTF-8 text (or records a producer placed by another rule) cannot be found this way.
 */
import { type JobPlan } from '../job/plan.ts';
import { partitionFor } from '../wire/repartition-block.ts';

export interface TopicPartition {
  topic: string;
  partition: number;
}

/** Partition counts, as checked at start-up (`ensureTopics`). */
export interface PartitionLayout {
  inputPartitions: ReadonlyMap<string, number>;
  repartitionPartitions: number | undefined;
}

const encoder = new TextEncoder();

/** The partitions holding `key`'s windows, one per input topic (or the one repartition partition). */
export function keyPartitions(
  plan: Pick<JobPlan, 'inputTopics' | 'repartitionTopic'>,
  layout: PartitionLayout,
  key: string,
): TopicPartition[] {
  const bytes = encoder.encode(key);
  if (plan.repartitionTopic !== undefined) {
    const count = layout.repartitionPartitions ?? 0;
    return count > 0 ? [{ topic: plan.repartitionTopic, partition: partitionFor(bytes, count) }] : [];
  }
  return plan.inputTopics.flatMap((topic) => {
    const count = layout.inputPartitions.get(topic) ?? 0;
    return count > 0 ? [{ topic, partition: partitionFor(bytes, count) }] : [];
  });
}
