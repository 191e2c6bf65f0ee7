/**
 * `sluice/testing`'s driver on jobs of every shape — stateless, windowed (tumbling), re-keyed before a
 * sliding window (two stages joined by repartition blocks) — with dead letters, late records, idle
 * advancement by the test's clock and update emission. Outputs are compared with a recomputation of
 * the input (the plain reference of test/support/reference-windows.ts, or counts done here), and
 * partitions with kafkajs's own default partitioner.
 */
import { describe, expect, test } from '@jest/globals';
import { Partitioners } from 'kafkajs';
import { count, defineJob, session, sliding, tumbling, type WindowOptions } from 'sluice';
import { DEFAULT_TEST_START_TIME, testJob, type TestOutput, type TestRecord } from 'sluice/testing';
import { generateClickstream, type PageView } from '../../examples/generator/clickstream.ts';
import { referenceWindows, type RefRecord } from '../support/reference-windows.ts';

/** kafkajs's DefaultPartitioner (murmur2, Kafka's default) for a keyed record. */
function kafkajsPartition(key: string, partitions: number): number {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 0 })) as never;
  return partitioner({ topic: 'any', partitionMetadata, message: { key, value: null } });
}

interface WindowResult {
  key: string | null;
  windowStart: number;
  windowEnd: number;
  value: number;
}

/** Windowed results by `key|windowStart`, failing on a window emitted twice. */
function byWindow(outputs: readonly TestOutput[]): Map<string, number> {
  const found = new Map<string, number>();
  for (const o of outputs) {
    const r = o.value as WindowResult;
    const id = `${r.key}|${r.windowStart}`;
    expect({ id, twice: found.has(id) }).toEqual({ id, twice: false });
    expect(o.key).toBe(r.key);
    found.set(id, r.value);
  }
  return found;
}

const refMap = (results: ReadonlyArray<{ key: string | null; windowStart: number; value: number | null }>) =>
  new Map(results.map((r) => [`${r.key}|${r.windowStart}`, r.value]));

describe('a stateless job', () => {
  const job = defineJob<{ n: number }>({
    name: 'doubling',
    input: { topics: ['numbers'] },
    pipeline: (s) => s.filter((e) => e.n % 3 !== 0).map((e) => ({ n: e.n, double: e.n * 2 })),
    output: { topic: 'doubled' },
  });

  test('outputs every kept record, mapped, with its key and timestamp, in partitions of the default partitioner', async () => {
    const driver = await testJob(job, { partitions: 3, maxBatchRecords: 7 });
    const records: TestRecord[] = Array.from({ length: 60 }, (_, n) => ({
      key: n % 10 === 9 ? null : `k${n % 7}`,
      value: { n },
      timestamp: 5_000 + n,
    }));
    const sent = driver.send(records);
    for (const [i, r] of records.entries()) {
      if (typeof r.key === 'string') expect(sent[i]!.partition).toBe(kafkajsPartition(r.key, 3));
    }
    // Without a key: round robin over the partitions, from 0.
    const unkeyed = sent.filter((_, i) => records[i]!.key === null).map((s) => s.partition);
    expect(unkeyed).toEqual(unkeyed.map((_, i) => i % 3));
    // Offsets run from 0 per partition, in send order.
    for (const p of [0, 1, 2]) {
      const offsets = sent.filter((s) => s.partition === p).map((s) => s.offset);
      expect(offsets).toEqual(offsets.map((_, i) => i));
    }

    const { outputs, deadLetters, batches } = driver.run();
    expect(batches).toBe(Math.ceil(60 / 7));
    expect(deadLetters).toEqual([]);
    const expected = records
      .filter((r) => (r.value as { n: number }).n % 3 !== 0)
      .map((r) => {
        const { n } = r.value as { n: number };
        return { key: r.key ?? null, value: { n, double: n * 2 }, timestamp: r.timestamp };
      });
    const actual = outputs.map((o) => ({ key: o.key, value: o.value, timestamp: o.timestamp }));
    const order = (a: { value: unknown }, b: { value: unknown }) =>
      (a.value as { n: number }).n - (b.value as { n: number }).n;
    expect(actual.sort(order)).toEqual(expected.sort(order));
    for (const o of outputs) {
      expect(o.topic).toBe('doubled');
      if (o.key !== null) expect(o.partition).toBe(kafkajsPartition(o.key, 3));
      expect(new TextDecoder().decode(o.bytes!)).toBe(JSON.stringify(o.value));
    }
    // Per output partition, offsets from 0 in order.
    for (const p of [0, 1, 2]) {
      const offsets = outputs.filter((o) => o.partition === p).map((o) => o.offset);
      expect(offsets).toEqual(offsets.map((_, i) => i));
    }
    expect(driver.outputs()).toEqual(outputs);
  });

  test('refuses records it cannot place or encode, and sends none of their batch', async () => {
    const driver = await testJob(job, { partitions: 2 });
    expect(() => driver.send({ topic: 'elsewhere', value: { n: 1 } })).toThrow(/not an input topic of doubling/);
    expect(() => driver.send([{ value: { n: 1 } }, { partition: 2, value: { n: 2 } }])).toThrow(
      /partition 2 of numbers does not exist/,
    );
    expect(() => driver.send({ value: undefined })).toThrow(/cannot be written as JSON/);
    expect(driver.pending).toBe(0);
    expect(() => driver.advanceTime('soon' as never)).toThrow(/duration/);
  });
});

