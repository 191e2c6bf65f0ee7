/**
 * How long a replica that dies in the middle of a transaction holds read_committed readers back, on a
 * broker of its own with Kafka's default abort check (`transaction.abort.timed.out.transaction.cleanup.interval.ms`
 * 10 s). The stateless job (exactly-once, SLUICE_TRANSACTION_TIMEOUT 10 s) works through a backlog;
 * it is SIGKILLed while a batch's transactions are open, and a read_committed reader measures, per output
 * partition, when it gets past the offsets written up to the kill (the open transactions' records, then
 * their abort markers). Two cases:
 *
 * - a successor takes over (a second replica): it fences the dead one's transactional ids as soon as
 *   the partitions are assigned to it — the readers wait about the session timeout plus a rebalance;
 * - nobody takes over: the broker aborts the transactions once they time out — the readers wait the
 *   transaction timeout plus up to one abort check.
 *
 * Both cases also check that the output, read committed, holds each event once at most (none of the dead
 * replica's open transactions shows), and in the first case that it holds every event exactly once.
 */
import { afterAll, beforeAll, describe, expect, test } from '@jest/globals';
import { Kafka, logLevel } from 'kafkajs';
import { startLocalBroker, type LocalBroker } from '../../scripts/kafka/local-broker.ts';
import { onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { metricValue, startService, type RunningService } from '../support/service.ts';

const PARTITIONS = 4;
const EVENTS = 120_000;
const SESSION_MS = 2_000;
const TRANSACTION_TIMEOUT_MS = 10_000;
/** Kafka's default abort check interval (not lowered on this broker). */
const ABORT_CHECK_MS = 10_000;
/** Readers still short of the end this long after the stop: a transaction is open (less than the session). */
const OPEN_CHECK_MS = 1_500;

let broker: LocalBroker;
let kafka: Kafka;
beforeAll(async () => {
  broker = await startLocalBroker({ heap: '512m', properties: { 'group.min.session.timeout.ms': '1000' } });
  kafka = new Kafka({ clientId: 'dead-txn-test', brokers: [broker.brokers], logLevel: logLevel.NOTHING });
}, 120_000);
afterAll(async () => broker?.stop());

async function setUp(): Promise<{ input: string; output: string; job: string }> {
  const input = uniqueName('dead-in');
  const output = uniqueName('dead-out');
  const job = uniqueName('dead-map');
  const admin = kafka.admin();
  await admin.connect();
  await admin.createTopics({
    topics: [
      { topic: input, numPartitions: PARTITIONS },
      { topic: output, numPartitions: PARTITIONS },
      { topic: `${job}-dlq`, numPartitions: 1 },
    ],
    waitForLeaders: true,
  });
  await admin.disconnect();
  const producer = kafka.producer({ idempotent: true });
  await producer.connect();
  const perPartition = EVENTS / PARTITIONS;
  for (let from = 0; from < perPartition; from += 5_000) {
    await producer.sendBatch({
      acks: -1,
      topicMessages: [
        {
          topic: input,
          messages: Array.from({ length: PARTITIONS * 5_000 }, (_, i) => {
            const p = i % PARTITIONS;
            const n = from + Math.floor(i / PARTITIONS);
            return { partition: p, key: `k-${p}-${n}`, value: JSON.stringify({ p, n, v: n % 1000 }) };
          }),
        },
      ],
    });
  }
  await producer.disconnect();
  return { input, output, job };
}

/** A reader of the output (read_committed or not) that records each partition's position and the ids. */
async function reader(output: string, readUncommitted: boolean) {
  const consumer = kafka.consumer({ groupId: uniqueName('dead-reader'), maxWaitTimeInMs: 20, readUncommitted });
  await consumer.connect();
  await consumer.subscribe({ topics: [output], fromBeginning: true });
  const positions = new Map<number, number>();
  const ids: string[] = [];
  // Past records kafkajs filtered out too (markers, aborted records): END_BATCH_PROCESS says where a fetch ended.
  consumer.on(consumer.events.END_BATCH_PROCESS, ({ payload }) => {
    positions.set(payload.partition, Math.max(positions.get(payload.partition) ?? 0, Number(payload.lastOffset) + 1));
  });
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) {
        const o = JSON.parse(m.value!.toString()) as { p: number; n: number };
        ids.push(`${o.p}:${o.n}`);
      }
    },
  });
  onCleanup(() => consumer.disconnect());
  return { positions, ids, stop: () => consumer.disconnect() };
}

type Reader = Awaited<ReturnType<typeof reader>>;
const at = (r: Reader): number[] => Array.from({ length: PARTITIONS }, (_, p) => r.positions.get(p) ?? 0);

/**
 * Stops `service` (SIGSTOP) at random moments of its processing until it is caught with a transaction
 * open — read_committed readers still short, OPEN_CHECK_MS later, of the end a reader of uncommitted
 * records sees (a transaction whose commit had been sent completes without its producer) — and then
 * kills it (SIGKILL). Between tries it is let go on (SIGCONT) before its session expires. Returns
 * when it stopped (from then on it wrote nothing), the ends, and the tries it took.
 */
