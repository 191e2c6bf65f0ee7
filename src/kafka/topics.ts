/**
 * Topics a job needs: its inputs must exist; the output, dead-letter and repartition topics are
 * created when missing (unless disabled). The repartition topic has as many partitions as the
 * largest input, so a re-keyed job keeps the input's parallelism.
 */
import { type Admin } from 'kafkajs';
import type pino from 'pino';
import { KafkaError } from '../errors.ts';
import { type JobPlan } from '../job/plan.ts';

export interface TopicLayout {
  inputPartitions: Map<string, number>;
  repartitionPartitions: number | undefined;
}

export async function ensureTopics(
  admin: Admin,
  plan: JobPlan,
  create: boolean,
  logger: pino.Logger,
): Promise<TopicLayout> {
  const existing = new Set(await admin.listTopics());
  const missingInputs = plan.inputTopics.filter((t) => !existing.has(t));
  if (missingInputs.length > 0) {
    throw new KafkaError(`input topic(s) ${missingInputs.join(', ')} do not exist`, undefined, false);
  }
  const metadata = await admin.fetchTopicMetadata({ topics: plan.inputTopics });
  const inputPartitions = new Map(metadata.topics.map((t) => [t.name, t.partitions.length]));
  const partitions = Math.max(...inputPartitions.values());

  const wanted: Array<{
    topic: string;
    numPartitions: number;
    configEntries?: Array<{ name: string; value: string }>;
  }> = [
    { topic: plan.outputTopic, numPartitions: partitions },
    // Dead letters keep the original record, which may be larger than the broker's default limit.
    {
      topic: plan.dlqTopic,
      numPartitions: 1,
      configEntries: [{ name: 'max.message.bytes', value: String(20 * 1024 * 1024) }],
    },
  ];
  if (plan.repartitionTopic) {
    // Repartition records carry their event time as timestamp, which time-based retention would
    // delete at once for historical data: keep them forever and purge what is committed instead
    // (the scheduler deletes records below the committed offsets, as Kafka Streams does).
    wanted.push({
      topic: plan.repartitionTopic,
      numPartitions: partitions,
      configEntries: [
        { name: 'retention.ms', value: '-1' },
        { name: 'cleanup.policy', value: 'delete' },
      ],
    });
  }
  const missing = wanted.filter((t) => !existing.has(t.topic));
  if (missing.length > 0) {
    if (!create) {
      throw new KafkaError(
        `topic(s) ${missing.map((t) => t.topic).join(', ')} do not exist and SLUICE_CREATE_TOPICS is false`,
        undefined,
        false,
      );
    }
    // kafkajs speaks CreateTopics v3, which cannot ask for the broker's default replication factor.
    const brokers = (await admin.describeCluster()).brokers.length;
    const replicationFactor = Math.min(3, brokers);
    await admin.createTopics({ waitForLeaders: true, topics: missing.map((t) => ({ ...t, replicationFactor })) });
    logger.info({ topics: missing.map((t) => t.topic) }, 'created topics');
  }
  let repartitionPartitions: number | undefined;
  if (plan.repartitionTopic && existing.has(plan.repartitionTopic)) {
    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [{ type: 2 /* TOPIC */, name: plan.repartitionTopic, configNames: ['retention.ms'] }],
    });
    const retention = described.resources[0]?.configEntries.find((c) => c.configName === 'retention.ms')?.configValue;
    if (retention !== '-1') {
      logger.warn(
        { topic: plan.repartitionTopic, retentionMs: retention },
        'repartition topic has time-based retention: records with old event times may be deleted before they are read; set retention.ms=-1',
      );
    }
  }
  if (plan.repartitionTopic) {
    const meta = await admin.fetchTopicMetadata({ topics: [plan.repartitionTopic] });
    repartitionPartitions = meta.topics[0]?.partitions.length;
    if (repartitionPartitions !== partitions) {
      logger.warn(
        { topic: plan.repartitionTopic, partitions: repartitionPartitions, expected: partitions },
        'repartition topic partition count differs from the input',
      );
    }
  }
  return { inputPartitions, repartitionPartitions };
}
