/**
 * Stream–table joins end to end, against the real broker and the real service: a partitioned table
 * (co-partitioned with the input) joined exactly-once, with updates and deletes mid-stream; a SIGKILL
 * and restart that restores the table from its topic without reading the stream again; a global table
 * looked up with the `key` option, with an unreadable table record dead-lettered; and a partitioned
 * table whose partition count differs from the input's, refused at start-up. Every output is compared
 * with an independent recomputation of the join.
 */
import { describe, expect, test } from '@jest/globals';
import { admin, onCleanup, uniqueName, waitFor } from '../helpers.ts';
import { metricValue, startService, type RunningService } from '../support/service.ts';
import { follow, newTopic, type ReadRecord, testProducer } from '../support/topics.ts';

const PARTITIONS = 4;
const USERS = 60;
/** The dead member of a killed process is waited for this long before its partitions move. */
const ENV = { SLUICE_SESSION_TIMEOUT: '6s', SLUICE_DELIVERY: 'exactly-once' };

interface Event {
  id: number;
  user: string;
  n: number;
}

const userOf = (i: number): string => `u${i % USERS}`;
const eventsFrom = (first: number, count: number): Event[] =>
  Array.from({ length: count }, (_, i) => ({ id: first + i, user: userOf(first + i), n: (first + i) * 7 }));

/** The recomputed join: per event id, the output value (inner join: events without a row have none). */
function referenceJoin(events: readonly Event[], users: ReadonlyMap<string, string>): Map<number, unknown> {
  const out = new Map<number, unknown>();
  for (const e of events) {
    const name = users.get(e.user);
    if (name !== undefined) out.set(e.id, { id: e.id, user: e.user, n: e.n, name });
  }
  return out;
}

async function produceEvents(topic: string, events: readonly Event[]): Promise<void> {
  const producer = await testProducer();
  for (let i = 0; i < events.length; i += 500) {
    const messages = events.slice(i, i + 500).map((e) => ({ key: e.user, value: JSON.stringify(e) }));
    await producer.send({ topic, acks: -1, messages });
  }
}

/** Writes rows to a table topic, keyed (so partitioned) as the events are; `null` is a tombstone. */
async function produceRows(topic: string, rows: ReadonlyMap<string, unknown>): Promise<void> {
  const producer = await testProducer();
  const messages = [...rows].map(([key, row]) => ({
    key,
    value: row === null ? null : typeof row === 'string' ? row : JSON.stringify(row),
  }));
  await producer.send({ topic, acks: -1, messages });
}

/** Output values by id, and how many records carried each id (exactly-once: one). */
function outputsById(records: readonly ReadRecord[]): { values: Map<number, unknown>; copies: Map<number, number> } {
  const values = new Map<number, unknown>();
  const copies = new Map<number, number>();
  for (const r of records) {
    const value = JSON.parse(r.value!.toString()) as { id: number; user?: string };
    if (value.user !== undefined) expect(r.key).toBe(value.user); // the Kafka key passes through
    values.set(value.id, value);
    copies.set(value.id, (copies.get(value.id) ?? 0) + 1);
  }
  return { values, copies };
}

/** Waits until `records` hold `expected` ids, then a little longer (late duplicates show up too). */
async function expectExactly(records: readonly ReadRecord[], expected: ReadonlyMap<number, unknown>): Promise<void> {
  await waitFor(`${expected.size} joined results`, () => (records.length >= expected.size ? true : undefined), 60_000);
  await new Promise((r) => setTimeout(r, 1500));
  const { values, copies } = outputsById(records);
  expect([...copies.values()].filter((c) => c > 1)).toEqual([]);
  expect(records).toHaveLength(expected.size);
  expect(new Map([...values].sort(([a], [b]) => a - b))).toEqual(new Map([...expected].sort(([a], [b]) => a - b)));
}

async function committed(groupId: string, topic: string): Promise<number[]> {
  const offsets = await (await admin()).fetchOffsets({ groupId, topics: [topic] });
  return offsets
    .flatMap((t) => t.partitions)
    .sort((a, b) => a.partition - b.partition)
    .map((p) => Number(p.offset));
}

async function endOffsets(topic: string): Promise<number[]> {
  const offsets = await (await admin()).fetchTopicOffsets(topic);
  return offsets.sort((a, b) => a.partition - b.partition).map((o) => Number(o.high));
}

async function started(job: string, env: Record<string, string>): Promise<RunningService> {
  const service = await startService({ job, env: { ...ENV, ...env } });
  onCleanup(() => service.stop('SIGKILL'));
  await service.waitReady();
  return service;
}