describe('dead letters, as the service writes them', () => {
  const job = defineJob<{ n: number }>({
    name: 'fragile',
    input: { topics: ['in'] },
    pipeline: (s) =>
      s.map((e) => {
        if (e.n % 10 === 7) throw new Error(`no ${e.n}`);
        return e.n;
      }),
    output: { topic: 'out' },
  });

  test('a throwing map, malformed JSON and an oversized record: code, message, source and the record as it was', async () => {
    const driver = await testJob(job, { maxRecordBytes: 100 });
    const records: TestRecord[] = Array.from({ length: 40 }, (_, n) => {
      if (n % 9 === 4) return { key: `k${n}`, value: `{"n": ${n}`, headers: { trace: `t${n}` }, timestamp: 100 + n };
      if (n === 30) return { key: 'big', value: { n, pad: 'x'.repeat(200) }, timestamp: 100 + n };
      return { key: `k${n}`, value: { n }, headers: { trace: `t${n}` }, timestamp: 100 + n };
    });
    driver.send(records);
    const { outputs, deadLetters } = driver.run();

    const expectedDead: Array<{ offset: number; code: string; message: RegExp }> = [];
    const expectedOut: number[] = [];
    records.forEach((_, n) => {
      if (n % 9 === 4) expectedDead.push({ offset: n, code: 'SLUICE_DESERIALIZE_FAILED', message: /not valid JSON/ });
      else if (n === 30)
        expectedDead.push({ offset: n, code: 'SLUICE_RECORD_TOO_LARGE', message: /exceeds .*\(100\)/ });
      else if (n % 10 === 7)
        expectedDead.push({ offset: n, code: 'SLUICE_USER_CODE_FAILED', message: /map#1 threw.*no / });
      else expectedOut.push(n);
    });
    expect(outputs.map((o) => o.value)).toEqual(expectedOut);
    expect(deadLetters.map((d) => ({ offset: d.source?.offset, code: d.code }))).toEqual(
      expectedDead.map(({ offset, code }) => ({ offset, code })),
    );
    deadLetters.forEach((d, i) => {
      const n = d.source!.offset;
      const record = records[n]!;
      expect(d.message).toMatch(expectedDead[i]!.message);
      expect(d.topic).toBe('fragile-dlq');
      expect(d.offset).toBe(i);
      expect(d.source).toEqual({ topic: 'in', partition: 0, offset: n, timestamp: 100 + n });
      expect(d.headers['sluice-error-code']).toBe(d.code);
      expect(d.headers['sluice-job']).toBe('fragile');
      expect(d.key).toBe(record.key);
      // The record as it was: its value's bytes and its own headers.
      const text = typeof record.value === 'string' ? record.value : JSON.stringify(record.value);
      expect(new TextDecoder().decode(d.bytes!)).toBe(text);
      if (record.headers) expect(d.headers['trace']).toBe(record.headers['trace']);
    });
    expect(driver.late()).toEqual([]);
  });
});

describe('a windowed job (tumbling, no keyBy)', () => {
  const perUser = (options: Pick<WindowOptions, 'emit' | 'idleTimeout'> = {}) =>
    defineJob<PageView>({
      name: 'per-user',
      input: { topics: ['page-views'] },
      eventTime: (e) => e.ts,
      pipeline: (s) =>
        s
          .filter((e) => typeof e.page === 'string')
          .window(tumbling('10s'), { lateness: '5s', ...options })
          .aggregate(count()),
      output: { topic: 'per-user' },
    });

  test('counts per key and window equal the reference; its late records are dead-lettered', async () => {
    const generated = [...generateClickstream({ count: 4_000, seed: 11, eventsPerSecond: 100, users: 40 })];
    const driver = await testJob(perUser(), { partitions: 3, maxBatchRecords: 300 });
    const sent = driver.send(generated.map((g) => ({ key: g.key, value: g.value })));
    const result = driver.run();
    expect(result.openWindows).toBe(0);

    // The reference reads each partition in offset order, as the tasks do.
    const refInput: Array<RefRecord & { offset: number }> = [];
    generated.forEach((g, i) => {
      if (g.event) refInput.push({ ...sent[i]!, key: g.key, eventTime: g.event.ts, value: g.event });
    });
    refInput.sort((a, b) => a.partition - b.partition || a.offset - b.offset);
    const reference = referenceWindows(refInput, {
      kind: 'tumbling',
      sizeMs: 10_000,
      latenessMs: 5_000,
      aggregate: 'count',
    });
    expect(reference.late.length).toBeGreaterThan(3);
    // Flushed: every window closed, those the input left open too.
    expect(byWindow(result.outputs)).toEqual(refMap([...reference.closed, ...reference.open]));
    const lateIds = reference.late.map((i) => `${refInput[i]!.partition}:${refInput[i]!.offset}`);
    expect(result.late.map((d) => `${d.source!.partition}:${d.source!.offset}`).sort()).toEqual(lateIds.sort());
    for (const d of result.late) {
      expect(d.eventTime).toBe((d.value as PageView).ts);
      expect(d.message).toMatch(/behind stream time/);
    }
    const malformed = generated.filter((g) => g.kind === 'malformed').length;
    expect(result.deadLetters.filter((d) => d.code === 'SLUICE_DESERIALIZE_FAILED')).toHaveLength(malformed);
  });

  test('a record behind stream time by more than the lateness is late; one within it still counts', async () => {
    const driver = await testJob(perUser());
    const ts = [1_000, 2_000, 12_000, 21_000, 3_000, 9_000, 16_000];
    const { outputs, late } = driver.run(ts.map((t) => ({ key: 'u', value: { page: '/', user: 'u', ts: t } })));
    expect(late.map((d) => [d.source!.offset, d.eventTime])).toEqual([
      [4, 3_000],
      [5, 9_000],
    ]);
    expect(late[0]!.headers['sluice-event-time']).toBe('3000');
    expect(byWindow(outputs)).toEqual(
      new Map([
        ['u|0', 2],
        ['u|10000', 2],
        ['u|20000', 1],
      ]),
    );
  });

  test('idle advancement by the clock: a window closes idleTimeout after the last record, not before', async () => {
    const driver = await testJob(perUser({ idleTimeout: '30s' }));
    expect(driver.now).toBe(DEFAULT_TEST_START_TIME);
    driver.send([1_000, 5_000, 9_000].map((t) => ({ key: 'u', value: { page: '/', user: 'u', ts: t } })));
    expect(driver.runBatch().outputs).toEqual([]);
    driver.advanceTime(29_999);
    expect(driver.runBatch().outputs).toEqual([]);
    expect(driver.advanceTime(1)).toBe(DEFAULT_TEST_START_TIME + 30_000);
    const batch = driver.runBatch();
    expect(batch.outputs.map((o) => o.value)).toEqual([{ key: 'u', windowStart: 0, windowEnd: 10_000, value: 3 }]);
    // A windowed result carries the publish time: the clock.
    expect(batch.outputs[0]!.timestamp).toBe(DEFAULT_TEST_START_TIME + 30_000);
    expect(driver.openWindows).toBe(0);
  });

  test('update emission: after each batch, the windows it changed, with their counts so far', async () => {
    const driver = await testJob(perUser({ emit: 'update' }));
    const batches: Array<Array<[string, number]>> = [
      [
        ['a', 1_000],
        ['a', 2_000],
        ['b', 3_000],
      ],
      [['a', 4_000]],
      [
        ['b', 12_000],
        ['b', 13_000],
      ],
      [['a', 14_000]],
    ];
    const totals = new Map<string, number>();
    for (const records of batches) {
      driver.send(records.map(([key, ts]) => ({ key, value: { page: '/', user: key, ts } })));
      const changed = new Map<string, number>();
      for (const [key, ts] of records) {
        const id = `${key}|${Math.floor(ts / 10_000) * 10_000}`;
        totals.set(id, (totals.get(id) ?? 0) + 1);
        changed.set(id, totals.get(id)!);
      }
      expect(byWindow(driver.runBatch().outputs)).toEqual(changed);
    }
  });
});

describe('a job with keyBy before a sliding window (two stages, repartition blocks)', () => {
  const perPage = defineJob<PageView>({
    name: 'per-page',
    input: { topics: ['page-views'] },
    eventTime: (e) => e.ts,
    pipeline: (s) =>
      s
        .filter((e) => typeof e.page === 'string')
        .keyBy((e) => e.page)
        .window(sliding('10s', '5s'), { lateness: '5s', idleTimeout: '20s' })
        .aggregate(count()),
    output: { topic: 'per-page' },
  });

  test('counts per page over every input partition equal the reference', async () => {
    const generated = [
      ...generateClickstream({
        count: 3_000,
        seed: 5,
        eventsPerSecond: 50,
        pages: 12,
        lateFraction: 0,
        malformedFraction: 0,
      }),
    ];
    const driver = await testJob(perPage, { partitions: 3, maxBatchRecords: 400 });
    expect(driver.plan.repartitionTopic).toBe('per-page-repartition');
    const sent = driver.send(generated.map((g) => ({ key: g.key, value: g.value })));
    expect(new Set(sent.map((s) => s.partition))).toEqual(new Set([0, 1, 2]));
    const result = driver.run();
    expect(result.openWindows).toBe(0);
    expect(result.deadLetters).toEqual([]);

    // Disorder (at most 3 s) is within the lateness: nothing is late, every record counts in its page's windows.
    const reference = referenceWindows(
      generated.map((g) => ({ partition: 0, key: g.event!.page, eventTime: g.event!.ts, value: g.event })),
      { kind: 'sliding', sizeMs: 10_000, slideMs: 5_000, latenessMs: 5_000, aggregate: 'count' },
    );
    expect(reference.late).toEqual([]);
    const expected = refMap([...reference.closed, ...reference.open]);
    expect(byWindow(result.outputs)).toEqual(expected);
    for (const o of result.outputs) {
      const r = o.value as WindowResult;
      expect(r.windowEnd - r.windowStart).toBe(10_000);
      expect(o.partition).toBe(kafkajsPartition(r.key!, 3));
    }
    // Some page's windows hold records of several input partitions: the shuffle brought them together.
    const partitionsOfPage = new Map<string, Set<number>>();
    generated.forEach((g, i) =>
      partitionsOfPage.set(g.event!.page, (partitionsOfPage.get(g.event!.page) ?? new Set()).add(sent[i]!.partition)),
    );
    expect([...partitionsOfPage.values()].some((s) => s.size === 3)).toBe(true);
  });

  test('a late record downstream names its input record and its place in the shuffle', async () => {
    const driver = await testJob(perPage, { partitions: 2 });
    const view = (user: string, ts: number) => ({ key: user, value: { page: '/p', user, ts } });
    // Both input partitions move to 40 s; then one sends a record for a window closed long ago.
    const users = ['user-1', 'user-2', 'user-3', 'user-4'];
    const byPartition = new Map(users.map((u) => [kafkajsPartition(u, 2), u]));
    const [u0, u1] = [byPartition.get(0)!, byPartition.get(1)!];
    driver.run([view(u0, 1_000), view(u1, 2_000), view(u0, 40_000), view(u1, 40_000)], { flush: false });
    const sent = driver.send(view(u0, 3_000));
    const { late } = driver.run(undefined, { flush: false });
    expect(late).toHaveLength(1);
    const letter = late[0]!;
    expect(letter.source).toEqual({
      topic: 'page-views',
      partition: 0,
      offset: sent[0]!.offset,
      timestamp: DEFAULT_TEST_START_TIME,
    });
    expect(letter.headers['sluice-src']).toBe('page-views:0');
    expect(letter.headers['sluice-pos']).toBe(`${sent[0]!.offset}:0`);
    expect(letter.headers['sluice-enc']).toBe('json');
    expect(letter.key).toBe('/p');
    expect(letter.value).toEqual({ page: '/p', user: u0, ts: 3_000 });
  });

  test('idle advancement crosses the shuffle: upstream idles first, then the aggregating stage', async () => {
    const driver = await testJob(perPage, { partitions: 2 });
    driver.send([{ key: 'a', value: { page: '/p', user: 'a', ts: 7_000 } }]);
    driver.runBatch();
    // Until both input partitions are idle (one never had a record), the aggregating stage waits for them.
    driver.advanceTime(19_999);
    expect(driver.runBatch().outputs).toEqual([]);
    driver.advanceTime(1);
    // Idle now: the aggregating stage follows the largest of them (7 s), which closes nothing yet...
    expect(driver.runBatch().outputs).toEqual([]);
    driver.advanceTime(19_999);
    expect(driver.runBatch().outputs).toEqual([]);
    // ...and its own idle clock runs from there: 7 s + 20 s passes the end + lateness of both windows.
    driver.advanceTime(1);
    expect(driver.runBatch().outputs.map((o) => o.value)).toEqual([
      { key: '/p', windowStart: 0, windowEnd: 10_000, value: 1 },
      { key: '/p', windowStart: 5_000, windowEnd: 15_000, value: 1 },
    ]);
    expect(driver.openWindows).toBe(0);
  });
});

describe('a job with session windows', () => {
  test('a flush closes the last session too: the clock moves past its gap and the lateness', async () => {
    const job = defineJob<{ ts: number }>({
      name: 'sessions',
      input: { topics: ['in'] },
      eventTime: (e) => e.ts,
      pipeline: (s) => s.window(session('5s'), { lateness: '2s' }).aggregate(count()),
      output: { topic: 'out' },
    });
    const driver = await testJob(job);
    const ts = [1_000, 2_000, 6_500, 20_000, 40_000, 41_000];
    const { outputs, openWindows } = driver.run(ts.map((t) => ({ key: 'k', value: { ts: t } })));
    expect(openWindows).toBe(0);
    // Sessions: records less than the gap apart, each ending its last record + the gap.
    const expected: Array<{ start: number; times: number[] }> = [];
    for (const t of ts) {
      const last = expected.at(-1);
      if (last && t < last.times.at(-1)! + 5_000) last.times.push(t);
      else expected.push({ start: t, times: [t] });
    }
    expect(outputs.map((o) => o.value)).toEqual(
      expected.map((e) => ({
        key: 'k',
        windowStart: e.start,
        windowEnd: e.times.at(-1)! + 5_000,
        value: e.times.length,
      })),
    );
  });
});
