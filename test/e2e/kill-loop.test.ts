/**
 * Delivery under SIGKILL, on a broker of its own: two jobs read the same 8-partition input of 300 000
 * events — a re-keyed windowed count per page (through the repartition topic, tumbling 1 s windows,
 * state in the changelog) and a stateless map — and each is killed with SIGKILL at least 10 times at
 * random moments (while starting or restoring, and while processing), then restarted. Half the input
 * is a backlog before the first start; the other half is produced while the kills go on.
 *
 * A read_committed verifier reads the output and dead-letter topics and compares them with a
 * recomputation of the input. Exactly-once: every expected result appears exactly once with its
 * exact value, every malformed event is dead-lettered exactly once, nothing else appears.
 * At-least-once: nothing is missing, every value is exact, and the repeats are counted.
 *
 * Events are in event-time order in each partition and every partition keeps receiving events, so
 * none is late (the aggregating stage's stream time is the smallest of its upstream partitions'); once
 * the input stops, idle advancement closes the last windows.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { type Kafka, type KafkaMessage } from 'kafkajs';
import { type LocalBroker } from '../../scripts/kafka/local-broker.ts';
import { startDeliveryBroker } from '../support/delivery-broker.ts';
import { onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { startService, type RunningService } from '../support/service.ts';

const PARTITIONS = 8;
const TOTAL = 300_000;
const PER_PARTITION = TOTAL / PARTITIONS;
const BACKLOG = TOTAL / 2;
const KILLS = 10;
const PAGES = 20;
const WINDOW_MS = 1_000;
/** Event time step within a partition: 37 500 events span 375 s, 375 windows. */
const STEP_MS = 10;
const BASE_TS = Date.UTC(2026, 0, 1);
/** Every 997th event of a partition is not JSON: a dead letter. */
const MALFORMED_EVERY = 997;
const SESSION_TIMEOUT = '2s';

let broker: LocalBroker;
let kafka: Kafka;
beforeAll(async () => {
  // A restarted replica joins once the killed one's session has expired: short sessions.
  ({ broker, kafka } = await startDeliveryBroker('kill-loop-test'));
}, 120_000);
afterAll(async () => broker?.stop());

interface Event {
  p: number;
  n: number;
  v: number;
  page: string;
  ts: number;
}

const eventOf = (p: number, n: number): Event => ({
  p,
  n,
  v: (p * 7919 + n * 31) % 1000,
  page: `/page-${(p * 13 + n) % PAGES}`,
  ts: BASE_TS + n * STEP_MS,
});
const malformed = (n: number): boolean => n % MALFORMED_EVERY === MALFORMED_EVERY - 1;

/** Produces events `from` ≤ n < `to` of every partition, in order per partition. */
async function produce(topic: string, from: number, to: number): Promise<void> {
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    const chunk = 2_000;
    for (let start = from; start < to; start += chunk) {
      const end = Math.min(to, start + chunk);
      const topicMessages = Array.from({ length: PARTITIONS }, (_, p) => ({
        topic,
        messages: Array.from({ length: end - start }, (_, i) => {
          const n = start + i;
          const e = eventOf(p, n);
          return { partition: p, key: `k-${p}-${n}`, value: malformed(n) ? `not json {${n}` : JSON.stringify(e) };
        }),
      }));
      await producer.sendBatch({ topicMessages, acks: -1 });
    }
  } finally {
    await producer.disconnect();
  }
}

interface Seen {
  topic: string;
  m: KafkaMessage;
}

async function follow(topics: string[]): Promise<{ records: Seen[]; stop(): Promise<void> }> {
  const consumer = kafka.consumer({ groupId: uniqueName('kill-verifier'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  await consumer.subscribe({ topics, fromBeginning: true });
  const records: Seen[] = [];
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) records.push({ topic: batch.topic, m });
    },
  });
  let stopped: Promise<void> | undefined;
  const stop = (): Promise<void> => (stopped ??= consumer.disconnect());
  onCleanup(stop);
  return { records, stop };
}

/** The expected results of both jobs, recomputed from the events. */
function expectations(): { windows: Map<string, number>; outputs: number; malformed: Set<string> } {
  const windows = new Map<string, number>();
  const bad = new Set<string>();
  let outputs = 0;
  for (let p = 0; p < PARTITIONS; p++) {
    for (let n = 0; n < PER_PARTITION; n++) {
      if (malformed(n)) {
        bad.add(`${p}:${n}`);
        continue;
      }
      const e = eventOf(p, n);
      const id = `${e.page}|${Math.floor(e.ts / WINDOW_MS) * WINDOW_MS}`;
      windows.set(id, (windows.get(id) ?? 0) + 1);
      outputs++;
    }
  }
  return { windows, outputs, malformed: bad };
}

