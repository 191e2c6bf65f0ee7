/**
 * `sluice/testing` with table joins: rows given up front and sent mid-stream apply before the next
 * batch (an event sees the table as of its batch's start), tombstones delete, a partitioned table is
 * read per partition (a row in another partition than its key's is not found) and a global one by any
 * key; an unreadable table record is a dead letter. Results are compared with a join recomputed here.
 */
import { describe, expect, test } from '@jest/globals';
import { defineJob, table } from 'sluice';
import { testJob, type TestRecord } from 'sluice/testing';

interface Order {
  user: string;
  sku: string;
  amount: number;
}

const users = table<{ country: string }>('users');
const products = table<{ title: string }>('products', { kind: 'global' });

const enrich = defineJob<Order>({
  name: 'orders-enriched',
  input: { topics: ['orders'] },
  pipeline: (s) =>
    s
      .joinTable(users, (o, u) => ({ ...o, country: u.country }))
      .joinTable(products, (o, p) => ({ ...o, title: p?.title ?? null }), { kind: 'left', key: (o) => o.sku }),
  output: { topic: 'orders-out' },
});

const order = (user: string, sku: string, amount: number): TestRecord => ({ key: user, value: { user, sku, amount } });

describe('a job joining a partitioned and a global table', () => {
  test('rows up front and mid-stream, deletes, misses and a bad row, against a join recomputed here', async () => {
    const driver = await testJob(enrich, {
      partitions: 3,
      tables: {
        users: [
          { key: 'ann', value: { country: 'DE' } },
          { key: 'bob', value: { country: 'FR' } },
        ],
        products: [{ key: 'p1', value: { title: 'Lamp' } }],
      },
    });
    const first = driver.run([order('ann', 'p1', 10), order('bob', 'p2', 20), order('cid', 'p1', 30)]);
    expect(first.outputs.map((o) => o.value)).toEqual(
      expect.arrayContaining([
        { user: 'ann', sku: 'p1', amount: 10, country: 'DE', title: 'Lamp' },
        { user: 'bob', sku: 'p2', amount: 20, country: 'FR', title: null },
      ]),
    );
    expect(first.outputs).toHaveLength(2); // cid has no row: an inner join drops the order

    // Mid-stream: cid arrives, ann moves, bob is deleted, p2 gets a title, and one row is not JSON.
    driver.sendTable('users', [
      { key: 'cid', value: { country: 'JP' } },
      { key: 'ann', value: { country: 'US' } },
      { key: 'bob', value: null },
      { key: 'dan', value: '{"country": ' },
    ]);
    driver.sendTable('products', { key: 'p2', value: { title: 'Desk' } });
    const second = driver.run([
      order('ann', 'p2', 1),
      order('bob', 'p1', 2),
      order('cid', 'p2', 3),
      order('dan', 'p1', 4),
    ]);
    expect(second.outputs.map((o) => o.value).sort((a, b) => (a as Order).amount - (b as Order).amount)).toEqual([
      { user: 'ann', sku: 'p2', amount: 1, country: 'US', title: 'Desk' },
      { user: 'cid', sku: 'p2', amount: 3, country: 'JP', title: 'Desk' },
    ]);
    expect(second.deadLetters.map((d) => [d.code, d.source?.topic, d.key])).toEqual([
      ['SLUICE_DESERIALIZE_FAILED', 'users', 'dan'],
    ]);
  });

  test('a partitioned table is read by partition: a row sent to another partition than its key is not found', async () => {
    const driver = await testJob(enrich, {
      partitions: 2,
      tables: { products: [{ key: 'p1', value: { title: 'Lamp' } }] },
    });
    const [sent] = driver.send(order('eve', 'p1', 5));
    driver.sendTable('users', { key: 'eve', value: { country: 'SE' }, partition: 1 - sent!.partition });
    expect(driver.run().outputs).toEqual([]);
    driver.sendTable('users', { key: 'eve', value: { country: 'SE' } });
    expect(driver.run([order('eve', 'p1', 6)]).outputs.map((o) => o.value)).toEqual([
      { user: 'eve', sku: 'p1', amount: 6, country: 'SE', title: 'Lamp' },
    ]);
  });

  test('refuses rows for a topic that is not a table of the job', async () => {
    const driver = await testJob(enrich);
    expect(() => driver.sendTable('orders', { key: 'x', value: {} })).toThrow(
      /not a table of this job \(users, products\)/,
    );
  });
});
