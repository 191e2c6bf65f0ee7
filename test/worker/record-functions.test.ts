/**
 * The join operator (`joinTable` in record-functions.ts), run by the tasks as a worker runs them (no
 * threads, no Kafka): inner and left joins, misses, the lookup key (the Kafka key, the keyBy key, a
 * global table's `key` option), user code that throws (dead letters), tables read between batches, and
 * both stages of a re-keyed job.
 */
import { describe, expect, test } from '@jest/globals';
import { defineJob, sum, table, tumbling, type JobSpec } from '../../src/index.ts';
import { compileJob, type JobPlan, type TablePlan } from '../../src/job/plan.ts';
import { NO_PROGRESS } from '../../src/pool/progress.ts';
import { type DeadLetter, type PartitionResult } from '../../src/pool/protocol.ts';
import { type TableAccess, TableStore } from '../../src/state/table-store.ts';
import { BLOCK_HEADER, SOURCE_HEADER } from '../../src/wire/headers.ts';
import { readRecords, RecordWriter } from '../../src/wire/record-codec.ts';
import { partitionFor } from '../../src/wire/repartition-block.ts';
import { createTask } from '../../src/worker/create-task.ts';
import { type Task } from '../../src/worker/task.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const WALL = Date.now();

interface In {
  offset: number;
  key?: string | null;
  value: unknown;
  timestamp?: number;
  headers?: Array<[string, string]>;
}

function pack(records: readonly In[]): ArrayBuffer {
  const writer = new RecordWriter();
  for (const r of records) {
    const value = r.value instanceof Uint8Array ? r.value : enc.encode(JSON.stringify(r.value));
    const headers = (r.headers ?? []).map(([n, v]) => [n, enc.encode(v)] as const);
    writer.write(r.offset, r.timestamp ?? 1_000 + r.offset, r.key == null ? null : enc.encode(r.key), value, headers);
  }
  return writer.finish();
}

const outputsOf = (r: PartitionResult) =>
  [...readRecords(r.outputs)].map((o) => ({
    key: o.key && dec.decode(o.key),
    value: JSON.parse(dec.decode(o.value!)) as unknown,
  }));

const letterOf = (d: DeadLetter) =>
  Object.fromEntries(d.headers.map(([n, v]) => [n, typeof v === 'string' ? v : dec.decode(v)]));

/** Table stores by `topic:partition` (a global table's under partition -1), and what the tasks asked for. */
class Tables implements TableAccess {
  readonly stores = new Map<string, TableStore>();
  readonly asked: string[] = [];
  view(t: TablePlan, partition: number): TableStore {
    const id = `${t.topic}:${t.kind === 'global' ? -1 : partition}`;
    this.asked.push(`${t.topic}:${partition}`);
    let store = this.stores.get(id);
    if (!store) this.stores.set(id, (store = new TableStore(t)));
    return store;
  }
  /** Writes rows (null: a tombstone) as the table topic's next records. */
  put(t: TablePlan, partition: number, rows: Record<string, unknown>): void {
    const store = this.view(t, partition);
    let offset = store.position(t.kind === 'global' ? 0 : partition);
    const records = Object.entries(rows).map(([key, value]) => ({
      offset: offset++,
      key: enc.encode(key),
      value: value === null ? null : enc.encode(JSON.stringify(value)),
    }));
    store.apply(t.kind === 'global' ? 0 : partition, records, offset);
  }
}

function plan<T>(pipeline: JobSpec<T>['pipeline']): JobPlan {
  return compileJob(defineJob<T>({ name: 'job', input: { topics: ['in'] }, output: { topic: 'out' }, pipeline }));
}

function taskOf(
  p: JobPlan,
  tables: TableAccess | undefined,
  topic = 'in',
  partition = 0,
  repartitionPartitions = 1,
): Task {
  const task = createTask(
    {
      plan: p,
      maxRecordBytes: 1_000_000,
      sources: ['in:0', 'in:1'],
      repartitionPartitions,
      progress: NO_PROGRESS,
      ...(tables ? { tables } : {}),
    },
    topic,
    partition,
    { committedOffset: null, metadata: null },
  );
  task.restored();
  return task;
}

interface Click {
  user: string;
  page: string;
  n: number;
}
interface User {
  name: string;
  country: string;
}

const users = table<User>('users');
const usersPlan: TablePlan = { topic: 'users', kind: 'partitioned', format: 'json' };
const countries = table<{ region: string }>('countries', { kind: 'global' });
const countriesPlan: TablePlan = { topic: 'countries', kind: 'global', format: 'json' };

const clicks: In[] = [
  { offset: 0, key: 'u1', value: { user: 'u1', page: 'home', n: 1 } },
  { offset: 1, key: 'u2', value: { user: 'u2', page: 'about', n: 2 } },
  { offset: 2, key: 'u3', value: { user: 'u3', page: 'home', n: 3 } },
  { offset: 3, key: null, value: { user: 'anon', page: 'home', n: 4 } },
  { offset: 4, key: 'u1', value: { user: 'u1', page: 'faq', n: 5 } },
];

