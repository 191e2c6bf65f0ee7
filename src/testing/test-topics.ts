/**
 * The topics of a job under test, in memory: its input partitions and its repartition topic as
 * buffers of packed records (the receiver's `packMessages` layout, cut by the scheduler's
 * `BufferQueue`), its output and dead-letter topics as the records the tasks published. Offsets run
 * from 0 per partition; partitions are Kafka's default partitioner's, and the partition counts the
 * service creates (output: the largest input's; `<job>-dlq`: one).
 */
import { type JobPlan } from '../job/plan.ts';
import { type DeadLetter, partitionId, type PartitionResult } from '../pool/protocol.ts';
import { BufferQueue } from '../queue/buffer-queue.ts';
import { type FetchedMessage, packMessages, readRecords } from '../wire/record-codec.ts';
import { shuffleRecords } from './shuffle.ts';
import { type TestTableRecord } from './test-tables.ts';
import {
  decodeDeadLetter,
  decodeHeaders,
  decodeText,
  decodeValue,
  DefaultPartitioner,
  encodeKey,
  fetchedMessage,
  type SentRecord,
  type TestDeadLetter,
  type TestOutput,
  type TestRecord,
} from './test-records.ts';

/** The driver's settings, resolved (see `TestJobOptions`). */
export interface DriverSettings {
  /** Partitions of each input topic. */
  partitions: ReadonlyMap<string, number>;
  outputPartitions: number;
  maxBatchRecords: number;
  maxRecordBytes: number;
  startTime: number;
  /** Rows of the job's table topics at the start (`TestJobOptions.tables`). */
  tables: Readonly<Record<string, readonly TestTableRecord[]>>;
}

/** What a batch published. */
export interface Published {
  outputs: TestOutput[];
  /** Every dead letter, late records included. */
  deadLetters: TestDeadLetter[];
  /** The dead letters with code `SLUICE_LATE_RECORD`. */
  late: TestDeadLetter[];
}

/** Everything sent is buffered: the service's bound only pauses fetching. */
const UNBOUNDED = { maxRecords: Number.MAX_SAFE_INTEGER, maxBytes: Number.MAX_SAFE_INTEGER };

export const isLate = (letter: TestDeadLetter): boolean => letter.code === 'SLUICE_LATE_RECORD';

export class TestTopics {
  /** Input records not processed yet, per input partition. */
  readonly inputs = new BufferQueue(UNBOUNDED);
  /** Repartition records not processed yet, per repartition partition. */
  readonly shuffle = new BufferQueue(UNBOUNDED);
  /** Everything published to the output topic and to the dead-letter topic, in order. */
  readonly published: Published = { outputs: [], deadLetters: [], late: [] };
  readonly #plan: JobPlan;
  readonly #settings: DriverSettings;
  readonly #repartitionPartitions: number;
  /** Next offset of every partition written to. */
  readonly #offsets = new Map<string, number>();
  readonly #partitioner = new DefaultPartitioner();

  constructor(plan: JobPlan, settings: DriverSettings, repartitionPartitions: number) {
    this.#plan = plan;
    this.#settings = settings;
    this.#repartitionPartitions = repartitionPartitions;
  }

  /**
   * Appends records to their input partitions, as a producer would; none when one of them is refused
   * (unknown topic, partition out of range, a value the job's format cannot hold).
   */
  append(records: readonly TestRecord[], now: number): SentRecord[] {
    const next = new Map<string, number>();
    const messages = new Map<string, FetchedMessage[]>();
    const sent: SentRecord[] = [];
    for (const record of records) {
      const topic = this.#topicOf(record);
      const count = this.#settings.partitions.get(topic) ?? 0;
      const partition = record.partition ?? this.#partitioner.partition(topic, encodeKey(record.key), count);
      if (!Number.isInteger(partition) || partition < 0 || partition >= count) {
        throw new RangeError(`partition ${partition} of ${topic} does not exist (it has ${count})`);
      }
      const id = partitionId(topic, partition);
      const offset = next.get(id) ?? this.#offsets.get(id) ?? 0;
      next.set(id, offset + 1);
      const list = messages.get(id) ?? [];
      list.push(fetchedMessage(record, this.#plan.format, offset, now));
      messages.set(id, list);
      sent.push({ topic, partition, offset });
    }
    for (const [id, offset] of next) this.#offsets.set(id, offset);
    for (const [id, fetched] of messages) this.inputs.push(id, packMessages(fetched));
    return sent;
  }

  #topicOf(record: TestRecord): string {
    const { inputTopics: topics, name } = this.#plan;
    if (record.topic === undefined) {
      if (topics.length === 1) return topics[0]!;
      throw new RangeError(`${name} reads ${topics.join(', ')}: give each record its topic`);
    }
    if (!this.#settings.partitions.has(record.topic)) {
      throw new RangeError(`${record.topic} is not an input topic of ${name} (${topics.join(', ')})`);
    }
    return record.topic;
  }

  /**
   * A task's batch result, published as the sink publishes it: its outputs and dead letters (added to
   * `batch` too), and a shuffle writer's repartition records (buffered for the shuffle readers).
   */
  publish(result: PartitionResult, now: number, batch: Published): void {
    const { outputTopic, repartitionTopic } = this.#plan;
    for (const record of readRecords(result.outputs)) {
      const key = record.key?.slice() ?? null;
      const partition = this.#partitioner.partition(outputTopic, key, this.#settings.outputPartitions);
      const bytes = record.value?.slice() ?? null;
      const output: TestOutput = {
        topic: outputTopic,
        partition,
        offset: this.#nextOffset(outputTopic, partition),
        key: decodeText(key),
        value: decodeValue(bytes),
        bytes,
        headers: decodeHeaders(record.headers),
        // A windowed result has none: the producer stamps the publish time.
        timestamp: record.timestamp >= 0 ? Math.trunc(record.timestamp) : now,
      };
      batch.outputs.push(output);
      this.published.outputs.push(output);
    }
    this.publishDead(result.dead, now, batch);
    if (repartitionTopic === undefined) return;
    const byPartition = new Map<number, FetchedMessage[]>();
    for (const record of shuffleRecords(result, this.#repartitionPartitions)) {
      const offset = this.#nextOffset(repartitionTopic, record.partition);
      const list = byPartition.get(record.partition) ?? [];
      list.push({ ...record, offset: String(offset), timestamp: String(now) });
      byPartition.set(record.partition, list);
    }
    for (const [partition, list] of byPartition) {
      this.shuffle.push(partitionId(repartitionTopic, partition), packMessages(list));
    }
  }

  /** Dead letters, published to `<job>-dlq` (and added to `batch`). */
  publishDead(letters: readonly DeadLetter[], now: number, batch: Published): void {
    const { dlqTopic } = this.#plan;
    for (const letter of letters) {
      const at = { topic: dlqTopic, partition: 0, offset: this.#nextOffset(dlqTopic, 0) };
      const dead = decodeDeadLetter(letter, at, now);
      for (const list of [batch, this.published]) {
        list.deadLetters.push(dead);
        if (isLate(dead)) list.late.push(dead);
      }
    }
  }

  #nextOffset(topic: string, partition: number): number {
    const id = partitionId(topic, partition);
    const offset = this.#offsets.get(id) ?? 0;
    this.#offsets.set(id, offset + 1);
    return offset;
  }
}
