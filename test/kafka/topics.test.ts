/**
 * The changelog topic at start-up, on the real broker: created compacted with one partition per
 * aggregating task; an existing one with another partition count or without compaction stops start-up
 * with one error naming the topic (its state would be read by the wrong tasks, or deleted).
 */
import { describe, expect, test } from '@jest/globals';
import pino from 'pino';
import { compileJob } from '../../src/job/plan.ts';
import { ensureTopics } from '../../src/kafka/topics.ts';
import { count, defineJob, tumbling } from '../../src/index.ts';
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