describe('joinTable in a stateless task', () => {
  test('inner: events whose key has a row are enriched, the others dropped and counted as misses', () => {
    const p = plan<Click>((s) => s.joinTable(users, (e, u) => ({ page: e.page, name: u.name })));
    const tables = new Tables();
    tables.put(usersPlan, 3, { u1: { name: 'Ann', country: 'fr' }, u2: { name: 'Bob', country: 'de' } });
    const result = taskOf(p, tables, 'in', 3).process(pack(clicks), WALL, WALL, true);
    expect(tables.asked).toContain('users:3'); // the task of partition 3 reads table partition 3
    expect(outputsOf(result)).toEqual([
      { key: 'u1', value: { page: 'home', name: 'Ann' } },
      { key: 'u2', value: { page: 'about', name: 'Bob' } },
      { key: 'u1', value: { page: 'faq', name: 'Ann' } },
    ]);
    expect(result.dead).toEqual([]);
    expect(tables.stores.get('users:3')!.misses).toBe(2); // u3, and the record without a key
  });

  test('left: events without a row reach the function with undefined', () => {
    const p = plan<Click>((s) => s.joinTable(users, (e, u) => ({ n: e.n, name: u?.name ?? null }), { kind: 'left' }));
    const tables = new Tables();
    tables.put(usersPlan, 0, { u2: { name: 'Bob', country: 'de' } });
    const result = taskOf(p, tables).process(pack(clicks), WALL, WALL, true);
    expect(outputsOf(result).map((o) => o.value)).toEqual([
      { n: 1, name: null },
      { n: 2, name: 'Bob' },
      { n: 3, name: null },
      { n: 4, name: null },
      { n: 5, name: null },
    ]);
    expect(tables.stores.get('users:0')!.misses).toBe(4);
  });

  test('a join function that throws dead-letters its record (SLUICE_USER_CODE_FAILED) and the batch goes on', () => {
    const p = plan<Click>((s) =>
      s
        .map((e) => e)
        .joinTable(users, (e, u) => {
          if (u.name === 'Bob') throw new Error('no Bobs');
          return `${e.page}:${u.name}`;
        }),
    );
    const tables = new Tables();
    tables.put(usersPlan, 0, { u1: { name: 'Ann', country: 'fr' }, u2: { name: 'Bob', country: 'de' } });
    const result = taskOf(p, tables).process(pack(clicks), WALL, WALL, true);
    expect([...readRecords(result.outputs)].map((o) => dec.decode(o.value!))).toEqual(['home:Ann', 'faq:Ann']);
    expect(result.dead).toHaveLength(1);
    const letter = letterOf(result.dead[0]!);
    expect(letter['sluice-error-code']).toBe('SLUICE_USER_CODE_FAILED');
    expect(letter['sluice-error-message']).toBe('joinTable#2 threw Error: no Bobs');
    expect(letter['sluice-source-offset']).toBe('1');
  });

  test('the table as the batch finds it: an update or a delete between batches is seen by the next one', () => {
    const p = plan<Click>((s) => s.joinTable(users, (e, u) => `${e.n}:${u.name}`));
    const tables = new Tables();
    tables.put(usersPlan, 0, { u1: { name: 'Ann', country: 'fr' } });
    const task = taskOf(p, tables);
    const batch = (offset: number) => pack([{ offset, key: 'u1', value: { user: 'u1', page: 'x', n: offset } }]);
    const values = (r: PartitionResult) => [...readRecords(r.outputs)].map((o) => dec.decode(o.value!));
    expect(values(task.process(batch(0), WALL, WALL, true))).toEqual(['0:Ann']);
    tables.put(usersPlan, 0, { u1: { name: 'Anne', country: 'fr' } });
    expect(values(task.process(batch(1), WALL, WALL, true))).toEqual(['1:Anne']);
    tables.put(usersPlan, 0, { u1: null });
    expect(values(task.process(batch(2), WALL, WALL, true))).toEqual([]);
  });

  test('a global table with a key option: any key, null for none; a key function that throws or returns an object dead-letters', () => {
    const p = plan<Click & { country?: unknown }>((s) =>
      s.joinTable(countries, (e, c) => ({ n: e.n, region: c.region }), {
        key: (e) => {
          if (e.country === 'boom') throw new Error('bad country');
          return e.country as string | null;
        },
      }),
    );
    const tables = new Tables();
    tables.put(countriesPlan, 0, { fr: { region: 'eu' }, '7': { region: 'numbered' } });
    const result = taskOf(p, tables, 'in', 1).process(
      pack([
        { offset: 0, key: 'a', value: { n: 0, country: 'fr' } },
        { offset: 1, key: 'b', value: { n: 1, country: 'xx' } },
        { offset: 2, key: 'c', value: { n: 2, country: null } },
        { offset: 3, key: 'd', value: { n: 3, country: 7 } },
        { offset: 4, key: 'e', value: { n: 4, country: 'boom' } },
        { offset: 5, key: 'f', value: { n: 5, country: { nested: true } } },
      ]),
      WALL,
      WALL,
      true,
    );
    expect(outputsOf(result)).toEqual([
      { key: 'a', value: { n: 0, region: 'eu' } },
      { key: 'd', value: { n: 3, region: 'numbered' } },
    ]);
    expect(tables.stores.get('countries:-1')!.misses).toBe(2);
    expect(result.dead.map((d) => letterOf(d)['sluice-error-message'])).toEqual([
      'joinTable#1 key threw Error: bad country',
      'joinTable#1 key returned object, not a string or number',
    ]);
  });

  test('after a keyBy a global table is looked up with the keyBy key; the output key stays the keyBy key', () => {
    const p = plan<Click>((s) => s.keyBy((e) => e.page).joinTable(countries, (e, c) => `${e.n}@${c.region}`));
    const tables = new Tables();
    tables.put(countriesPlan, 0, { home: { region: 'front' } });
    const result = taskOf(p, tables).process(pack(clicks), WALL, WALL, true);
    expect([...readRecords(result.outputs)].map((o) => [dec.decode(o.key!), dec.decode(o.value!)])).toEqual([
      ['home', '1@front'],
      ['home', '3@front'],
      ['home', '4@front'],
    ]);
  });

  test('a join before a keyBy in a stateless job looks up the Kafka key, though the keyBy replaces it', () => {
    const p = plan<Click>((s) => s.joinTable(users, (e, u) => ({ ...e, country: u.country })).keyBy((e) => e.country));
    const tables = new Tables();
    tables.put(usersPlan, 0, { u1: { name: 'Ann', country: 'fr' }, u3: { name: 'Cy', country: 'it' } });
    const result = taskOf(p, tables).process(pack(clicks), WALL, WALL, true);
    expect([...readRecords(result.outputs)].map((o) => dec.decode(o.key!))).toEqual(['fr', 'it', 'fr']);
  });

  test('without tables in the context every lookup misses: an inner join drops everything', () => {
    const p = plan<Click>((s) => s.joinTable(users, (e) => e));
    const result = taskOf(p, undefined).process(pack(clicks), WALL, WALL, true);
    expect(result.outputCount).toBe(0);
    expect(result.dead).toEqual([]);
  });
});

