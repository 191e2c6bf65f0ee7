/** Validation of `table()` declarations and `joinTable` steps by compileJob, and what the plan holds. */
import { describe, expect, test } from '@jest/globals';
import { count, defineJob, table, tumbling, type JobSpec } from '../../src/index.ts';
import { compileJob } from '../../src/job/plan.ts';
import { type Stream } from '../../src/job/stream.ts';
import { issuesOf } from '../support/job-issues.ts';

interface View {
  page: string;
  user: string;
}

const users = table('users');
const pages = table('pages', { kind: 'global', format: 'string' });

function job(pipeline: (s: Stream<View>) => unknown, extra: Record<string, unknown> = {}): JobSpec<View> {
  return {
    name: 'views',
    input: { topics: ['page-views'] },
    output: { topic: 'views-out' },
    pipeline: pipeline as JobSpec<View>['pipeline'],
    ...extra,
  };
}

/** A pipeline written in JavaScript: no types to stop it. */
const untyped = (s: Stream<View>) => s as unknown as Record<string, (...args: unknown[]) => unknown>;

describe('table()', () => {
  test('declares a frozen table: partitioned and JSON unless told otherwise', () => {
    expect(users).toEqual({ topic: 'users', kind: 'partitioned', format: 'json' });
    expect(pages).toEqual({ topic: 'pages', kind: 'global', format: 'string' });
    expect(Object.isFrozen(users)).toBe(true);
  });
});

describe('compileJob with joinTable', () => {
  test('the plan holds each table once, and the join on its operator', () => {
    const plan = compileJob(
      defineJob(
        job((s) =>
          s
            .joinTable(users, (v, u) => ({ v, u }))
            .joinTable(pages, (v) => v, { kind: 'left', key: (v) => v.v.page })
            .joinTable(users, (v) => v, { kind: 'left' }),
        ),
      ),
    );
    expect(plan.tables).toEqual([
      { topic: 'users', kind: 'partitioned', format: 'json' },
      { topic: 'pages', kind: 'global', format: 'string' },
    ]);
    expect(plan.stage1.map((op) => [op.label, op.join?.kind, op.join?.table.topic, typeof op.join?.key])).toEqual([
      ['joinTable#1', 'inner', 'users', 'undefined'],
      ['joinTable#2', 'left', 'pages', 'function'],
      ['joinTable#3', 'left', 'users', 'undefined'],
    ]);
  });

  test('a job without joins has no tables', () => {
    expect(compileJob(job((s) => s.map((v) => v))).tables).toEqual([]);
  });

  test('joins before the keyBy are stage 1, after it stage 2 (a window follows)', () => {
    const plan = compileJob(
      job((s) =>
        s
          .joinTable(users, (v) => v)
          .keyBy((v) => v.page)
          .joinTable(table('by-page'), (v) => v)
          .window(tumbling('1s'))
          .aggregate(count()),
      ),
    );
    expect(plan.stage1.map((op) => op.label)).toEqual(['joinTable#1', 'keyBy#2']);
    expect(plan.stage2.map((op) => op.label)).toEqual(['joinTable#3']);
  });

  test('joinTable with something that is not a table', () => {
    expect(issuesOf(job((s) => untyped(s)['joinTable']!('users', (v: unknown) => v)))).toEqual([
      'pipeline: joinTable#1 expects a table declared with table(topic, options) (got "users")',
    ]);
    expect(
      issuesOf(job((s) => untyped(s)['joinTable']!({ topic: 'users', kind: 'global' }, (v: unknown) => v))),
    ).toEqual(['pipeline: joinTable#1 expects a table declared with table(topic, options) (got an object)']);
  });

  test('the key option on a partitioned table is refused: it is looked up with the stream key', () => {
    // TypeScript refuses it too.
    // @ts-expect-error: `key` is an option of global tables only
    const issues = issuesOf(job((s) => s.joinTable(users, (v) => v, { key: (v: View) => v.user })));
    expect(issues).toEqual([
      'pipeline: joinTable#1: the key option needs a global table; table "users" is partitioned, so it is looked up with the stream\'s key (the key its partitions are chosen by)',
    ]);
  });

  test('unknown options, wrong kinds, formats, functions and keys: every issue at once', () => {
    const bad = table('t', { kind: 'mirror', format: 'avro', size: 3 } as never);
    const issues = issuesOf(
      job((s) => {
        const u = untyped(s);
        u['joinTable']!(users, (v: unknown) => v, { kind: 'outer', timeout: 5 });
        return untyped(
          untyped(u['joinTable']!(pages, 'not a function', { key: 'page' }) as Stream<View>)['joinTable']!(
            bad,
            (v: unknown) => v,
          ) as Stream<View>,
        )['joinTable']!(table('a..b..c/'), (v: unknown) => v, 'left');
      }),
    );
    // The first joinTable is not part of the returned stream (the builder is immutable): only 3 steps.
    expect(issues).toEqual([
      'pipeline: joinTable#1 expects a function (got "not a function")',
      'pipeline: joinTable#1 key must be a function of the event (got "page")',
      'unknown option "size" in table "t" options (allowed: kind, format)',
      'table "t" kind must be "partitioned" or "global" (got "mirror")',
      'table "t" format must be "json" or "string" or "bytes" (got "avro")',
      'pipeline: joinTable#3: table topic "a..b..c/" is not a valid topic name',
      'pipeline: joinTable#3 options must be an object (got "left")',
    ]);
    expect(
      issuesOf(job((s) => untyped(s)['joinTable']!(users, (v: unknown) => v, { kind: 'outer', timeout: 5 }))),
    ).toEqual([
      'unknown option "timeout" in joinTable#1 options (allowed: kind, key)',
      'joinTable#1 kind must be "inner" or "left" (got "outer")',
    ]);
  });

  test('a partitioned table after a keyBy that does not re-partition (no window) is refused; a global one is fine', () => {
    expect(issuesOf(job((s) => s.keyBy((v) => v.page).joinTable(users, (v) => v)))).toEqual([
      "pipeline: joinTable#2 joins the partitioned table \"users\" after keyBy#1, which does not re-partition the stream (no window follows): the table's partitions are not those of the key; join before the keyBy, or declare the table { kind: 'global' }",
    ]);
    expect(compileJob(job((s) => s.keyBy((v) => v.page).joinTable(pages, (v) => v))).tables).toHaveLength(1);
  });

  test('a table on a topic the job reads, writes or owns, or declared twice differently, is refused', () => {
    const issues = issuesOf(
      job((s) =>
        s
          .joinTable(table('page-views'), (v) => v)
          .joinTable(table('views-out', { kind: 'global' }), (v) => v)
          .joinTable(table('views-changelog', { kind: 'global' }), (v) => v)
          .joinTable(table('users', { kind: 'global' }), (v) => v)
          .joinTable(users, (v) => v),
      ),
    );
    expect(issues).toEqual([
      'pipeline: joinTable#1: table "page-views" is an input topic',
      'pipeline: joinTable#2: table "views-out" is the output topic',
      'pipeline: joinTable#3: table "views-changelog" is the job\'s own changelog topic',
      'pipeline: joinTable#5: table "users" is declared twice, as global json and as partitioned json',
    ]);
  });
});
