/**
 * `npm run bench:restore`: how fast a replica restores window state from the changelog. The changelog
 * of the page-views job is filled with N window entries (in the service's own format: keys, accumulators
 * and a progress record per partition, as if a run had left them) over P partitions, then the built
 * service starts on it; /readyz turns 200 once every task read its changelog partition to the end.
 * Prints entries, the tasks' restore seconds (sluice_state_restore_seconds), entries/s and the time from
 * start to ready, and checks that every entry was restored (sluice_state_restored_records_total).
 *
 * Options: --entries N (1000000) --partitions P (8) --workers W
 */
// First, before kafkajs loads (as in the service).
import '../src/kafka/kafkajs-fixes.ts';
import { resolve, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { type Message } from 'kafkajs';
import { CHANGELOG_CONFIG } from '../src/kafka/topics.ts';
import { encodeAccumulator, encodeProgress, PROGRESS_KEY, windowKey } from '../src/wire/changelog.ts';
import { createTopics } from './lib/data.ts';
import { buildAndConnect, log } from './lib/setup.ts';
import { startSluice } from './lib/systems.ts';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const { values } = parseArgs({
  options: {
    entries: { type: 'string', default: '1000000' },
    partitions: { type: 'string', default: '8' },
    workers: { type: 'string' },
  },
});
const entries = Number(values.entries);
const partitions = Number(values.partitions);

/** Sum of a metric's samples in a Prometheus text page. */
function metric(text: string, name: string): number {
  let total = 0;
  for (const line of text.split('\n')) {
    const match = /^([a-zA-Z_:][\w:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
    if (match?.[1] === name) total += Number(match[3]);
  }
  return total;
}

async function main(): Promise<void> {
  const { broker, brokers, kafka } = await buildAndConnect(root, 'bench-restore');
  const admin = kafka.admin();
  await admin.connect();
  const run = Date.now().toString(36);
  const job = `bench-restore-${run}`;
  const input = `${job}-in`;
  const changelog = `${job}-changelog`;
  try {
    await createTopics(admin, [
      { topic: input, partitions },
      { topic: `${job}-out`, partitions },
    ]);
    await admin.createTopics({
      waitForLeaders: true,
      topics: [{ topic: changelog, numPartitions: partitions, replicationFactor: 1, configEntries: CHANGELOG_CONFIG }],
    });
    // Open 10 s windows of one hour of event time, one entry per (page, window): far ahead of the
    // stream time in the progress record, so that none closes when the service starts.
    const streamTime = Date.UTC(2026, 0, 1);
    const perPartition = Math.ceil(entries / partitions);
    const windows = 360;
    log(`producing ${entries} changelog entries to ${changelog} (${partitions} partitions)`);
    const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    const filled = performance.now();
    for (let p = 0; p < partitions; p++) {
      const count = Math.min(perPartition, entries - p * perPartition);
      for (let from = 0; from < count; from += 20_000) {
        const messages: Message[] = [];
        for (let i = from; i < Math.min(count, from + 20_000); i++) {
          const start = streamTime + 60_000 + (i % windows) * 10_000;
          const key = windowKey(start, `/page-${p}-${Math.floor(i / windows)}`);
          messages.push({ partition: p, key: Buffer.from(key), value: Buffer.from(encodeAccumulator(i % 97)) });
        }
        await producer.send({ topic: changelog, messages, acks: -1 });
      }
      const progress = encodeProgress({
        task: `${job}-repartition:${p}`,
        end: 0,
        streamTime,
        dedupe: new Map(),
        sources: new Map(),
      });
      await producer.send({
        topic: changelog,
        messages: [{ partition: p, key: Buffer.from(PROGRESS_KEY), value: Buffer.from(progress) }],
        acks: -1,
      });
    }
    await producer.disconnect();
    log(`filled in ${((performance.now() - filled) / 1000).toFixed(1)} s; starting the service`);

    const started = Date.now();
    const service = await startSluice('bench/jobs/page-views.ts', {
      KAFKA_BROKERS: brokers,
      BENCH_JOB_NAME: job,
      BENCH_INPUT: input,
      BENCH_OUTPUT: `${job}-out`,
      BENCH_IDLE_MS: '0',
      ...(values.workers ? { SLUICE_WORKERS: values.workers } : {}),
    });
    let restoring = 0;
    for (;;) {
      const res = await fetch(`${service.url}/readyz`).catch(() => undefined);
      if (res?.ok) break;
      const body = res ? ((await res.json()) as { reason?: string }) : {};
      if (body.reason?.startsWith('restoring')) restoring++;
      await new Promise((r) => setTimeout(r, 100));
    }
    const readyMs = Date.now() - started;
    const text = await (await fetch(`${service.url}/metrics`)).text();
    const restored = metric(text, 'sluice_state_restored_records_total');
    const seconds = metric(text, 'sluice_state_restore_seconds_sum');
    const tasks = metric(text, 'sluice_state_restore_seconds_count');
    const rss = await service.stop();
    // Tasks restore in parallel: entries over the wall time of the slowest restore's span is the rate
    // a replica sees; the sum over tasks is the cost.
    const expected = entries + partitions; // + one progress record per partition
    console.log(
      [
        `changelog entries ${entries} over ${partitions} partitions; restored records ${restored} of ${expected} (${restored === expected ? 'all' : 'MISSING'})`,
        `restore seconds summed over ${tasks} tasks ${seconds.toFixed(2)}; entries/s per task ${Math.round(entries / seconds)}`,
        `start → ready ${(readyMs / 1000).toFixed(2)} s (/readyz said restoring in ${restoring} polls); entries/s start → ready ${Math.round(entries / (readyMs / 1000))}`,
        `peak RSS ${Math.round(rss / 1e6)} MB`,
      ].join('\n'),
    );
  } finally {
    await admin.disconnect();
    await broker?.stop();
  }
}

await main();
