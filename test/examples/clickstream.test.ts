import { describe, expect, test } from '@jest/globals';
import { Partitioners } from 'kafkajs';
import {
  DEFAULT_START_TIME,
  FLUSH_AHEAD_MS,
  flushPages,
  flushRecords,
  generateClickstream,
  maxEventTime,
  produceClickstream,
  runGenerator,
  type GeneratedRecord,
  type RecordKind,
} from '../../examples/generator/clickstream.ts';
import { createTopic, onCleanup, testBrokers, testKafka, uniqueName, waitFor } from '../helpers.ts';

function kinds(records: GeneratedRecord[]): Record<RecordKind, number> {
  const counts: Record<RecordKind, number> = { ok: 0, 'out-of-order': 0, late: 0, malformed: 0 };
  for (const r of records) counts[r.kind]++;
  return counts;
}

function isJson(value: string): boolean {
  try {
    JSON.parse(value);
    return true;
  } catch {
    return false;
  }
}

describe('generateClickstream', () => {
  test('is deterministic by seed', () => {
    const a = [...generateClickstream({ count: 5000, seed: 42 })];
    const b = [...generateClickstream({ count: 5000, seed: 42 })];
    const c = [...generateClickstream({ count: 5000, seed: 43 })];
    expect(b).toEqual(a);
    expect(c).not.toEqual(a);
  });

  test('produces the configured fractions of out-of-order, late and malformed records', () => {
    const n = 100_000;
    const counts = kinds([
      ...generateClickstream({ count: n, outOfOrderFraction: 0.1, lateFraction: 0.02, malformedFraction: 0.01 }),
    ]);
    // Binomial: the standard deviation is at most ~95 here; 5 of them is far outside chance.
    expect(Math.abs(counts['out-of-order'] - 0.1 * n)).toBeLessThan(500);
    expect(Math.abs(counts.late - 0.02 * n)).toBeLessThan(250);
    expect(Math.abs(counts.malformed - 0.01 * n)).toBeLessThan(160);
    expect(counts.ok).toBe(n - counts['out-of-order'] - counts.late - counts.malformed);
  });

  test('uses defaults of 5% out of order, 0.2% late, 0.1% malformed', () => {
    const n = 200_000;
    const counts = kinds([...generateClickstream({ count: n })]);
    expect(counts['out-of-order'] / n).toBeGreaterThan(0.045);
    expect(counts['out-of-order'] / n).toBeLessThan(0.055);
    expect(counts.late / n).toBeGreaterThan(0.0015);
    expect(counts.late / n).toBeLessThan(0.0025);
    expect(counts.malformed / n).toBeGreaterThan(0.0007);
    expect(counts.malformed / n).toBeLessThan(0.0013);
  });

  test('rejects fractions out of range', () => {
    expect(() => [...generateClickstream({ count: 1, lateFraction: 1.5 })]).toThrow(RangeError);
    expect(() => [...generateClickstream({ count: 1, outOfOrderFraction: 0.6, lateFraction: 0.6 })]).toThrow(
      RangeError,
    );
  });

  test('malformed values are not valid JSON and carry no event', () => {
    const malformed = [...generateClickstream({ count: 20_000, malformedFraction: 0.05 })].filter(
      (r) => r.kind === 'malformed',
    );
    expect(malformed.length).toBeGreaterThan(500);
    for (const r of malformed) {
      expect(isJson(r.value)).toBe(false);
      expect(r.event).toBeUndefined();
    }
  });

  test('late events are 60-120 s behind the largest event time so far; out-of-order ones within maxDisorderMs', () => {
    let maxTs = -Infinity;
    let late = 0;
    let outOfOrder = 0;
    const records = generateClickstream({ count: 50_000, lateFraction: 0.01, maxDisorderMs: 2000, seed: 7 });
    for (const [i, r] of [...records].entries()) {
      if (!r.event) continue;
      const base = DEFAULT_START_TIME + i; // default density: 1000 events/s
      if (r.kind === 'late' && maxTs > -Infinity) {
        late++;
        expect(r.event.ts).toBeLessThanOrEqual(maxTs - 60_000);
        expect(r.event.ts).toBeGreaterThanOrEqual(maxTs - 120_000);
      } else if (r.kind === 'out-of-order') {
        outOfOrder++;
        expect(r.event.ts).toBeLessThan(base);
        expect(r.event.ts).toBeGreaterThanOrEqual(base - 2000);
      } else if (r.kind === 'ok') {
        expect(r.event.ts).toBe(base);
      }
      maxTs = Math.max(maxTs, r.event.ts);
    }
    expect(late).toBeGreaterThan(300);
    expect(outOfOrder).toBeGreaterThan(2000);
  });

  test('event time follows eventsPerSecond from startTime', () => {
    const records = [
      ...generateClickstream({ count: 1000, startTime: 5_000_000, eventsPerSecond: 100, outOfOrderFraction: 0 }),
    ];
    expect(records.filter((r) => r.kind === 'ok').length).toBeGreaterThan(990);
    for (const [i, r] of records.entries()) if (r.kind === 'ok') expect(r.event?.ts).toBe(5_000_000 + i * 10);
  });

  test('keys are the user; values are the event as JSON', () => {
    for (const r of generateClickstream({ count: 10_000, malformedFraction: 0.01 })) {
      expect(r.key).toMatch(/^(user|bot)-\d+$/);
      if (r.event) {
        expect(r.key).toBe(r.event.user);
        expect(JSON.parse(r.value)).toEqual(r.event);
      }
    }
  });

  test('pages and users are skewed, and some users are bots', () => {
    const pages = new Map<string, number>();
    const users = new Map<string, number>();
    for (const r of generateClickstream({ count: 50_000, pages: 40, users: 500 })) {
      if (!r.event) continue;
      pages.set(r.event.page, (pages.get(r.event.page) ?? 0) + 1);
      users.set(r.event.user, (users.get(r.event.user) ?? 0) + 1);
    }
    const byPopularity = [...pages.values()].sort((a, b) => b - a);
    expect(pages.size).toBeLessThanOrEqual(40);
    expect(pages.get('/')).toBe(byPopularity[0]);
    expect(byPopularity[0] ?? 0).toBeGreaterThan(5 * (byPopularity[19] ?? 0));
    expect(users.size).toBeGreaterThan(300);
    expect([...users.keys()].some((u) => u.startsWith('bot-'))).toBe(true);
    const userCounts = [...users.values()].sort((a, b) => b - a);
    expect(userCounts[0] ?? 0).toBeGreaterThan(10 * (userCounts[userCounts.length - 1] ?? 0));
  });
});