async function killMidTransaction(
  service: RunningService,
  committed: Reader,
  uncommitted: Reader,
): Promise<{ at: number; ends: number[]; tries: number }> {
  await waitFor('a batch committed', async () =>
    metricValue(await service.metrics(), 'sluice_records_out_total') > 0 ? true : undefined,
  );
  for (let tries = 1; tries <= 30; tries++) {
    await new Promise((r) => setTimeout(r, Math.random() * 300));
    service.process.kill('SIGSTOP');
    const stoppedAt = Date.now();
    await new Promise((r) => setTimeout(r, 500)); // the uncommitted reader fetches what was written
    const ends = at(uncommitted);
    await new Promise((r) => setTimeout(r, Math.max(0, stoppedAt + OPEN_CHECK_MS - Date.now())));
    const seen = at(committed);
    if (ends.some((end, p) => end > seen[p]!)) {
      service.process.kill('SIGKILL');
      await service.exited;
      return { at: stoppedAt, ends, tries };
    }
    service.process.kill('SIGCONT');
  }
  throw new Error('no transaction was open in 30 tries');
}

/** More input while the test runs, so that the replicas keep committing transactions: 400 events every 50 ms. */
function keepProducing(input: string): { stop(): Promise<number> } {
  const producer = kafka.producer({ idempotent: true });
  let stopped = false;
  let n = EVENTS / PARTITIONS;
  const running = (async () => {
    await producer.connect();
    while (!stopped) {
      const from = n;
      n += 100;
      await producer.send({
        topic: input,
        acks: -1,
        messages: Array.from({ length: PARTITIONS * 100 }, (_, i) => {
          const p = i % PARTITIONS;
          const k = from + Math.floor(i / PARTITIONS);
          return { partition: p, key: `k-${p}-${k}`, value: JSON.stringify({ p, n: k, v: k % 1000 }) };
        }),
      });
      await new Promise((r) => setTimeout(r, 50));
    }
    await producer.disconnect();
  })();
  return {
    async stop() {
      stopped = true;
      await running;
      return n * PARTITIONS; // every event made, backlog included
    },
  };
}

const env = (input: string, output: string, job: string): Record<string, string> => ({
  KAFKA_BROKERS: broker.brokers,
  TEST_JOB_NAME: job,
  TEST_INPUT: input,
  TEST_OUTPUT: output,
  TEST_BATCH_INTERVAL_MS: '100',
  SLUICE_SESSION_TIMEOUT: `${SESSION_MS}ms`,
  SLUICE_TRANSACTION_TIMEOUT: `${TRANSACTION_TIMEOUT_MS}ms`,
  SLUICE_MAX_BATCH_RECORDS: '4000',
  SLUICE_WORKERS: '1',
  SLUICE_LOG_LEVEL: 'warn',
  SLUICE_DELIVERY: 'exactly-once',
});

describe('a replica that dies mid-transaction', () => {
  test.each(['a successor fences it', 'nobody takes over'] as const)(
    '%s: how long read_committed readers wait',
    async (scenario) => {
      const { input, output, job } = await setUp();
      const a = await startService({ job: 'test/fixtures/jobs/exact-map.ts', env: env(input, output, job) });
      onCleanup(() => a.stop('SIGKILL'));
      await a.waitReady();
      const b =
        scenario === 'a successor fences it'
          ? await startService({ job: 'test/fixtures/jobs/exact-map.ts', env: env(input, output, job) })
          : undefined;
      if (b) {
        onCleanup(() => b.stop('SIGKILL'));
        await b.waitReady();
      }
      const read = await reader(output, false);
      const raw = await reader(output, true);
      const more = keepProducing(input);
      const killed = await killMidTransaction(a, read, raw);
      // Blocked until the reader is past everything written up to the kill, in every partition.
      await waitFor(
        'the readers past the dead transactions',
        () => (killed.ends.every((end, p) => (read.positions.get(p) ?? 0) >= end) ? true : undefined),
        60_000,
      );
      const blockedMs = Date.now() - killed.at;
      const events = await more.stop();
      if (b) {
        await waitFor('every event', () => (new Set(read.ids).size >= events ? true : undefined), 120_000);
        await new Promise((r) => setTimeout(r, 1_000));
      }
      const distinct = new Set(read.ids);
      console.log(
        `${scenario}: read_committed readers blocked ${(blockedMs / 1000).toFixed(1)} s after the replica stopped ` +
          `(session ${SESSION_MS / 1000} s, transaction timeout ${TRANSACTION_TIMEOUT_MS / 1000} s, abort check ${ABORT_CHECK_MS / 1000} s); ` +
          `${read.ids.length} results read, ${distinct.size} distinct; caught with a transaction open at try ${killed.tries}`,
      );
      expect(read.ids.length).toBe(distinct.size); // nothing of the dead replica's open transactions shows
      if (b) {
        expect(distinct.size).toBe(events);
        // Fenced at assignment: well before the transaction would time out.
        expect(blockedMs).toBeLessThan(TRANSACTION_TIMEOUT_MS);
        expect((await b.stop('SIGTERM')).code).toBe(0);
      } else {
        // Aborted by the broker: after the timeout, within one abort check (and a second for the reader).
        expect(blockedMs).toBeGreaterThanOrEqual(TRANSACTION_TIMEOUT_MS - 3_000);
        expect(blockedMs).toBeLessThanOrEqual(TRANSACTION_TIMEOUT_MS + ABORT_CHECK_MS + 2_000);
      }
      await read.stop();
      await raw.stop();
    },
    180_000,
  );
});
