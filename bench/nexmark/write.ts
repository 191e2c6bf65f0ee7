/**
 * Writes the Nexmark model's events to Kafka as JSON, one topic per kind:
 *
 * - bids: no key, round robin over the partitions (as the suite's Kafka sink), ending with one
 *   end-of-input bid per partition (`endBids`) whose event time closes every window of the events;
 * - auctions: keyed by seller, Kafka's default partitioner;
 * - persons: keyed by person id, default partitioner, compacted: a table co-partitioned with the auctions
 *   (same partition count, same key space), for q3's stream–table join.
 *
 * Order: events are sent in chunks, each chunk's persons first, then the auctions of the chunk before
 * (a seller is at most 10 persons — 500 events — ahead of the last person generated, so delaying auctions
 * by one chunk of at least 1 000 events puts every seller's person before its auction), then the chunk's
 * bids. Sends are sequential and acknowledged by all replicas before the next one starts.
 * Kafka record timestamps are the write time; the event time is the JSON `dateTime`.
 */
import { type Admin, type Kafka, Partitioners } from 'kafkajs';
import { endBids, type NexmarkEvent } from './model.ts';

export interface NexmarkTopics {
  bids: string;
  auctions: string;
  persons: string;
}

export interface OutRecord {
  key: string | null;
  partition?: number;
  value: string;
}

/** Records for one topic, in the order they are sent. */
export interface Send {
  topic: keyof NexmarkTopics;
  records: OutRecord[];
}

/** `events`, then the end-of-input bids, one per bids partition. */
export function* withEndBids(events: Iterable<NexmarkEvent>, partitions: number): Generator<NexmarkEvent> {
  let last = -Infinity;
  for (const e of events) {
    const t = e.type === 'bid' ? e.bid.dateTime : e.type === 'auction' ? e.auction.dateTime : e.person.dateTime;
    if (t > last) last = t;
    yield e;
  }
  for (const bid of endBids(last, partitions)) yield { type: 'bid', bid };
}

/** The writer's sends, in order (see the module comment). */
export function* plan(events: Iterable<NexmarkEvent>, partitions: number, chunk = 10_000): Generator<Send> {
  if (chunk < 1000) throw new RangeError(`chunk must be at least 1000 events (a seller's lead), got ${chunk}`);
  let persons: OutRecord[] = [];
  let auctions: OutRecord[] = [];
  let held: OutRecord[] = [];
  let bids: OutRecord[] = [];
  let bidIndex = 0;
  let n = 0;
  function* flush(last: boolean): Generator<Send> {
    if (persons.length > 0) yield { topic: 'persons', records: persons };
    if (held.length > 0) yield { topic: 'auctions', records: held };
    held = auctions;
    if (last && held.length > 0) yield { topic: 'auctions', records: held };
    if (bids.length > 0) yield { topic: 'bids', records: bids };
    persons = [];
    auctions = [];
    bids = [];
  }
  for (const e of events) {
    if (e.type === 'person') persons.push({ key: String(e.person.id), value: JSON.stringify(e.person) });
    else if (e.type === 'auction') auctions.push({ key: String(e.auction.seller), value: JSON.stringify(e.auction) });
    else bids.push({ key: null, partition: bidIndex++ % partitions, value: JSON.stringify(e.bid) });
    if (++n % chunk === 0) yield* flush(false);
  }
  yield* flush(true);
}

export interface WriteStats {
  records: Record<keyof NexmarkTopics, number>;
  bytes: number;
  seconds: number;
}

/** Creates the three topics (persons compacted), `partitions` each. */
export async function createNexmarkTopics(admin: Admin, topics: NexmarkTopics, partitions: number): Promise<void> {
  await admin.createTopics({
    waitForLeaders: true,
    topics: [
      { topic: topics.bids, numPartitions: partitions, replicationFactor: 1 },
      { topic: topics.auctions, numPartitions: partitions, replicationFactor: 1 },
      {
        topic: topics.persons,
        numPartitions: partitions,
        replicationFactor: 1,
        configEntries: [{ name: 'cleanup.policy', value: 'compact' }],
      },
    ],
  });
}

/** The most value bytes in one produce request: every partition's batch stays under the broker's 1 MiB. */
const MAX_SEND_BYTES = 512 * 1024;

/** Sends `sends` in order, each in requests of at most `MAX_SEND_BYTES`. */
export async function writeNexmark(kafka: Kafka, topics: NexmarkTopics, sends: Iterable<Send>): Promise<WriteStats> {
  const started = performance.now();
  const producer = kafka.producer({
    createPartitioner: Partitioners.DefaultPartitioner,
    allowAutoTopicCreation: false,
  });
  await producer.connect();
  const records = { bids: 0, auctions: 0, persons: 0 };
  let bytes = 0;
  try {
    for (const send of sends) {
      let from = 0;
      let size = 0;
      const flush = async (to: number): Promise<void> => {
        if (to > from)
          await producer.send({ topic: topics[send.topic], acks: -1, messages: send.records.slice(from, to) });
        from = to;
        size = 0;
      };
      for (let i = 0; i < send.records.length; i++) {
        const r = send.records[i]!;
        const n = r.value.length + (r.key?.length ?? 0);
        if (size + n > MAX_SEND_BYTES) await flush(i);
        size += n;
        bytes += n;
      }
      await flush(send.records.length);
      records[send.topic] += send.records.length;
    }
  } finally {
    await producer.disconnect();
  }
  return { records, bytes, seconds: (performance.now() - started) / 1000 };
}