describe('flush records', () => {
  test('flushPages reaches every partition of a page-keyed topic through the default partitioner', () => {
    for (const partitions of [1, 3, 8]) {
      const pages = flushPages(partitions);
      expect(pages).toHaveLength(partitions);
      const partitioner = Partitioners.DefaultPartitioner();
      const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 0 })) as never;
      const reached = pages.map((page) =>
        partitioner({ topic: 'x', partitionMetadata, message: { key: page, value: null } }),
      );
      expect(new Set(reached).size).toBe(partitions);
    }
  });

  test('flushRecords puts one record per partition far after the largest event time', () => {
    const records = [...generateClickstream({ count: 3000, seed: 9, malformedFraction: 0.01 })];
    const maxTs = maxEventTime(records);
    expect(maxTs).toBe(Math.max(...records.flatMap((r) => (r.event ? [r.event.ts] : []))));
    expect(maxEventTime([])).toBe(-Infinity);
    const flush = flushRecords(maxTs, ['/a', '/b']);
    expect(flush).toEqual([
      {
        partition: 0,
        key: 'flush-0',
        value: JSON.stringify({ page: '/a', user: 'flush-0', ts: maxTs + FLUSH_AHEAD_MS }),
      },
      {
        partition: 1,
        key: 'flush-1',
        value: JSON.stringify({ page: '/b', user: 'flush-1', ts: maxTs + FLUSH_AHEAD_MS }),
      },
    ]);
  });
});

describe('producing to Kafka', () => {
  test('produceClickstream sends every record, keyed by user', async () => {
    const topic = await createTopic(uniqueName('clickstream'), 4);
    const producer = testKafka().producer({ createPartitioner: Partitioners.DefaultPartitioner });
    await producer.connect();
    onCleanup(() => producer.disconnect());
    const records = [...generateClickstream({ count: 2500, seed: 3 })];
    expect(await produceClickstream(producer, topic, records, { batchSize: 300 })).toBe(2500);

    const consumer = testKafka().consumer({ groupId: uniqueName('clickstream-check') });
    await consumer.connect();
    onCleanup(() => consumer.disconnect());
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const received: Array<{ key: string; value: string }> = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        received.push({ key: message.key?.toString() ?? '', value: message.value?.toString() ?? '' });
      },
    });
    await waitFor('all records', () => (received.length >= records.length ? true : undefined));
    const sortKey = (r: { key: string; value: string }): string => `${r.key}\u0000${r.value}`;
    const expected = records.map((r) => ({ key: r.key, value: r.value }));
    expect(received.map(sortKey).sort()).toEqual(expected.map(sortKey).sort());
  });

  test('runGenerator produces live events at about the requested rate until aborted', async () => {
    const topic = await createTopic(uniqueName('clickstream-live'), 2);
    const abort = new AbortController();
    const started = Date.now();
    const running = runGenerator({ brokers: testBrokers(), topic, ratePerSecond: 1000, signal: abort.signal });
    await new Promise((r) => setTimeout(r, 2000));
    abort.abort();
    const stats = await running;
    const elapsedS = (Date.now() - started) / 1000;
    expect(stats.sent).toBeGreaterThan(1000);
    expect(stats.sent).toBeLessThanOrEqual(1000 * elapsedS + 1);

    const admin = testKafka().admin();
    await admin.connect();
    onCleanup(() => admin.disconnect());
    const offsets = await admin.fetchTopicOffsets(topic);
    expect(offsets.reduce((n, p) => n + Number(p.high), 0)).toBe(stats.sent);
  });

  test('runGenerator stops after limit records, with event times close to now', async () => {
    const topic = await createTopic(uniqueName('clickstream-limit'), 1);
    const before = Date.now();
    const stats = await runGenerator({
      brokers: testBrokers(),
      topic,
      ratePerSecond: 5000,
      limit: 700,
      lateFraction: 0,
      malformedFraction: 0,
      signal: new AbortController().signal,
    });
    expect(stats.sent).toBe(700);
    const consumer = testKafka().consumer({ groupId: uniqueName('clickstream-limit-check') });
    await consumer.connect();
    onCleanup(() => consumer.disconnect());
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const times: number[] = [];
    await consumer.run({
      eachMessage: async ({ message }) => {
        times.push((JSON.parse(message.value?.toString() ?? '{}') as { ts: number }).ts);
      },
    });
    await waitFor('all records', () => (times.length >= 700 ? true : undefined));
    for (const ts of times) {
      expect(ts).toBeGreaterThanOrEqual(before - 3000);
      expect(ts).toBeLessThanOrEqual(Date.now());
    }
  });
});