describe('joinTable in a re-keyed windowed job', () => {
  // Stage 1 joins on the Kafka key (the input partition's table partition), stage 2 on the keyBy key
  // (the repartition partition's table partition).
  const pages = table<{ weight: number }>('pages');
  const pagesPlan: TablePlan = { topic: 'pages', kind: 'partitioned', format: 'json' };
  const rekeyed = compileJob(
    defineJob<Click>({
      name: 'job',
      input: { topics: ['in'] },
      eventTime: (e) => e.n * 1000,
      pipeline: (s) =>
        s
          .joinTable(users, (e, u) => ({ ...e, country: u.country }))
          .keyBy((e) => e.page)
          .joinTable(pages, (e, p) => e.n * (p?.weight ?? 1), { kind: 'left' })
          .window(tumbling('10s'), { emit: 'update', idleTimeout: 0 })
          .aggregate(sum()),
      output: { topic: 'out' },
    }),
  );

  test('stage 1 joins with the input partition of the Kafka key, stage 2 with the repartition partition of the keyBy key', () => {
    expect(rekeyed.stage1.map((o) => o.kind)).toEqual(['joinTable', 'keyBy']);
    expect(rekeyed.stage2.map((o) => o.kind)).toEqual(['joinTable']);
    const tables = new Tables();
    tables.put(usersPlan, 1, { u1: { name: 'Ann', country: 'fr' }, u2: { name: 'Bob', country: 'de' } });
    const r1 = taskOf(rekeyed, tables, 'in', 1, 2).process(pack(clicks), WALL, WALL, true);
    expect(tables.asked).toContain('users:1');
    expect(r1.repartitionCount).toBe(3); // u3 and the keyless record have no user row
    // Each page's row is in the table partition its key is partitioned to, as the repartition topic's.
    const weights: Record<string, number> = { home: 10, about: 100 };
    for (const [page, weight] of Object.entries(weights)) {
      tables.put(pagesPlan, partitionFor(enc.encode(page), 2), { [page]: { weight } });
    }
    const sums = new Map<string, unknown>();
    for (const partition of [0, 1]) {
      const blocks = r1.repartition
        .filter((block) => block.partition === partition)
        .map((block, i): In => ({
          offset: i,
          key: null,
          value: block.data,
          headers: [
            [SOURCE_HEADER, 'in:1'],
            [BLOCK_HEADER, '2'],
          ],
        }));
      const r2 = taskOf(rekeyed, tables, 'job-repartition', partition, 2).process(pack(blocks), WALL, WALL, true);
      expect(r2.dead).toEqual([]);
      for (const o of outputsOf(r2)) sums.set(o.key!, (o.value as { value: unknown }).value);
    }
    // home: n 1 × 10; about: n 2 × 100; faq has no page row (left join): n 5 × 1.
    expect(Object.fromEntries(sums)).toEqual({ home: 10, about: 200, faq: 5 });
    const pageMisses = [...tables.stores.entries()].filter(([id]) => id.startsWith('pages:'));
    expect(pageMisses.reduce((n, [, store]) => n + store.misses, 0)).toBe(1);
  });
});
