/**
 * Each Nexmark query job (bench/nexmark/queries) run through `sluice/testing` on a few thousand generated
 * events, sent in the writer's order (bench/nexmark/write.ts `plan`: persons rows before the auctions that
 * need them, bids round robin, end-of-input bids last), equals the reference recomputation exactly —
 * in order and out of order (the model's out-of-order groups, with the lateness they need).
 */
import { describe, expect, test } from '@jest/globals';
import { Partitioners } from 'kafkajs';
import { type JobDefinition } from 'sluice';
import { testJob } from 'sluice/testing';
import {
  generateEvents,
  maxOutOfOrdernessMs,
  type NexmarkConfig,
  type NexmarkEvent,
} from '../../../bench/nexmark/model.ts';
import { settingsFromEnv, type QuerySettings } from '../../../bench/nexmark/queries/common.ts';
import { q0 } from '../../../bench/nexmark/queries/q0.ts';
import { q1 } from '../../../bench/nexmark/queries/q1.ts';
import { q2 } from '../../../bench/nexmark/queries/q2.ts';
import { q3 } from '../../../bench/nexmark/queries/q3.ts';
import { q5 } from '../../../bench/nexmark/queries/q5.ts';
import { q7 } from '../../../bench/nexmark/queries/q7.ts';
import { q11 } from '../../../bench/nexmark/queries/q11.ts';
import { Checker, type Query, QUERIES, Reference } from '../../../bench/nexmark/reference.ts';
import { plan, type Send, withEndBids } from '../../../bench/nexmark/write.ts';

const jobs: Record<Query, (s: QuerySettings) => JobDefinition<never>> = { q0, q1, q2, q3, q5, q7, q11 } as never;
const PARTITIONS = 3;

interface Scenario {
  name: string;
  events: number;
  config: Partial<NexmarkConfig>;
}

const scenarios: Scenario[] = [
  // 20 s of event time: several q7 windows, a dozen q5 windows, sessions that end.
  { name: 'in order, 250 events/s', events: 5000, config: { firstEventRate: 250 } },
  // Out-of-order groups of 50 events (up to 250 ms behind), another seed.
  {
    name: 'out of order, 200 events/s',
    events: 4000,
    config: { seed: 9, firstEventRate: 200, outOfOrderGroupSize: 50 },
  },
];

/** Runs `query` on the sends in order: table rows before the next batch, each stream send to the end. */
async function runQuery(query: Query, sends: readonly Send[], latenessMs: number) {
  const settings = { ...settingsFromEnv(query), latenessMs };
  const driver = await testJob(jobs[query](settings), { partitions: PARTITIONS, maxBatchRecords: 500 });
  const deadLetters: unknown[] = [];
  for (const send of sends) {
    if (send.topic === 'persons') {
      if (query === 'q3')
        driver.sendTable(
          settings.persons,
          send.records.map(({ key, value }) => ({ key: key!, value })),
        );
      continue;
    }
    if ((send.topic === 'auctions') !== (query === 'q3')) continue;
    const topic = send.topic === 'bids' ? settings.bids : settings.auctions;
    const { deadLetters: dead } = driver.run(
      send.records.map((r) => ({
        topic,
        key: r.key,
        value: r.value,
        ...(r.partition === undefined ? {} : { partition: r.partition }),
      })),
      { flush: false },
    );
    deadLetters.push(...dead);
  }
  return { outputs: driver.outputs(), deadLetters, late: driver.late() };
}

describe.each(scenarios)('$name', ({ events: count, config }) => {
  const events: NexmarkEvent[] = [...withEndBids(generateEvents(count, config), PARTITIONS)];
  const latenessMs = maxOutOfOrdernessMs(config);
  const reference = new Reference({ latenessMs });
  for (const e of events) reference.add(e);
  const sends = [...plan(events, PARTITIONS, 1000)];

  test.each([...QUERIES])('%s equals the reference', async (query) => {
    const expected = reference.results(query);
    // Every query has results to compare (the windowed ones several windows or sessions).
    expect(expected.length).toBeGreaterThanOrEqual(query === 'q7' ? 2 : 5);
    const { outputs, deadLetters, late } = await runQuery(query, sends, latenessMs);
    expect(deadLetters).toEqual([]);
    expect(late).toEqual([]);
    const checker = new Checker(query, expected);
    for (const o of outputs) checker.offer(o.key, o.value);
    expect(checker.summary()).toBe('exact');
    expect(outputs).toHaveLength(expected.length);
  });
});

describe("the writer's order", () => {
  const events = [...withEndBids(generateEvents(30_000, { seed: 3 }), 4)];
  const sends = [...plan(events, 4, 1000)];

  test('every auction comes after its seller, when that person exists', () => {
    const exists = new Set(events.flatMap((e) => (e.type === 'person' ? [e.person.id] : [])));
    const sent = new Set<number>();
    let checked = 0;
    for (const send of sends) {
      for (const r of send.records) {
        const v = JSON.parse(r.value) as { id: number; seller: number };
        if (send.topic === 'persons') sent.add(v.id);
        if (send.topic === 'auctions' && exists.has(v.seller)) {
          expect({ seller: v.seller, before: sent.has(v.seller) }).toEqual({ seller: v.seller, before: true });
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(1500);
  });

  test('keys and partitions: persons by id, auctions by seller, bids round robin ending with one end bid per partition', () => {
    const partitioner = Partitioners.DefaultPartitioner();
    const meta = Array.from({ length: 4 }, (_, i) => ({ partitionId: i, leader: 0 })) as never;
    const partitionOf = (key: string): number =>
      partitioner({ topic: 't', partitionMetadata: meta, message: { key, value: null } });
    const all = (topic: Send['topic']) => sends.filter((s) => s.topic === topic).flatMap((s) => s.records);
    for (const r of all('persons')) expect(r.key).toBe(String((JSON.parse(r.value) as { id: number }).id));
    for (const r of all('auctions')) expect(r.key).toBe(String((JSON.parse(r.value) as { seller: number }).seller));
    const bids = all('bids');
    expect(bids.map((r) => r.partition)).toEqual(bids.map((_, i) => i % 4));
    const ends = bids.slice(-4).map((r) => JSON.parse(r.value) as { auction: number; dateTime: number });
    expect(ends.map((b) => b.auction)).toEqual([-1, -1, -1, -1]);
    // Sellers spread over the partitions as their persons' rows do: the same key, the same partition.
    expect(new Set(all('auctions').map((r) => partitionOf(r.key!))).size).toBe(4);
    expect(all('persons').length + all('auctions').length + bids.length).toBe(events.length);
  });
});
