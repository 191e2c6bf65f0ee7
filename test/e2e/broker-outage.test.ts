/**
 * A broker outage under a running windowed, re-keyed job (count per page through the repartition
 * topic, tumbling 3 s windows, lateness 2 s, idle timeout 10 s), against a broker of its own that is
 * killed (SIGKILL) and kept down for 45 s, and in a second case 60 s, then started again on the same
 * ports and storage.
 *
 * Input flows all along: events stamped with the wall clock when they are made, at a steady rate,
 * to every partition, in order per partition — also while the broker is down (they wait in the
 * producer and go out when it is back). So no event is late in its own partition, and after the
 * input stops, idle advancement closes every window. Only acknowledged events are expected.
 *
 * Checked: every (page, window) result equals the count recomputed from the acknowledged events,
 * exactly once (exactly-once delivery, the default: a transaction the outage broke is aborted and
 * its batch redone from the committed offset), no event dead-lettered as late, and /readyz 503 within 6 s of the broker stopping and 200 again once
 * it is back.
 */
import { beforeAll, describe, expect, test } from '@jest/globals';
import { Kafka, logLevel, type KafkaMessage, type Producer } from 'kafkajs';
import { startLocalBroker, type LocalBroker } from '../../scripts/kafka/local-broker.ts';
import { onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { referenceWindows } from '../support/reference-windows.ts';
import { startService, type RunningService } from '../support/service.ts';

const PARTITIONS = 4;
const PAGES = Array.from({ length: 8 }, (_, i) => `/page-${i}`);
const WINDOW_MS = 3_000;
const LATENESS_MS = 2_000;
const IDLE_MS = 10_000;
/** One event per partition every TICK_MS. */
const TICK_MS = 100;
const BEFORE_MS = 8_000;
const AFTER_MS = 10_000;
/** How long /readyz may take to say 503 once the broker is gone. */
const READY_DOWN_WITHIN_MS = 6_000;
/**
 * The service's consumer group session timeout, and how long /readyz may stay 503 once the broker is
 * back: a consumer that crashed while the broker was down could not leave the group, and its new
 * member is admitted when the old one's session has expired (kafkajs has no static membership), then
 * partitions are assigned and their committed positions read.
 */
const SESSION_TIMEOUT_MS = 10_000;
const READY_UP_WITHIN_MS = SESSION_TIMEOUT_MS + 15_000;

let broker: LocalBroker;
beforeAll(async () => {
  broker = await startLocalBroker({ heap: '384m' });
  onCleanup(() => broker.stop());
}, 120_000);

function kafka(retries: number): Kafka {
  return new Kafka({
    clientId: 'sluice-outage-test',
    brokers: [broker.brokers],
    logLevel: logLevel.NOTHING,
    retry: { retries, initialRetryTime: 100, maxRetryTime: 1_000 },
  });
}

interface PageView {
  page: string;
  ts: number;
  /** Input partition and position in it: identifies the event. */
  p: number;
  n: number;
}

/**
 * Makes events at a steady rate on a timer that never waits for Kafka, and sends them in creation
 * order, one send at a time, through an idempotent producer: while the broker is down a send keeps
 * retrying and new events queue up behind it. A send that still fails is repeated with the same
 * events by the same producer — kafkajs advances its sequence numbers only on acknowledgement, so
 * the broker drops a copy that did land. An event counts once its send was acknowledged.
 */
class SteadyProducer {
  readonly acked: PageView[] = [];
  failedSends = 0;
  readonly #pending: PageView[] = [];
  readonly #next = Array.from({ length: PARTITIONS }, () => 0);
  readonly #lastTs = Array.from({ length: PARTITIONS }, () => 0);
  #timer: NodeJS.Timeout | undefined;
  #stopped = false;
  #sending: Promise<void> | undefined;
  #tick = 0;

  readonly #topic: string;
  readonly #producer: Producer;

  constructor(topic: string, producer: Producer) {
    this.#topic = topic;
    this.#producer = producer;
  }

  start(): void {
    this.#timer = setInterval(() => this.#make(), TICK_MS);
    this.#sending = this.#sendLoop();
  }

  get made(): number {
    return this.#next.reduce((a, b) => a + b, 0);
  }

  #make(): void {
    this.#tick++;
    for (let p = 0; p < PARTITIONS; p++) {
      // Wall-clock event time, never going back within a partition.
      const ts = Math.max(Date.now(), this.#lastTs[p]!);
      this.#lastTs[p] = ts;
      const n = this.#next[p]!;
      this.#next[p] = n + 1;
      this.#pending.push({ page: PAGES[(this.#tick * 3 + p * 5) % PAGES.length]!, ts, p, n });
    }
  }

  async #sendLoop(): Promise<void> {
    while (!this.#stopped || this.#pending.length > 0) {
      if (this.#pending.length === 0) {
        await new Promise((r) => setTimeout(r, 20));
        continue;
      }
      const batch = this.#pending.slice(0, 2_000);
      try {
        await this.#producer.send({
          topic: this.#topic,
          acks: -1,
          messages: batch.map((e) => ({ partition: e.p, key: e.page, value: JSON.stringify(e) })),
        });
        this.#pending.splice(0, batch.length);
        this.acked.push(...batch);
      } catch {
        this.failedSends++;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
  }

  /** Stops making events and resolves when every made event was acknowledged. */
  async stop(): Promise<void> {
    clearInterval(this.#timer);
    this.#stopped = true;
    await this.#sending;
  }
}

interface Readiness {
  at: number;
  status: number;
  reason?: string;
}

/** Polls /readyz every 250 ms (each request bounded to 1 s; no answer counts as status 0). */
function pollReadiness(service: RunningService): { samples: Readiness[]; stop(): void } {
  const samples: Readiness[] = [];
  let stopped = false;
  void (async () => {
    while (!stopped) {
      const at = Date.now();
      const sample = await fetch(`${service.url}/readyz`, { signal: AbortSignal.timeout(1_000) }).then(
        async (r) => ({
          at,
          status: r.status,
          ...(r.ok ? {} : { reason: ((await r.json()) as { reason?: string }).reason }),
        }),
        () => ({ at, status: 0 }),
      );
      samples.push(sample);
      await new Promise((r) => setTimeout(r, 250));
    }
  })();
  return { samples, stop: () => (stopped = true) };
}

interface Result {
  key: string | null;
  windowStart: number;
  windowEnd: number;
  value: number;
}

/** Follows `topics` from the beginning on the test's broker (started once the broker is back). */
async function follow(
  topics: string[],
): Promise<{ records: Array<{ topic: string; partition: number; m: KafkaMessage }> }> {
  const consumer = kafka(10).consumer({ groupId: uniqueName('outage-reader'), maxWaitTimeInMs: 100 });
  await consumer.connect();
  onCleanup(() => consumer.disconnect());
  await consumer.subscribe({ topics, fromBeginning: true });
  const records: Array<{ topic: string; partition: number; m: KafkaMessage }> = [];
  await consumer.run({
    eachBatch: async ({ batch }) => {
      for (const m of batch.messages) records.push({ topic: batch.topic, partition: batch.partition, m });
    },
  });
  return { records };
}

const windowOf = (ts: number): number => Math.floor(ts / WINDOW_MS) * WINDOW_MS;
const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`;

describe('broker outage under a windowed re-keyed job', () => {
  test.each([45_000, 60_000])(
    'the broker is down for %i ms: exact windows, nothing late, /readyz follows the broker',
    async (outageMs) => {
      const admin = kafka(10).admin();
      await admin.connect();
      const input = uniqueName('outage-in');
      const output = uniqueName('outage-out');
      const job = uniqueName('outage-job');
      await admin.createTopics({ topics: [{ topic: input, numPartitions: PARTITIONS }], waitForLeaders: true });
      await admin.disconnect();

      const service = await startService({
        job: 'test/fixtures/jobs/outage-windows.ts',
        env: {
          KAFKA_BROKERS: broker.brokers,
          TEST_JOB_NAME: job,
          TEST_INPUT: input,
          TEST_OUTPUT: output,
          TEST_WINDOW_MS: String(WINDOW_MS),
          TEST_LATENESS_MS: String(LATENESS_MS),
          TEST_IDLE_MS: String(IDLE_MS),
          TEST_BATCH_INTERVAL_MS: '250',
          SLUICE_WORKERS: '2',
          SLUICE_SESSION_TIMEOUT: `${SESSION_TIMEOUT_MS}ms`,
          SLUICE_DELIVERY: 'exactly-once',
        },
      });
      onCleanup(() => service.stop('SIGKILL'));
      await service.waitReady();
      const readiness = pollReadiness(service);
      onCleanup(async () => readiness.stop());

      // Retries enough to wait out the outage inside one send (about one attempt a second).
      const producer = kafka(1_000).producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      onCleanup(() => producer.disconnect());
      const steady = new SteadyProducer(input, producer);
      steady.start();
      await new Promise((r) => setTimeout(r, BEFORE_MS));

      const stoppedAt = Date.now();
      // Killed, not stopped gracefully: the controlled shutdown of a cluster's only broker can complete a
      // transaction without writing its markers (see test/e2e/exactly-once.test.ts), a broker-side repeat.
      await broker.stopProcess({ graceMs: 0 });
      const downAt = Date.now();
      await new Promise((r) => setTimeout(r, Math.max(0, outageMs - (downAt - stoppedAt))));
      const restartAt = Date.now();
      await broker.startProcess();
      const upAt = Date.now();

      const out = await follow([output, `${job}-dlq`]);
      await new Promise((r) => setTimeout(r, AFTER_MS));
      await steady.stop();
      const inputStoppedAt = Date.now();
      const acked = steady.acked;

      // The reference: a count per (page, window) of exactly the acknowledged events.
      const expected = new Map<string, number>();
      for (const e of acked) {
        const id = `${e.page}|${windowOf(e.ts)}`;
        expected.set(id, (expected.get(id) ?? 0) + 1);
      }
      const results = (): Result[] =>
        out.records.filter((r) => r.topic === output).map((r) => JSON.parse(r.m.value!.toString()) as Result);
      // Every window closes by idle advancement once the input stopped: idle timeout, then the last
      // window's end plus lateness, plus a few batches of slack. Not reaching it is not thrown here:
      // the comparison below says which windows are missing.
      await waitFor(
        'a result for every window of the acknowledged input',
        () => {
          const ids = new Set(results().map((r) => `${r.key}|${r.windowStart}`));
          return [...expected.keys()].every((id) => ids.has(id)) ? true : undefined;
        },
        IDLE_MS + WINDOW_MS + LATENESS_MS + 20_000,
      ).catch(() => undefined);
      await new Promise((r) => setTimeout(r, 2_000)); // repeats arriving late are seen too
      readiness.stop();

      // What Kafka holds is what was acknowledged, once each (checks the producer side of the test).
      const inputRead = await follow([input]);
      await waitFor('the whole input read back', () => (inputRead.records.length >= acked.length ? true : undefined));
      await new Promise((r) => setTimeout(r, 1_000));
      const inputIds = inputRead.records.map((r) => {
        const e = JSON.parse(r.m.value!.toString()) as PageView;
        return `${e.p}:${e.n}`;
      });
      expect(new Set(inputIds).size).toBe(inputIds.length);
      expect(new Set(inputIds)).toEqual(new Set(acked.map((e) => `${e.p}:${e.n}`)));
      // The premise: read per partition in offset order, as the service reads it, no event is late
      // in its own partition (the plain reference, with the job's window and lateness).
      const inOrder = [...inputRead.records].sort(
        (a, b) => a.partition - b.partition || Number(a.m.offset) - Number(b.m.offset),
      );
      const ownPartition = referenceWindows(
        inOrder.map((r) => {
          const e = JSON.parse(r.m.value!.toString()) as PageView;
          return { partition: r.partition, key: e.page, eventTime: e.ts, value: e };
        }),
        { kind: 'tumbling', sizeMs: WINDOW_MS, latenessMs: LATENESS_MS, aggregate: 'count' },
      );
      expect(ownPartition.late).toEqual([]);

      // The comparison.
      const got = new Map<string, number[]>();
      for (const r of results()) {
        const id = `${r.key}|${r.windowStart}`;
        got.set(id, [...(got.get(id) ?? []), r.value]);
      }
      const missing = [...expected.keys()].filter((id) => !got.has(id));
      const wrong = [...got]
        .filter(([id, values]) => values.some((v) => v !== expected.get(id)))
        .map(([id, values]) => ({
          id,
          fromStop: seconds(Number(id.split('|')[1]) - stoppedAt),
          expected: expected.get(id) ?? 0,
          got: values,
        }));
      const letters = out.records.filter((r) => r.topic === `${job}-dlq`);
      const codeOf = (r: { m: KafkaMessage }): string => r.m.headers?.['sluice-error-code']?.toString() ?? '?';
      const late = letters.filter((r) => codeOf(r) === 'SLUICE_LATE_RECORD');
      const otherLetters = letters.filter((r) => codeOf(r) !== 'SLUICE_LATE_RECORD');

      // /readyz around the outage.
      const firstDown = readiness.samples.find((s) => s.at >= stoppedAt && s.status !== 200);
      const upDuring = readiness.samples.filter(
        (s) => s.at >= stoppedAt + READY_DOWN_WITHIN_MS && s.at < restartAt && s.status === 200,
      );
      const backUp = readiness.samples.find((s) => s.at >= upAt && s.status === 200);

      const logLines = service
        .output()
        .split('\n')
        .filter((l) => /"level":(40|50|60)/.test(l));
      const messages = new Map<string, number>();
      for (const l of logLines) {
        const msg = /"msg":"([^"]*)"/.exec(l)?.[1] ?? l.slice(0, 120);
        messages.set(msg, (messages.get(msg) ?? 0) + 1);
      }
      const when = (t: number): string => (t < stoppedAt ? 'before' : t < upAt ? 'during' : 'after');
      const wrongWhen = new Map<string, number>();
      for (const w of wrong) {
        const at = when(Number(w.id.split('|')[1]));
        wrongWhen.set(at, (wrongWhen.get(at) ?? 0) + 1);
      }
      // /readyz changes, relative to the stop: `+12.3 s 503 (reason)`.
      const transitions: string[] = [];
      let last: Readiness | undefined;
      for (const sample of readiness.samples) {
        if (last && last.status === sample.status && last.reason === sample.reason) continue;
        transitions.push(
          `${sample.at >= stoppedAt ? '+' : ''}${seconds(sample.at - stoppedAt)} ${sample.status}${sample.reason ? ` (${sample.reason})` : ''}`,
        );
        last = sample;
      }
      const lateWindows = new Map<string, number>();
      // Late letters per (repartition partition ← input partition): which upstream lost out where.
      const lateRoutes = new Map<string, number>();
      for (const r of late) {
        const e = JSON.parse(r.m.value!.toString()) as PageView;
        const at = when(e.ts);
        lateWindows.set(at, (lateWindows.get(at) ?? 0) + 1);
        const route = `${r.m.headers?.['sluice-source-partition']?.toString() ?? '?'}←${e.p}`;
        lateRoutes.set(route, (lateRoutes.get(route) ?? 0) + 1);
      }
      console.log(
        [
          `outage ${seconds(outageMs)} (broker stopped in ${seconds(downAt - stoppedAt)}, back ${seconds(upAt - restartAt)} after start)`,
          `events made ${steady.made}, acknowledged ${acked.length}, failed sends ${steady.failedSends}; input stopped ${seconds(inputStoppedAt - upAt)} after the broker was back`,
          `windows expected ${expected.size}, with a result ${expected.size - missing.length}, missing ${missing.length}, wrong ${wrong.length} (starting before the outage ${wrongWhen.get('before') ?? 0}, during ${wrongWhen.get('during') ?? 0}, after ${wrongWhen.get('after') ?? 0}); results ${results().length}; failed batches redone ${messages.get('batch failed; rewinding its partitions to their committed offsets') ?? 0}`,
          `dead letters: late ${late.length} (event time before the outage ${lateWindows.get('before') ?? 0}, during ${lateWindows.get('during') ?? 0}, after ${lateWindows.get('after') ?? 0}), other ${otherLetters.length} ${JSON.stringify([...new Set(otherLetters.map(codeOf))])}`,
          `late letters per repartition partition ← input partition: ${JSON.stringify([...lateRoutes].sort())}`,
          `/readyz: first non-200 ${firstDown ? `${seconds(firstDown.at - stoppedAt)} after the stop (${firstDown.status})` : 'never'}; 200 while down after ${seconds(READY_DOWN_WITHIN_MS)}: ${upDuring.length} of ${readiness.samples.filter((s) => s.at >= stoppedAt + READY_DOWN_WITHIN_MS && s.at < restartAt).length} polls; 200 again ${backUp ? `${seconds(backUp.at - upAt)} after the broker was back` : 'never'}`,
          `/readyz changes (time from the stop; the broker was back at +${seconds(upAt - stoppedAt)}): ${transitions.join(', ')}`,
          `wrong (first 8): ${JSON.stringify(wrong.slice(0, 8))}`,
          `missing (first 8): ${JSON.stringify(missing.slice(0, 8).map((id) => [id, expected.get(id)]))}`,
          `service warnings/errors: ${JSON.stringify([...messages])}`,
        ].join('\n  '),
      );

      // One comparison, so that a failure shows every part that is off.
      // Exactly-once (the default): a transaction that met the outage was aborted and its batch redone.
      const repeated = [...got.values()].filter((values) => values.length > 1).length;
      expect({
        missingWindows: missing.length,
        wrongWindows: wrong.length,
        repeatedWindows: repeated,
        lateLetters: late.length,
        otherLetters: otherLetters.length,
        firstNotReadyStatus: firstDown?.status ?? null,
        notReadyWithin6s: firstDown !== undefined && firstDown.at - stoppedAt <= READY_DOWN_WITHIN_MS,
        readyPollsWhileDown: upDuring.length,
        readyAgainInTime: backUp !== undefined && backUp.at - upAt <= READY_UP_WITHIN_MS,
      }).toEqual({
        missingWindows: 0,
        wrongWindows: 0,
        repeatedWindows: 0,
        lateLetters: 0,
        otherLetters: 0,
        firstNotReadyStatus: 503,
        notReadyWithin6s: true,
        readyPollsWhileDown: 0,
        readyAgainInTime: true,
      });
      expect((await service.stop('SIGTERM')).code).toBe(0);
    },
    240_000,
  );
});
