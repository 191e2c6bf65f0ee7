/**
 * The sink: one idempotent kafkajs producer (acks from all in-sync replicas) that publishes a batch's
 * results, repartition records and dead letters, and resolves only when Kafka has acknowledged all of
 * them — the scheduler commits offsets after that, never before.
 */
import { type Kafka, type Message, type Producer, Partitioners, CompressionTypes } from 'kafkajs';
import { KafkaError } from '../errors.ts';
import {
  IDLE_HEADER,
  SOURCE_HEADER,
  WATERMARK_HEADER,
  type DeadLetter,
  type SourceWatermark,
} from '../pool/protocol.ts';
import { readRecords, type CodecRecord } from '../pool/record-codec.ts';

export interface SinkTopics {
  output: string;
  dlq: string;
  repartition: string | undefined;
  repartitionPartitions: number;
}

export interface Publication {
  outputs: Array<{ buffer: ArrayBuffer; count: number }>;
  repartition: Array<{ buffer: ArrayBuffer; count: number }>;
  dead: DeadLetter[];
  /** Upstream stream times to publish to every repartition partition (after the data). */
  watermarks: Array<{ source: string; watermark: SourceWatermark }>;
}

/**
 * kafkajs puts all of a call's records for one partition in a single record batch and does not split
 * it, so a call is kept under the broker's default `message.max.bytes` (1 MiB). Larger records go alone.
 */
const MAX_CALL_BYTES = 900 * 1024;

type TopicMessages = { topic: string; messages: Message[] };

function toBuffer(view: Uint8Array | null): Buffer | null {
  return view === null ? null : Buffer.from(view.buffer, view.byteOffset, view.length);
}

/**
 * Merges per-source record sequences by timestamp, keeping each source's own order (a k-way merge
 * on the heads, like Kafka Streams choosing the input partition with the lowest head timestamp).
 * Re-keyed records from several input partitions then reach a repartition partition roughly in
 * event-time order, so a backlog read one partition at a time does not make the aggregating stage
 * see most records as late.
 */
export function* mergeByTimestamp(sources: Array<Iterator<CodecRecord>>): Generator<CodecRecord> {
  const heads: Array<{ record: CodecRecord; source: Iterator<CodecRecord>; order: number }> = [];
  const less = (a: (typeof heads)[number], b: (typeof heads)[number]): boolean =>
    a.record.timestamp < b.record.timestamp || (a.record.timestamp === b.record.timestamp && a.order < b.order);
  const push = (item: (typeof heads)[number]): void => {
    heads.push(item);
    let i = heads.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!less(heads[i]!, heads[parent]!)) break;
      [heads[i], heads[parent]] = [heads[parent]!, heads[i]!];
      i = parent;
    }
  };
  const pop = (): (typeof heads)[number] => {
    const top = heads[0]!;
    const last = heads.pop()!;
    if (heads.length > 0) {
      heads[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < heads.length && less(heads[l]!, heads[m]!)) m = l;
        if (r < heads.length && less(heads[r]!, heads[m]!)) m = r;
        if (m === i) break;
        [heads[i], heads[m]] = [heads[m]!, heads[i]!];
        i = m;
      }
    }
    return top;
  };
  sources.forEach((source, order) => {
    const next = source.next();
    if (!next.done) push({ record: next.value, source, order });
  });
  while (heads.length > 0) {
    const head = pop();
    yield head.record;
    const next = head.source.next();
    if (!next.done) push({ record: next.value, source: head.source, order: head.order });
  }
}

export class KafkaSink {
  readonly #producer: Producer;
  readonly #topics: SinkTopics;

  constructor(kafka: Kafka, topics: SinkTopics) {
    this.#topics = topics;
    this.#producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: Partitioners.DefaultPartitioner,
      allowAutoTopicCreation: false,
      // An idempotent producer retries until it succeeds; a wedged batch shows in /healthz.
      retry: { retries: Number.MAX_SAFE_INTEGER, initialRetryTime: 100, maxRetryTime: 10_000 },
    });
  }

  async start(): Promise<void> {
    try {
      await this.#producer.connect();
    } catch (error) {
      throw new KafkaError(`producer failed to connect: ${(error as Error).message}`, error, false);
    }
  }

  /** Publishes everything and resolves once all of it is acknowledged. Records go in order per source. */
  async publish(publication: Publication): Promise<{ records: number }> {
    const calls: TopicMessages[][] = [];
    let current = new Map<string, Message[]>();
    let bytes = 0;
    const add = (topic: string, message: Message, size: number): void => {
      if (bytes > 0 && bytes + size > MAX_CALL_BYTES) {
        calls.push([...current].map(([t, messages]) => ({ topic: t, messages })));
        current = new Map();
        bytes = 0;
      }
      let list = current.get(topic);
      if (!list) current.set(topic, (list = []));
      list.push(message);
      bytes += size + 64;
    };
    let records = 0;
    const addPacked = (topic: string, packed: Iterable<CodecRecord>): void => {
      for (const r of packed) {
        const headers: Record<string, Buffer> = {};
        let size = (r.key?.length ?? 0) + (r.value?.length ?? 0);
        for (const [name, value] of r.headers) {
          headers[name] = toBuffer(value)!;
          size += name.length + value.length;
        }
        const message: Message = { key: toBuffer(r.key), value: toBuffer(r.value), headers };
        if (r.timestamp >= 0) message.timestamp = String(Math.trunc(r.timestamp));
        add(topic, message, size);
        records++;
      }
    };
    const repartitionTopic = this.#topics.repartition;
    if (repartitionTopic !== undefined) {
      addPacked(repartitionTopic, mergeByTimestamp(publication.repartition.map((p) => readRecords(p.buffer))));
      // After the data: each upstream partition's stream time, to every repartition partition.
      for (const { source, watermark } of publication.watermarks) {
        const headers = {
          [SOURCE_HEADER]: source,
          [WATERMARK_HEADER]: watermark.streamTime === null ? '' : String(watermark.streamTime),
          [IDLE_HEADER]: watermark.idle ? '1' : '0',
        };
        for (let partition = 0; partition < this.#topics.repartitionPartitions; partition++) {
          add(repartitionTopic, { partition, key: null, value: null, headers }, 64);
          records++;
        }
      }
    }
    addPacked(
      this.#topics.output,
      publication.outputs.flatMap((p) => [...readRecords(p.buffer)]),
    );
    for (const letter of publication.dead) {
      const headers: Record<string, Buffer> = {};
      let size = (letter.key?.length ?? 0) + (letter.value?.length ?? 0);
      for (const [name, value] of letter.headers) {
        headers[name] = typeof value === 'string' ? Buffer.from(value) : toBuffer(value)!;
        size += name.length + headers[name].length;
      }
      add(this.#topics.dlq, { key: toBuffer(letter.key), value: toBuffer(letter.value), headers }, size);
      records++;
    }
    if (bytes > 0) calls.push([...current].map(([t, messages]) => ({ topic: t, messages })));
    try {
      for (const topicMessages of calls) {
        await this.#producer.sendBatch({ topicMessages, acks: -1, compression: CompressionTypes.None });
      }
    } catch (error) {
      throw new KafkaError(`publishing failed: ${(error as Error).message}`, error);
    }
    return { records };
  }

  async close(): Promise<void> {
    await this.#producer.disconnect();
  }
}
