/**
 * The changelog topic at start-up, on the real broker: created compacted with one partition per
 * aggregating task; an existing one with another partition count or without compaction stops start-up
 * with one error naming the topic (its state would be read by the wrong tasks, or deleted). Table
 * topics must exist, and a partitioned table must have the partition count of what it is joined against.
 */
import { describe, expect, test } from '@jest/globals';
import pino from 'pino';
import { compileJob } from '../../src/job/plan.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { count, defineJob, table, tumbling } from '../../src/index.ts';
import { isSluiceError } from '../../src/errors.ts';
import { admin, createTopic, uniqueName } from '../helpers.ts';

const logger = pino({ level: 'silent' });

function windowedJob(name: string, input: string, rekeyed: boolean) {
  return compileJob(
    defineJob<{ page: string }>({
      name,
      input: { topics: [input] },
      pipeline: (s) => (rekeyed ? s.keyBy((e) => e.page) : s).window(tumbling('10s')).aggregate(count()),
      output: { topic: `${name}-out` },
    }),
  );
}

async function configOf(topic: string, name: string): Promise<string | undefined> {
  const described = await (
    await admin()
  ).describeConfigs({
    includeSynonyms: false,
    resources: [{ type: 2, name: topic, configNames: [name] }],
  });
  return described.resources[0]?.configEntries.find((c) => c.configName === name)?.configValue;
}

describe('the changelog topic', () => {
  test('created compacted, one partition per aggregating task: per input partition, or per repartition partition', async () => {
    const input = await createTopic(uniqueName('topics-in'), 3);
    const second = await createTopic(uniqueName('topics-in2'), 2);
    // Without keyBy: one task per input partition of every input topic.
    const plain = compileJob(
      defineJob({
        name: uniqueName('topics-plain'),
        input: { topics: [input, second] },
        pipeline: (s) => s.window(tumbling('10s')).aggregate(count()),
        output: { topic: uniqueName('topics-plain-out') },
      }),
    );
    const layout = await ensureTopics(await admin(), plain, true, logger);
    expect(layout.changelogPartitions).toBe(5);
    const meta = await (await admin()).fetchTopicMetadata({ topics: [plain.changelogTopic!] });
    expect(meta.topics[0]?.partitions).toHaveLength(5);
    expect(await configOf(plain.changelogTopic!, 'cleanup.policy')).toBe('compact');
    // Re-keyed: one task per repartition partition (as many as the largest input).
    const rekeyed = windowedJob(uniqueName('topics-rekeyed'), input, true);
    expect((await ensureTopics(await admin(), rekeyed, true, logger)).changelogPartitions).toBe(3);
    // A job without a window has no changelog.
    const stateless = compileJob(
      defineJob({
        name: uniqueName('topics-stateless'),
        input: { topics: [input] },
        pipeline: (s) => s,
        output: { topic: uniqueName('topics-stateless-out') },
      }),
    );
    expect(stateless.changelogTopic).toBeUndefined();
    expect((await ensureTopics(await admin(), stateless, true, logger)).changelogPartitions).toBeUndefined();
  });

  test('an existing one with another partition count stops start-up, naming it', async () => {
    const input = await createTopic(uniqueName('topics-in'), 3);
    const job = windowedJob(uniqueName('topics-wrong-count'), input, false);
    await createTopic(job.changelogTopic!, 2, { 'cleanup.policy': 'compact' });
    await expect(ensureTopics(await admin(), job, true, logger)).rejects.toThrow(
      `changelog topic ${job.changelogTopic} has 2 partitions, the job has 3 aggregating tasks`,
    );
  });

  test('an existing one without compaction stops start-up, naming it', async () => {
    const input = await createTopic(uniqueName('topics-in'), 2);
    const job = windowedJob(uniqueName('topics-wrong-policy'), input, false);
    await createTopic(job.changelogTopic!, 2, { 'cleanup.policy': 'delete' });
    await expect(ensureTopics(await admin(), job, true, logger)).rejects.toThrow(
      `changelog topic ${job.changelogTopic} has cleanup.policy=delete; it must be compact`,
    );
    // compact,delete keeps compaction: accepted.
    const other = windowedJob(uniqueName('topics-compact-delete'), input, false);
    await createTopic(other.changelogTopic!, 2, { 'cleanup.policy': 'compact,delete' });
    await expect(ensureTopics(await admin(), other, true, logger)).resolves.toMatchObject({ changelogPartitions: 2 });
  });
});

