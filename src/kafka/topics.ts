/**
 * Topics a job needs: its inputs must exist; the output, dead-letter, repartition and changelog
 * topics are created when missing (unless disabled). The repartition topic has as many partitions as
 * the largest input, so a re-keyed job keeps the input's parallelism. The changelog is compacted and
 * has one partition per aggregating task; an existing one with another partition count or without
 * compaction stops start-up (its state would be read by the wrong tasks, or deleted by retention).
 * Table topics must exist (they are the user's); a partitioned table must have as many partitions as
 * the stream it is joined against — the input topics before the `keyBy`, the repartition topic after
 * it — or start-up stops with one line naming the table and both counts.
 */
import { type Admin } from 'kafkajs';
import type pino from 'pino';
import { KafkaError, TableNotCopartitionedError } from '../errors.ts';
import { type JobPlan } from '../job/plan.ts';

export interface TopicLayout {
  inputPartitions: Map<string, number>;
  repartitionPartitions: number | undefined;
  changelogPartitions: number | undefined;
  /** Partitions of each table topic. */
  tablePartitions: Record<string, number>;
}

/**
 * The changelog topic's settings: compacted; batches up to 50 MiB, because at-least-once writes a
 * task's changelog records of one batch as one record batch (all or nothing); 64 MiB segments, so
 * that compaction reaches all but the newest 64 MiB and a restore reads little more than the state.
 */
export const CHANGELOG_CONFIG = [
  { name: 'cleanup.policy', value: 'compact' },
  { name: 'max.message.bytes', value: String(50 * 1024 * 1024) },
  { name: 'segment.bytes', value: String(64 * 1024 * 1024) },
];

type WantedTopic = { topic: string; numPartitions: number; configEntries?: Array<{ name: string; value: string }> };

async function createMissing(
  admin: Admin,
  wanted: WantedTopic[],
  existing: ReadonlySet<string>,
  create: boolean,
  logger: pino.Logger,
): Promise<void> {
  const missing = wanted.filter((t) => !existing.has(t.topic));
  if (missing.length === 0) return;
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

/** An existing changelog must have one partition per task and be compacted. */
async function checkChangelog(admin: Admin, topic: string, partitions: number): Promise<void> {
  const meta = await admin.fetchTopicMetadata({ topics: [topic] });
  const actual = meta.topics[0]?.partitions.length;
  if (actual !== partitions) {
    throw new KafkaError(
      `changelog topic ${topic} has ${actual} partitions, the job has ${partitions} aggregating tasks: its state belongs to another partition layout (delete the topic to start the state afresh)`,
      undefined,
      false,
    );
  }
  const described = await admin.describeConfigs({
    includeSynonyms: false,
    resources: [{ type: 2 /* TOPIC */, name: topic, configNames: ['cleanup.policy'] }],
  });
  const policy = described.resources[0]?.configEntries.find((c) => c.configName === 'cleanup.policy')?.configValue;
  if (!policy?.split(',').includes('compact')) {
    throw new KafkaError(
      `changelog topic ${topic} has cleanup.policy=${policy ?? 'unknown'}; it must be compact (retention would delete state)`,
      undefined,
      false,
    );
  }
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
  const tablePartitions = await checkTables(admin, plan, existing, inputPartitions, partitions);

  const wanted: WantedTopic[] = [
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
  await createMissing(admin, wanted, existing, create, logger);
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
  let changelogPartitions: number | undefined;
  if (plan.changelogTopic) {
    // One per aggregating task: a repartition partition, or an input partition (of every input topic).
    changelogPartitions =
      plan.repartitionTopic !== undefined
        ? (repartitionPartitions ?? partitions)
        : [...inputPartitions.values()].reduce((a, b) => a + b, 0);
    if (existing.has(plan.changelogTopic)) await checkChangelog(admin, plan.changelogTopic, changelogPartitions);
    else {
      const topic = { topic: plan.changelogTopic, numPartitions: changelogPartitions, configEntries: CHANGELOG_CONFIG };
      await createMissing(admin, [topic], existing, create, logger);
    }
  }
  return { inputPartitions, repartitionPartitions, changelogPartitions, tablePartitions };
}

/**
 * Table topics exist, and each partitioned table has the partition count of what it is joined against:
 * every input topic (a join before the `keyBy`), or the repartition topic (after it, which has
 * `repartitionPartitions`: the largest input, when Sluice creates it). Returns each table's partitions.
 */
async function checkTables(
  admin: Admin,
  plan: JobPlan,
  existing: ReadonlySet<string>,
  inputPartitions: ReadonlyMap<string, number>,
  repartitionPartitions: number,
): Promise<Record<string, number>> {
  const tables = plan.tables;
  if (tables.length === 0) return {};
  const missing = tables.filter((t) => !existing.has(t.topic)).map((t) => t.topic);
  if (missing.length > 0) {
    throw new KafkaError(`table topic(s) ${missing.join(', ')} do not exist`, undefined, false);
  }
  const metadata = await admin.fetchTopicMetadata({ topics: tables.map((t) => t.topic) });
  const counts: Record<string, number> = {};
  for (const t of metadata.topics) counts[t.name] = t.partitions.length;
  const joinedIn = (ops: JobPlan['stage1'], topic: string): boolean => ops.some((op) => op.join?.table.topic === topic);
  for (const table of tables) {
    if (table.kind !== 'partitioned') continue;
    const count = counts[table.topic];
    const against: Array<[string, number]> = [];
    if (joinedIn(plan.stage1, table.topic)) against.push(...inputPartitions);
    if (joinedIn(plan.stage2, table.topic) && plan.repartitionTopic) {
      const meta = existing.has(plan.repartitionTopic)
        ? await admin.fetchTopicMetadata({ topics: [plan.repartitionTopic] })
        : undefined;
      against.push([plan.repartitionTopic, meta?.topics[0]?.partitions.length ?? repartitionPartitions]);
    }
    const other = against.find(([, n]) => n !== count);
    if (other) {
      const [topic, n] = other;
      const role = topic === plan.repartitionTopic ? 'repartition topic' : 'input topic';
      throw new TableNotCopartitionedError(
        table.topic,
        `partitioned table "${table.topic}" has ${count} partitions but the ${role} "${topic}" it is joined against has ${n}: a partitioned table must be co-partitioned with its stream (same partition count, same keys and partitioner); give the table topic ${n} partitions or declare the table { kind: 'global' }`,
      );
    }
  }
  return counts;
}
