/**
 * The table reader on the shared broker: a store restored from the table topic to its end, caught up
 * from its position (only what is new), read_committed (an aborted transaction's rows never applied,
 * an open one's not before it commits), concurrent catch-ups of one store applied once and in order.
 */
import { describe, expect, test } from '@jest/globals';
import { TableReader } from '../../src/state/table-reader.ts';
import { TableStore } from '../../src/state/table-store.ts';
import { createTopic, onCleanup, testKafka, uniqueName, waitFor } from '../helpers.ts';

async function producer(transactionalId?: string) {
  const p = testKafka().producer({
    allowAutoTopicCreation: false,
    ...(transactionalId ? { transactionalId, idempotent: true, maxInFlightRequests: 1 } : {}),
  });
  await p.connect();
  onCleanup(() => p.disconnect());
  return p;
}

async function reader(topic: string): Promise<TableReader> {
  const r = new TableReader(testKafka(), topic);
  onCleanup(() => r.stop());
  await r.start();
  return r;
}

const rows = (store: TableStore, keys: string[]) => Object.fromEntries(keys.map((k) => [k, store.get(k)]));

describe('TableReader', () => {
  test('restores to the end, then catches up with what is new only; every partition on its own', async () => {
    const topic = await createTopic(uniqueName('table-read'), 2, { 'cleanup.policy': 'compact' });
    const plain = await producer();
    await plain.send({
      topic,
      acks: -1,
      messages: [
        { partition: 0, key: 'a', value: '{"v":1}' },
        { partition: 0, key: 'b', value: '{"v":2}' },
        { partition: 1, key: 'c', value: '{"v":3}' },
        { partition: 0, key: 'a', value: '{"v":4}' },
      ],
    });
    const r = await reader(topic);
    const store = new TableStore({ topic, kind: 'global', format: 'json' });
    expect(await r.catchUp(store, [0, 1])).toEqual({ records: 4, unreadable: [] });
    expect(rows(store, ['a', 'b', 'c'])).toEqual({ a: { v: 4 }, b: { v: 2 }, c: { v: 3 } });
    expect([store.position(0), store.position(1)]).toEqual([3, 1]);

    expect((await r.catchUp(store, [0, 1])).records).toBe(0);
    await plain.send({
      topic,
      acks: -1,
      messages: [
        { partition: 0, key: 'b', value: null },
        { partition: 1, key: 'c', value: 'not json' },
        { partition: 1, key: 'd', value: '"new"' },
      ],
    });
    const read = await r.catchUp(store, [0, 1]);
    expect(read.records).toBe(3);
    expect(read.unreadable.map((u) => [u.partition, u.record.offset, u.reason])).toEqual([
      [1, 1, expect.stringMatching(/^table record: value is not valid JSON/)],
    ]);
    expect(rows(store, ['a', 'b', 'c', 'd'])).toEqual({ a: { v: 4 }, b: undefined, c: { v: 3 }, d: 'new' });
    expect(store.size).toBe(3);
  });

  test('read_committed: an aborted transaction is never applied, an open one only once committed', async () => {
    const topic = await createTopic(uniqueName('table-txn'), 1);
    const tx = await producer(uniqueName('table-txn'));
    const aborted = await tx.transaction();
    await aborted.send({ topic, acks: -1, messages: [{ key: 'a', value: '"aborted"' }] });
    await aborted.abort();
    const open = await tx.transaction();
    await open.send({ topic, acks: -1, messages: [{ key: 'b', value: '"pending"' }] });

    const r = await reader(topic);
    const store = new TableStore({ topic, kind: 'partitioned', format: 'json' });
    await r.catchUp(store, [0]);
    expect(rows(store, ['a', 'b'])).toEqual({ a: undefined, b: undefined });
    await open.commit();
    // The broker answers the commit before it writes the markers: the stable end moves a moment later.
    await waitFor('the committed row', async () => {
      await r.catchUp(store, [0]);
      return store.get('b');
    });
    expect(rows(store, ['a', 'b'])).toEqual({ a: undefined, b: 'pending' });
    expect(store.position(0)).toBe(4); // record, marker, record, marker
  });

  test('concurrent catch-ups of one store apply each record once, in offset order', async () => {
    const topic = await createTopic(uniqueName('table-conc'), 1);
    const plain = await producer();
    const messages = Array.from({ length: 500 }, (_, i) => ({ key: `k${i % 7}`, value: String(i) }));
    await plain.send({ topic, acks: -1, messages });
    const r = await reader(topic);
    const store = new TableStore({ topic, kind: 'partitioned', format: 'json' });
    const reads = await Promise.all([r.catchUp(store, [0]), r.catchUp(store, [0]), r.catchUp(store, [0])]);
    expect(reads.map((x) => x.records).reduce((a, b) => a + b, 0)).toBe(500);
    for (let k = 0; k < 7; k++) {
      const last = Math.max(...messages.flatMap((m, i) => (m.key === `k${k}` ? [i] : [])));
      expect(store.get(`k${k}`)).toBe(last);
    }
  });
});
