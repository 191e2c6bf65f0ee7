/**
 * The sink: one idempotent kafkajs producer (acks from all in-sync replicas) that publishes a batch's
 * results, repartition records and dead letters, and resolves only when Kafka has acknowledged all of
 * them — the scheduler commits offsets after that, never before.
 */
import { type Kafka, type Message, type Producer, CompressionTypes } from 'kafkajs';
import { fastDefaultPartitioner } from '../kafka/kafkajs-fixes.ts';
import { KafkaError } from '../errors.ts';
import { type DeadLetter, type SourceWatermark } from '../pool/protocol.ts';
import { BLOCK_HEADER, IDLE_HEADER, SOURCE_HEADER, WATERMARK_HEADER } from '../wire/headers.ts';
import { readRecords, type CodecRecord } from '../wire/record-codec.ts';
import { BLOCK_VERSION, type RepartitionBlock } from '../wire/repartition-block.ts';

export interface SinkTopics {
  output: string;
  dlq: string;
  repartition: string | undefined;
  repartitionPartitions: number;
}

export interface Publication {
  outputs: Array<{ buffer: ArrayBuffer; count: number }>;
  /** Per upstream partition, its blocks for the repartition topic, in order. */
  repartition: Array<{ source: string; blocks: RepartitionBlock[] }>;
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

export class KafkaSink {
  readonly #producer: Producer;
  readonly #topics: SinkTopics;

  constructor(kafka: Kafka, topics: SinkTopics) {
    this.#topics = topics;
    this.#producer = kafka.producer({
      idempotent: true,
      maxInFlightRequests: 1,
      createPartitioner: fastDefaultPartitioner,
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
      const version = Buffer.from(String(BLOCK_VERSION));
      for (const { source, blocks } of publication.repartition) {
        const sourceBytes = Buffer.from(source);
        for (const block of blocks) {
          const value = toBuffer(block.data);
          const headers = { [SOURCE_HEADER]: sourceBytes, [BLOCK_HEADER]: version };
          add(repartitionTopic, { partition: block.partition, key: null, value, headers }, block.data.length + 32);
          records++;
        }
      }
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
