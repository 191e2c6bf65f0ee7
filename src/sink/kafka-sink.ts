/**
 * The sink (Kafka Streams' RecordCollector) in at-least-once delivery: one idempotent kafkajs producer
 * per worker (acks from all in-sync replicas) that publishes a batch's results, repartition records
 * and dead letters, then its changelog records, and resolves only when Kafka has acknowledged all of
 * them — the scheduler commits offsets after that, never before. `messagesOf` turns a publication
 * into produce calls; exactly-once delivery sends the same calls through a transactional producer per
 * task (task-producer.ts).
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
  changelog: string | undefined;
}

export interface Publication {
  outputs: Array<{ buffer: ArrayBuffer; count: number }>;
  /** Per upstream partition, its blocks for the repartition topic, in order. */
  repartition: Array<{ source: string; blocks: RepartitionBlock[] }>;
  dead: DeadLetter[];
  /** Upstream stream times to publish to every repartition partition (after the data). */
  watermarks: Array<{ source: string; watermark: SourceWatermark }>;
  /** Per changelog partition, its packed records (record-codec: key and value). */
  changelog: Array<{ partition: number; buffer: ArrayBuffer }>;
}

/**
 * kafkajs puts all of a call's records for one partition in a single record batch and does not split
 * it, so a call is kept under the broker's default `message.max.bytes` (1 MiB). Larger records go alone.
 */
const MAX_CALL_BYTES = 900 * 1024;

export type TopicMessages = { topic: string; messages: Message[] };

function toBuffer(view: Uint8Array | null): Buffer | null {
  return view === null ? null : Buffer.from(view.buffer, view.byteOffset, view.length);
}

/**
 * The produce calls of a publication, each under {@link MAX_CALL_BYTES}, in order: repartition blocks,
 * watermarks, outputs, dead letters. `calls` is built as it is iterated (each time anew), one call at a
 * time: a batch's messages never exist at once, only the packed records they are read from. Changelog
 * records come apart (`changelog`), one call for all of them: kafkajs writes one record batch per
 * partition and call, so a task's changelog records for a batch land together or not at all.
 */
export function messagesOf(
  publication: Publication,
  topics: SinkTopics,
): { calls: Iterable<TopicMessages[]>; changelog: TopicMessages | undefined; records: number } {
  let records = 0;
  if (topics.repartition !== undefined) {
    for (const { blocks } of publication.repartition) records += blocks.length;
    records += publication.watermarks.length * topics.repartitionPartitions;
  }
  for (const p of publication.outputs) records += p.count;
  records += publication.dead.length;
  let changelog: TopicMessages | undefined;
  if (topics.changelog !== undefined && publication.changelog.length > 0) {
    const messages: Message[] = [];
    for (const { partition, buffer } of publication.changelog) {
      for (const r of readRecords(buffer)) messages.push({ partition, key: toBuffer(r.key), value: toBuffer(r.value) });
    }
    records += messages.length;
    if (messages.length > 0) changelog = { topic: topics.changelog, messages };
  }
  return { calls: { [Symbol.iterator]: () => callsOf(publication, topics) }, changelog, records };
}

/** One record as a kafkajs message (views, not copies), and what it adds to a call. */
function toMessage(r: CodecRecord): { message: Message; size: number } {
  const headers: Record<string, Buffer> = {};
  let size = (r.key?.length ?? 0) + (r.value?.length ?? 0);
  for (const [name, value] of r.headers) {
    headers[name] = toBuffer(value)!;
    size += name.length + value.length;
  }
  const message: Message = { key: toBuffer(r.key), value: toBuffer(r.value), headers };
  if (r.timestamp >= 0) message.timestamp = String(Math.trunc(r.timestamp));
  return { message, size };
}

/** Every message of a publication but its changelog, in order. */
function* publishedMessages(
  publication: Publication,
  topics: SinkTopics,
): Generator<{ topic: string; message: Message; size: number }> {
  const repartitionTopic = topics.repartition;
  if (repartitionTopic !== undefined) {
    const version = Buffer.from(String(BLOCK_VERSION));
    for (const { source, blocks } of publication.repartition) {
      const sourceBytes = Buffer.from(source);
      for (const block of blocks) {
        const value = toBuffer(block.data);
        const headers = { [SOURCE_HEADER]: sourceBytes, [BLOCK_HEADER]: version };
        const message = { partition: block.partition, key: null, value, headers };
        yield { topic: repartitionTopic, message, size: block.data.length + 32 };
      }
    }
    // After the data: each upstream partition's stream time, to every repartition partition.
    for (const { source, watermark } of publication.watermarks) {
      const headers = {
        [SOURCE_HEADER]: source,
        [WATERMARK_HEADER]: watermark.streamTime === null ? '' : String(watermark.streamTime),
        [IDLE_HEADER]: watermark.idle ? '1' : '0',
      };
      for (let partition = 0; partition < topics.repartitionPartitions; partition++) {
        yield { topic: repartitionTopic, message: { partition, key: null, value: null, headers }, size: 64 };
      }
    }
  }
  for (const p of publication.outputs) {
    for (const r of readRecords(p.buffer)) yield { topic: topics.output, ...toMessage(r) };
  }
  for (const letter of publication.dead) {
    const headers: Record<string, Buffer> = {};
    let size = (letter.key?.length ?? 0) + (letter.value?.length ?? 0);
    for (const [name, value] of letter.headers) {
      headers[name] = typeof value === 'string' ? Buffer.from(value) : toBuffer(value)!;
      size += name.length + headers[name].length;
    }
    yield { topic: topics.dlq, message: { key: toBuffer(letter.key), value: toBuffer(letter.value), headers }, size };
  }
}

/** The published messages grouped into produce calls of at most {@link MAX_CALL_BYTES}, one at a time. */
function* callsOf(publication: Publication, topics: SinkTopics): Generator<TopicMessages[]> {
  let current = new Map<string, Message[]>();
  let bytes = 0;
  const flush = (): TopicMessages[] => {
    const call = [...current].map(([topic, messages]) => ({ topic, messages }));
    current = new Map();
    bytes = 0;
    return call;
  };
  for (const { topic, message, size } of publishedMessages(publication, topics)) {
    if (bytes > 0 && bytes + size > MAX_CALL_BYTES) yield flush();
    let list = current.get(topic);
    if (!list) current.set(topic, (list = []));
    list.push(message);
    bytes += size + 64;
  }
  if (bytes > 0) yield flush();
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

  /**
   * Publishes everything and resolves once all of it is acknowledged. Records go in order per source;
   * the changelog goes last, once the results it accounts for are acknowledged: a crash in between
   * repeats results (at-least-once) but never leaves state that claims results which were not written.
   */
  async publish(publication: Publication): Promise<{ records: number }> {
    const { calls, changelog, records } = messagesOf(publication, this.#topics);
    try {
      for (const topicMessages of calls) {
        await this.#producer.sendBatch({ topicMessages, acks: -1, compression: CompressionTypes.None });
      }
      if (changelog) {
        await this.#producer.sendBatch({ topicMessages: [changelog], acks: -1, compression: CompressionTypes.None });
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
