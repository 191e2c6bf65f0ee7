/**
 * The peers on the benchmark's backlog: each JVM peer (bench/peers/) runs the windowed or the stateless
 * job on the input topic, its output is read back and checked like Sluice's, and its row says so.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Kafka } from 'kafkajs';
import { allWindowsIn, checkWindows, createTopics, type BenchData } from './data.ts';
import { log } from './setup.ts';
import { readOutputs } from './systems.ts';
import { type PeerRun } from '../peers/peers.ts';

export type PeerKind = 'kafka-streams' | 'spark' | 'flink';

/** One line of the throughput table. */
export interface Row {
  system: string;
  check: string;
  recordsPerSec: number;
  mbPerSec: number;
  ratioA: number | null;
  ratioB: number | null;
  peakRssMb: number | null;
  note?: string;
}

export const PEER_NAMES: Record<PeerKind, string> = {
  'kafka-streams': 'Kafka Streams',
  spark: 'Spark Structured Streaming',
  flink: 'Flink',
};

export interface PeerThroughputRun {
  peer: PeerKind;
  job: 'windowed' | 'stateless';
  /** Kafka Streams only: the windows' grace (and store retention − window size); default 5 000 ms. */
  graceMs?: number;
  /** Words after the system's name in the row, e.g. "exact-on-backlog config". */
  label?: string;
  note?: string;
  /**
   * Kafka Streams only: read this copy of the input, whose flush records were held back
   * (`fillInput(…, { holdFlush: true })`), and send them once the application has committed every
   * input and repartition record — so that no far-future record reaches an aggregation task while
   * another upstream task is still catching up (see the row's note in docs/benchmarks.md).
   */
  heldFlush?: BenchData;
}

/**
 * Builds the peer if its sources changed (cached otherwise) and starts it on `input` with the bench's
 * settings: `settingMs` is Spark's trigger, Kafka Streams' commit interval and Flink's latency setting;
 * without it, the backlog's (Spark 0: each micro-batch at once; Kafka Streams 1 000; Flink its defaults).
 */
export async function startPeer(
  peer: PeerKind,
  o: {
    brokers: string;
    input: string;
    output: string;
    job: 'windowed' | 'stateless';
    /** Kafka Streams' application id (its consumer group and internal topics' prefix). */
    applicationId: string;
    settingMs?: number;
    graceMs?: number;
  },
): Promise<PeerRun> {
  const peers = await import('../peers/peers.ts');
  await peers.buildPeers([peer]);
  const { brokers, input, output } = o;
  const job = o.job === 'windowed' ? 'page-views' : 'stateless';
  if (peer === 'spark') {
    const checkpointDir = mkdtempSync(join(tmpdir(), 'bench-spark-'));
    return peers.startSpark({ brokers, input, output, job, checkpointDir, triggerMs: o.settingMs ?? 0 });
  }
  if (peer === 'flink')
    return peers.startFlink({ brokers, input, output, job, ...(o.settingMs ? { settingMs: o.settingMs } : {}) });
  return peers.startKafkaStreams({
    brokers,
    input,
    output,
    job,
    applicationId: o.applicationId,
    commitIntervalMs: o.settingMs ?? 1000,
    ...(o.graceMs ? { graceMs: o.graceMs } : {}),
  });
}

export async function peerThroughput(
  kafka: Kafka,
  brokers: string,
  data: BenchData,
  run: string,
  partitions: number,
  o: PeerThroughputRun,
): Promise<Row> {
  const slug = `${o.peer}-${o.job}${o.graceMs ? `-g${o.graceMs}` : ''}`;
  const output = `bench-${slug}-${run}-out`;
  const admin = kafka.admin();
  await admin.connect();
  await createTopics(admin, [{ topic: output, partitions }]);
  await admin.disconnect();
  const system = `${PEER_NAMES[o.peer]} ${o.job === 'windowed' ? 'page-views' : 'stateless map/filter'}${o.label ? ` (${o.label})` : ''}`;
  const mb = (bytes: number): number => bytes / 1e6;
  try {
    log(`${system}: running on the backlog`);
    const input = o.heldFlush?.topic ?? data.topic;
    const applicationId = `bench-ks-${slug}-${run}`;
    const started = await startPeer(o.peer, {
      brokers,
      input,
      output,
      job: o.job,
      applicationId,
      ...(o.graceMs ? { graceMs: o.graceMs } : {}),
    });
    const flushing = o.heldFlush ? flushOnceCaughtUp(kafka, o.heldFlush, applicationId) : undefined;
    const { records: out, lastAt } = await readOutputs(
      kafka,
      output,
      o.job === 'windowed' ? allWindowsIn(data) : (recs) => recs.length >= data.expectedStateless,
    );
    await flushing;
    const first = await started.firstRecordAt;
    const rss = started.peakRssBytes();
    await started.stop();
    const dropped = started.droppedRecords();
    const seconds = (lastAt - first) / 1000;
    const check =
      o.job === 'windowed'
        ? checkWindows(
            out.map((r) => JSON.parse(r.value!.toString()) as never),
            data.expectedWindows,
          )
        : out.length === data.expectedStateless
          ? 'exact'
          : `expected ${data.expectedStateless} records, got ${out.length}`;
    return {
      system,
      check: `${check}${dropped ? `; it dropped ${dropped} records as late` : ''}`,
      recordsPerSec: Math.round(data.records / seconds),
      mbPerSec: Number((mb(data.bytes) / seconds).toFixed(1)),
      ratioA: null,
      ratioB: null,
      peakRssMb: Math.round(mb(rss)),
      ...(o.note ? { note: o.note } : {}),
    };
  } catch (error) {
    return {
      system,
      check: `failed: ${(error as Error).message.split('\n')[0]}`,
      recordsPerSec: 0,
      mbPerSec: 0,
      ratioA: null,
      ratioB: null,
      peakRssMb: null,
    };
  }
}

/** Waits until the group has committed the whole input and its repartition topic, then sends the flush records. */
async function flushOnceCaughtUp(kafka: Kafka, data: BenchData, groupId: string): Promise<void> {
  const admin = kafka.admin();
  await admin.connect();
  const repartition = `${groupId}-by-page-repartition`;
  const behind = async (topic: string): Promise<boolean> => {
    const high = await admin.fetchTopicOffsets(topic).catch(() => undefined);
    if (!high) return true;
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return high.some((p) => {
      const c = committed?.partitions.find((q) => q.partition === p.partition)?.offset ?? '-1';
      return Number(c) < Number(p.high);
    });
  };
  try {
    // The input is committed only once its records were written to the repartition topic.
    const deadline = Date.now() + 600_000;
    while ((await behind(data.topic)) || (await behind(repartition))) {
      if (Date.now() > deadline) throw new Error(`${groupId} did not catch up within 10 minutes`);
      await new Promise((r) => setTimeout(r, 500));
    }
    const producer = kafka.producer();
    await producer.connect();
    await producer.send({ topic: data.topic, messages: data.flushes, acks: -1 });
    await producer.disconnect();
  } finally {
    await admin.disconnect();
  }
}