describe('table topics', () => {
  /** A job reading `inputs` that joins `tables` before (stage 1) or after (stage 2) a re-keying keyBy. */
  function joinJob(inputs: string[], joins: { before?: string; after?: string; global?: string }) {
    const name = uniqueName('topics-join');
    return compileJob(
      defineJob<{ page: string }>({
        name,
        input: { topics: inputs },
        pipeline: (s) => {
          let t = s;
          if (joins.global) t = t.joinTable(table(joins.global, { kind: 'global' }), (e) => e, { kind: 'left' });
          if (joins.before) t = t.joinTable(table(joins.before), (e) => e);
          const keyed = t.keyBy((e) => e.page);
          return (joins.after ? keyed.joinTable(table(joins.after), (e) => e) : keyed)
            .window(tumbling('10s'))
            .aggregate(count());
        },
        output: { topic: `${name}-out` },
      }),
    );
  }

  async function refusal(work: Promise<unknown>): Promise<string> {
    try {
      await work;
    } catch (error) {
      expect(isSluiceError(error)).toBe(true);
      if (isSluiceError(error)) {
        expect(error.retryable).toBe(false);
        return `[${error.code}] ${error.message}`;
      }
    }
    throw new Error('expected a refusal');
  }

  test("co-partitioned tables and a global table of any size pass; the layout has each table topic's partitions", async () => {
    const input = await createTopic(uniqueName('topics-join-in'), 3);
    const before = await createTopic(uniqueName('topics-users'), 3, { 'cleanup.policy': 'compact' });
    const after = await createTopic(uniqueName('topics-pages'), 3, { 'cleanup.policy': 'compact' });
    const global = await createTopic(uniqueName('topics-countries'), 1);
    const layout = await ensureTopics(await admin(), joinJob([input], { before, after, global }), true, logger);
    expect(layout.tablePartitions).toEqual({ [before]: 3, [after]: 3, [global]: 1 });
  });

  test('a missing table topic stops start-up, naming it (table topics are never created)', async () => {
    const input = await createTopic(uniqueName('topics-join-in'), 2);
    const missing = uniqueName('topics-no-table');
    expect(await refusal(ensureTopics(await admin(), joinJob([input], { global: missing }), true, logger))).toBe(
      `[SLUICE_KAFKA_FAILED] table topic(s) ${missing} do not exist`,
    );
  });

  test('a partitioned table joined before the keyBy must match every input topic', async () => {
    const input = await createTopic(uniqueName('topics-join-in'), 4);
    const second = await createTopic(uniqueName('topics-join-in2'), 3);
    const users = await createTopic(uniqueName('topics-users'), 4);
    const message = await refusal(
      ensureTopics(await admin(), joinJob([input, second], { before: users }), true, logger),
    );
    expect(message).toBe(
      `[SLUICE_TABLE_NOT_COPARTITIONED] partitioned table "${users}" has 4 partitions but the input topic "${second}" it is joined against has 3: a partitioned table must be co-partitioned with its stream (same partition count, same keys and partitioner); give the table topic 3 partitions or declare the table { kind: 'global' }`,
    );
  });

  test('a partitioned table joined after the keyBy must match the repartition topic, created or existing', async () => {
    const input = await createTopic(uniqueName('topics-join-in'), 3);
    const pages = await createTopic(uniqueName('topics-pages'), 2);
    const job = joinJob([input], { after: pages });
    expect(await refusal(ensureTopics(await admin(), job, true, logger))).toContain(
      `partitioned table "${pages}" has 2 partitions but the repartition topic "${job.repartitionTopic}" it is joined against has 3`,
    );
    // An existing repartition topic with the table's count (one created by hand, say): accepted.
    const other = joinJob([input], { after: pages });
    await createTopic(other.repartitionTopic!, 2);
    await expect(ensureTopics(await admin(), other, true, logger)).resolves.toMatchObject({
      tablePartitions: { [pages]: 2 },
    });
  });
});