describe('joinTable against a partitioned table (exactly-once)', () => {
  const name = uniqueName('tj');
  let input: string;
  let tableTopic: string;
  let output: string;
  let first: RunningService;
  let seen: { records: ReadRecord[]; stop(): Promise<void> };
  /** The table as the service should hold it, and every event produced so far. */
  const users = new Map<string, string>();
  const events: Event[] = [];
  /** The recomputed outputs so far: each phase's events joined with the table as it was then. */
  const expected = new Map<number, unknown>();
  const env = (): Record<string, string> => ({
    TEST_JOB_NAME: name,
    TEST_INPUT: input,
    TEST_OUTPUT: output,
    TEST_TABLE: tableTopic,
  });

  test('rows first, then events: the output is the recomputed join; updates and deletes mid-stream are seen by the events after them', async () => {
    input = await newTopic('tj-in', PARTITIONS);
    tableTopic = await newTopic('tj-users', PARTITIONS, { 'cleanup.policy': 'compact' });
    output = uniqueName('tj-out');
    // Users u0–u47 have a row; u48–u59 none (their events are dropped and counted as misses).
    const rows = new Map<string, unknown>();
    for (let u = 0; u < 48; u++) rows.set(`u${u}`, { name: `user ${u}` });
    await produceRows(tableTopic, rows);
    for (const [k, v] of rows) users.set(k, (v as { name: string }).name);

    first = await started('test/fixtures/jobs/table-join.ts', env());
    seen = await follow([output], 'tj-seen');
    const phase1 = eventsFrom(0, 2000);
    events.push(...phase1);
    await produceEvents(input, phase1);
    const expected1 = referenceJoin(phase1, users);
    expect(expected1.size).toBe(1604); // 20 users with 34 events, 28 with 33
    await expectExactly(seen.records, expected1);

    // Mid-stream: u0–u9 renamed, u10–u19 deleted, u48–u53 added. The producer's acknowledgement comes
    // before the next events are produced, so the batch that reads them starts after the table changed:
    // each batch catches the table up to its end first.
    const changes = new Map<string, unknown>();
    for (let u = 0; u < 10; u++) changes.set(`u${u}`, { name: `renamed ${u}` });
    for (let u = 10; u < 20; u++) changes.set(`u${u}`, null);
    for (let u = 48; u < 54; u++) changes.set(`u${u}`, { name: `new ${u}` });
    await produceRows(tableTopic, changes);
    for (const [k, v] of changes) {
      if (v === null) users.delete(k);
      else users.set(k, (v as { name: string }).name);
    }
    const phase2 = eventsFrom(2000, 2000);
    events.push(...phase2);
    await produceEvents(input, phase2);
    for (const [id, value] of [...expected1, ...referenceJoin(phase2, users)]) expected.set(id, value);
    expect(expected.size).toBe(1604 + 1472);
    await expectExactly(seen.records, expected);

    const metrics = await first.metrics();
    expect(metricValue(metrics, 'sluice_table_rows', { table: tableTopic })).toBe(users.size);
    expect(users.size).toBe(44);
    expect(metricValue(metrics, 'sluice_join_misses_total', { table: tableTopic })).toBe(events.length - expected.size);
  });

  test('a SIGKILL and a restart restore the table from its topic, not from the stream: new events join rows from before the restart', async () => {
    expect(seen).toBeDefined();
    // Every result is committed with its input offsets (one transaction per task and batch).
    await waitFor('the input committed to its end', async () => {
      const [offsets, ends] = [await committed(name, input), await endOffsets(input)];
      return offsets.join() === ends.join() ? offsets : undefined;
    });
    const before = await committed(name, input);
    expect((await first.stop('SIGKILL')).signal).toBe('SIGKILL');

    const second = await started('test/fixtures/jobs/table-join.ts', env());
    // Restored before ready: the table's rows are held, no input record was read, nothing committed anew.
    await waitFor('the table restored', async () =>
      metricValue(await second.metrics(), 'sluice_table_rows', { table: tableTopic }) === users.size ? true : undefined,
    );
    expect(metricValue(await second.metrics(), 'sluice_records_in_total', { topic: input })).toBe(0);
    expect(await committed(name, input)).toEqual(before);

    const phase3 = eventsFrom(4000, 1000);
    events.push(...phase3);
    await produceEvents(input, phase3);
    for (const [id, value] of referenceJoin(phase3, users)) expected.set(id, value);
    await expectExactly(seen.records, expected);
    const metrics = await second.metrics();
    expect(metricValue(metrics, 'sluice_records_in_total', { topic: input })).toBe(phase3.length);
    expect(metricValue(metrics, 'sluice_state_restored_records_total')).toBe(0); // no changelog: stateless
    const after = await committed(name, input);
    expect(after.reduce((a, b) => a + b, 0) - before.reduce((a, b) => a + b, 0)).toBe(phase3.length);
    await seen.stop();
    expect((await second.stop('SIGTERM')).code).toBe(0);
  });
});