const random = (lo: number, hi: number): number => lo + Math.random() * (hi - lo);
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/**
 * Starts the job, kills it `KILLS` times — odd kills a random moment after the process started
 * (start-up, group join, restore), even kills a random moment after it was ready (processing) —
 * and leaves the last one running. Returns it and the kill log.
 */
async function killLoop(
  job: string,
  env: Record<string, string>,
): Promise<{ service: RunningService; kills: string[]; logs: string[] }> {
  const kills: string[] = [];
  const logs: string[] = [];
  for (let i = 0; ; i++) {
    const service = await startService({ job, env });
    onCleanup(() => service.stop('SIGKILL'));
    if (i === KILLS) return { service, kills, logs };
    const started = Date.now();
    if (i % 2 === 0) {
      await sleep(random(300, 3_000));
    } else {
      await service.waitReady(90_000);
      await sleep(random(0, 2_500));
    }
    service.process.kill('SIGKILL');
    await service.exited;
    logs.push(service.output());
    kills.push(`${((Date.now() - started) / 1000).toFixed(1)}s`);
  }
}

describe.each(['exactly-once', 'at-least-once'] as const)('kill loop, %s', (delivery) => {
  test(`${KILLS} SIGKILLs of a re-keyed windowed job and of a stateless job over ${TOTAL} events`, async () => {
    const input = uniqueName('kill-in');
    const windowsJob = uniqueName('kill-win');
    const mapJob = uniqueName('kill-map');
    const windowsOut = uniqueName('kill-win-out');
    const mapOut = uniqueName('kill-map-out');
    // The verifier subscribes before the jobs start: their output and dead-letter topics exist first.
    const admin = kafka.admin();
    await admin.connect();
    await admin.createTopics({
      topics: [
        ...[input, windowsOut, mapOut].map((topic) => ({ topic, numPartitions: PARTITIONS })),
        ...[`${windowsJob}-dlq`, `${mapJob}-dlq`].map((topic) => ({ topic, numPartitions: 1 })),
      ],
      waitForLeaders: true,
    });
    await admin.disconnect();
    const common = {
      KAFKA_BROKERS: broker.brokers,
      TEST_INPUT: input,
      TEST_BATCH_INTERVAL_MS: '200',
      SLUICE_DELIVERY: delivery,
      SLUICE_SESSION_TIMEOUT: SESSION_TIMEOUT,
      SLUICE_WORKERS: '2',
      SLUICE_MAX_BATCH_RECORDS: '20000',
      SLUICE_LOG_LEVEL: 'warn',
    };
    const verifier = await follow([windowsOut, `${windowsJob}-dlq`, mapOut, `${mapJob}-dlq`]);

    await produce(input, 0, BACKLOG / PARTITIONS);
    const live = (async () => {
      // The second half while the kills go on: a slice every few hundred milliseconds.
      const slice = 1_250;
      for (let n = BACKLOG / PARTITIONS; n < PER_PARTITION; n += slice) {
        await produce(input, n, Math.min(PER_PARTITION, n + slice));
        await sleep(400);
      }
    })();
    const [windows, map] = await Promise.all([
      killLoop('test/fixtures/jobs/outage-windows.ts', {
        ...common,
        TEST_JOB_NAME: windowsJob,
        TEST_OUTPUT: windowsOut,
        TEST_WINDOW_MS: String(WINDOW_MS),
        TEST_LATENESS_MS: '0',
        TEST_IDLE_MS: '3000',
      }),
      killLoop('test/fixtures/jobs/exact-map.ts', { ...common, TEST_JOB_NAME: mapJob, TEST_OUTPUT: mapOut }),
    ]);
    await live;

    const expected = expectations();
    const of = (topic: string): Seen[] => verifier.records.filter((r) => r.topic === topic);
    const windowResults = (): Array<{ id: string; value: number }> =>
      of(windowsOut).map(({ m }) => {
        const o = JSON.parse(m.value!.toString()) as { key: string; windowStart: number; value: number };
        return { id: `${o.key}|${o.windowStart}`, value: o.value };
      });
    const mapResults = (): Array<{ id: string; double: number }> =>
      of(mapOut).map(({ m }) => {
        const o = JSON.parse(m.value!.toString()) as { p: number; n: number; double: number };
        return { id: `${o.p}:${o.n}`, double: o.double };
      });
    await waitFor(
      'every result',
      () => {
        const ids = new Set(windowResults().map((r) => r.id));
        const mapIds = new Set(mapResults().map((r) => r.id));
        return ids.size >= expected.windows.size && mapIds.size >= expected.outputs ? true : undefined;
      },
      180_000,
    ).catch((error: unknown) => {
      const ids = new Set(windowResults().map((r) => r.id));
      const mapIds = new Set(mapResults().map((r) => r.id));
      console.log(
        `windows ${ids.size}/${expected.windows.size}, map ${mapIds.size}/${expected.outputs}\n` +
          windows.service.output().slice(-3000) +
          map.service.output().slice(-3000),
      );
      throw error;
    });
    await sleep(3_000); // anything written twice shows up too

    // The windowed job: every (page, window) with its exact count.
    const results = windowResults();
    const wrong = results.filter((r) => expected.windows.get(r.id) !== r.value);
    expect(wrong).toEqual([]);
    expect(new Set(results.map((r) => r.id))).toEqual(new Set(expected.windows.keys()));
    const windowRepeats = results.length - expected.windows.size;
    // The stateless job: every valid event, doubled.
    const mapped = mapResults();
    const mapWrong = mapped.filter((r) => {
      const [p, n] = r.id.split(':').map(Number) as [number, number];
      return malformed(n) || r.double !== eventOf(p, n).v * 2;
    });
    expect(mapWrong).toEqual([]);
    expect(new Set(mapped.map((r) => r.id)).size).toBe(expected.outputs);
    const mapRepeats = mapped.length - expected.outputs;
    if (mapRepeats > 0) {
      // Where the repeats are: per partition, the range of event numbers seen more than once.
      const seenOnce = new Set<string>();
      const ranges = new Map<number, [number, number, number]>();
      for (const r of mapped) {
        if (!seenOnce.has(r.id)) {
          seenOnce.add(r.id);
          continue;
        }
        const [p, n] = r.id.split(':').map(Number) as [number, number];
        const range = ranges.get(p) ?? [n, n, 0];
        ranges.set(p, [Math.min(range[0], n), Math.max(range[1], n), range[2] + 1]);
      }
      console.log(`repeats per partition [first, last, count]: ${JSON.stringify([...ranges])}`);
      const interesting = /"level":(4|5)0/;
      for (const [i, log] of [...map.logs, map.service.output()].entries()) {
        const lines = log.split('\n').filter((l) => interesting.test(l) && !l.includes('"component":"kafkajs"'));
        console.log(`run ${i}:\n${lines.slice(0, 40).join('\n')}`);
      }
    }
    // Dead letters: every malformed event (through each job), nothing late, nothing else.
    const letters = (topic: string): string[] =>
      of(topic).map(({ m }) => {
        const h = (name: string): string => m.headers?.[name]?.toString() ?? '';
        expect(h('sluice-error-code')).toBe('SLUICE_DESERIALIZE_FAILED');
        const n = Number((m.key?.toString() ?? '').split('-')[2]); // the key is k-<p>-<n>
        return `${h('sluice-source-partition')}:${n}`;
      });
    const windowLetters = letters(`${windowsJob}-dlq`);
    const mapLetters = letters(`${mapJob}-dlq`);
    expect(new Set(windowLetters)).toEqual(expected.malformed);
    expect(new Set(mapLetters)).toEqual(expected.malformed);
    const letterRepeats = windowLetters.length + mapLetters.length - 2 * expected.malformed.size;

    const metrics = await windows.service.metrics();
    console.log(
      `${delivery}: windowed job killed after ${windows.kills.join(' ')}; stateless job after ${map.kills.join(' ')}; ` +
        `${results.length} window results for ${expected.windows.size} windows (${windowRepeats} repeats), ` +
        `${mapped.length} mapped for ${expected.outputs} events (${mapRepeats} repeats), ` +
        `${letterRepeats} repeated dead letters; last run restored ` +
        `${metrics.match(/^sluice_state_restored_records_total\{[^}]*\} \S+/gm)?.length ?? 0} partitions`,
    );
    if (delivery === 'exactly-once') {
      expect(windowRepeats).toBe(0);
      expect(mapRepeats).toBe(0);
      expect(letterRepeats).toBe(0);
    }
    expect(windows.kills).toHaveLength(KILLS);
    expect(map.kills).toHaveLength(KILLS);
    await verifier.stop();
    expect((await windows.service.stop('SIGTERM')).code).toBe(0);
    expect((await map.service.stop('SIGTERM')).code).toBe(0);
  }, 420_000);
});
