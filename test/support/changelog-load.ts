/**
 * The large changelog of `test/state/changelog-reader.test.ts`, written and restored in a plain Node
 * process. Jest runs tests in a `vm` context, where every global lookup is slow, and kafkajs looks up
 * `BigInt` and `isNaN` for each 64-bit value it encodes or decodes: inside Jest the same restore is
 * about three times slower than in the service's own threads. Here it takes the time it takes in
 * the service, which is the rate worth quoting, and the test file stays within its time budget.
 *
 * `node test/support/changelog-load.ts write|restore <brokers> <topic> <records>` prints one JSON line.
 */
import '../../src/kafka/kafkajs-fixes.ts';
import { resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Kafka, logLevel, type Message } from 'kafkajs';
import { ChangelogReader, type ChangelogRecord } from '../../src/state/changelog-reader.ts';

export const LARGE_KEYS = 100_000;
/** 20 bytes; 100 000 keys, so each has one value per 100 000 records. */
export const keyOf = (i: number): string => `changelog-key-${String(i % LARGE_KEYS).padStart(6, '0')}`;
/** 16 bytes. */
export const valueOf = (i: number): string => `v-${String(i).padStart(14, '0')}`;

/** One producer, one send after the other (acks 1): index i lands at offset i. */
async function write(kafka: Kafka, topic: string, records: number): Promise<{ ms: number }> {
  const producer = kafka.producer({ allowAutoTopicCreation: false });
  await producer.connect();
  try {
    const started = performance.now();
    for (let from = 0; from < records; from += 20_000) {
      const messages: Message[] = [];
      for (let i = from; i < Math.min(records, from + 20_000); i++) {
        messages.push({ partition: 0, key: keyOf(i), value: valueOf(i) });
      }
      await producer.send({ topic, acks: 1, messages });
    }
    return { ms: performance.now() - started };
  } finally {
    await producer.disconnect();
  }
}

/**
 * Restores partition 0 into a Map by key, as a store would, then compares every record with what
 * {@link write} wrote (outside the measured time): `wrong` and `stale` list the first mismatches.
 */
async function restore(kafka: Kafka, topic: string, written: number) {
  const reader = new ChangelogReader(kafka, topic);
  await reader.start();
  try {
    const store = new Map<string, Buffer | null>();
    const all: ChangelogRecord[] = [];
    const started = performance.now();
    const result = await reader.restore(0, (records) => {
      for (const r of records) {
        all.push(r);
        store.set(r.key!.toString('latin1'), r.value);
      }
    });
    const ms = performance.now() - started;
    const text = (b: Buffer | null | undefined): string | null => (b ? b.toString('latin1') : null);
    const wrong: string[] = [];
    all.forEach((r, i) => {
      if (wrong.length < 5 && (r.offset !== i || text(r.key) !== keyOf(i) || text(r.value) !== valueOf(i))) {
        wrong.push(`#${i}: offset ${r.offset} ${text(r.key)}=${text(r.value)}`);
      }
    });
    const stale: string[] = [];
    for (let k = 0; k < LARGE_KEYS && stale.length < 5; k++) {
      const value = text(store.get(keyOf(k)));
      if (value !== valueOf(written - LARGE_KEYS + k)) stale.push(`${keyOf(k)}=${value}`);
    }
    return { ...result, delivered: all.length, keys: store.size, wrong, stale, ms };
  } finally {
    await reader.stop();
  }
}

const invokedDirectly = process.argv[1] && resolve(process.argv[1]) === fileURLToPath(import.meta.url);
if (invokedDirectly) {
  const [command, brokers, topic, records] = process.argv.slice(2);
  if ((command !== 'write' && command !== 'restore') || !brokers || !topic) {
    console.error('usage: node test/support/changelog-load.ts write|restore <brokers> <topic> <records>');
    process.exit(2);
  }
  const kafka = new Kafka({
    clientId: 'sluice-changelog-load',
    brokers: brokers.split(','),
    logLevel: logLevel.NOTHING,
  });
  const result =
    command === 'write' ? await write(kafka, topic, Number(records)) : await restore(kafka, topic, Number(records));
  console.log(JSON.stringify(result));
}