describe('joinTable against a global table', () => {
  test('any lookup key (the key option), any partition count; an unreadable table record is dead-lettered once and not applied', async () => {
    const input = await newTopic('tj-global-in', PARTITIONS);
    const tableTopic = await newTopic('tj-countries', 3, { 'cleanup.policy': 'compact' });
    const output = uniqueName('tj-global-out');
    const name = uniqueName('tj-global');
    const regions = new Map([
      ['fr', 'eu'],
      ['de', 'eu'],
      ['us', 'na'],
      ['jp', 'apac'],
    ]);
    await produceRows(tableTopic, new Map([...regions].map(([k, region]) => [k, { region }])));
    await produceRows(tableTopic, new Map([['xx', '{"region": unquoted}']]));

    const service = await started('test/fixtures/jobs/global-table-join.ts', {
      TEST_JOB_NAME: name,
      TEST_INPUT: input,
      TEST_OUTPUT: output,
      TEST_TABLE: tableTopic,
    });
    const seen = await follow([output, `${name}-dlq`], 'tj-global-seen');
    const codes = ['fr', 'de', 'us', 'jp', 'br', null, 'xx'];
    const events = Array.from({ length: 1400 }, (_, id) => ({ id, user: `u${id % 37}`, country: codes[id % 7]! }));
    const producer = await testProducer();
    await producer.send({
      topic: input,
      acks: -1,
      messages: events.map((e) => ({ key: e.user, value: JSON.stringify(e) })),
    });
    const expected = new Map(
      events.map((e) => [e.id, { id: e.id, country: e.country, region: regions.get(e.country ?? '') ?? null }]),
    );
    const outputs = (): ReadRecord[] => seen.records.filter((r) => r.topic === output);
    await waitFor('every event joined', () => (outputs().length >= expected.size ? true : undefined));
    await new Promise((r) => setTimeout(r, 1500));
    expect(outputs()).toHaveLength(expected.size);
    expect(outputsById(outputs()).values).toEqual(expected);

    // The unreadable row: one dead letter (worker 0 of the two dead-letters a global table's), naming it.
    const letters = seen.records.filter((r) => r.topic === `${name}-dlq`);
    expect(letters.map((r) => [r.key, r.headers['sluice-error-code'], r.headers['sluice-source-topic']])).toEqual([
      ['xx', 'SLUICE_DESERIALIZE_FAILED', tableTopic],
    ]);
    expect(letters[0]!.headers['sluice-error-message']).toMatch(/^table record: value is not valid JSON/);
    const metrics = await service.metrics();
    expect(metricValue(metrics, 'sluice_table_rows', { table: tableTopic })).toBe(regions.size);
    expect(metricValue(metrics, 'sluice_table_records_unreadable_total', { table: tableTopic })).toBe(1);
    expect(metricValue(metrics, 'sluice_join_misses_total', { table: tableTopic })).toBe(
      events.filter((e) => !regions.has(e.country ?? '')).length,
    );
    await seen.stop();
    expect((await service.stop('SIGTERM')).code).toBe(0);
  });
});

describe('a partitioned table that is not co-partitioned', () => {
  test('is refused at start-up with one line naming the table and both partition counts', async () => {
    const input = await newTopic('tj-bad-in', PARTITIONS);
    const tableTopic = await newTopic('tj-bad-users', 3);
    const service = await startService({
      job: 'test/fixtures/jobs/table-join.ts',
      env: {
        TEST_JOB_NAME: uniqueName('tj-bad'),
        TEST_INPUT: input,
        TEST_OUTPUT: uniqueName('tj-bad-out'),
        TEST_TABLE: tableTopic,
      },
    });
    onCleanup(() => service.stop('SIGKILL'));
    const { code } = await service.exited;
    expect(code).toBe(1);
    const lines = service
      .output()
      .split('\n')
      .filter((l) => l.startsWith('sluice: '));
    expect(lines).toEqual([
      `sluice: [SLUICE_TABLE_NOT_COPARTITIONED] partitioned table "${tableTopic}" has 3 partitions but the input topic "${input}" it is joined against has 4: a partitioned table must be co-partitioned with its stream (same partition count, same keys and partitioner); give the table topic 4 partitions or declare the table { kind: 'global' }`,
    ]);
  });
});
