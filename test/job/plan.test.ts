import { describe, expect, test } from '@jest/globals';
import { JobValidationError } from '../../src/errors.ts';
import { defineJob, isJobDefinition, type JobSpec } from '../../src/job/define-job.ts';
import { compileJob } from '../../src/job/plan.ts';
import { type Stream } from '../../src/job/stream.ts';
import { issuesOf } from '../support/job-issues.ts';
import { avg, count, custom, max, min, sum } from '../../src/windows/aggregators.ts';
import { session, sliding, tumbling } from '../../src/windows/assigners.ts';

interface View {
  page: string;
  user: string;
  ts: number;
}

const base: JobSpec<View> = {
  name: 'views',
  input: { topics: ['page-views'] },
  pipeline: (s) => s.map((v) => v.page),
  output: { topic: 'views-out' },
};

/** A plain-object job (what JavaScript users may export), with overrides applied. */
function job(overrides: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...base, ...overrides };
}

function expectIssue(definition: unknown, fragment: string): void {
  expect(issuesOf(definition)).toEqual(expect.arrayContaining([expect.stringContaining(fragment)]));
}

describe('defineJob', () => {
  test('returns a frozen, branded copy', () => {
    const spec = { ...base, input: { topics: ['page-views'] } };
    const def = defineJob(spec);
    expect(isJobDefinition(def)).toBe(true);
    expect(isJobDefinition(spec)).toBe(false);
    expect(Object.isFrozen(def)).toBe(true);
    expect(Object.isFrozen(def.input)).toBe(true);
    expect(Object.isFrozen(def.input.topics)).toBe(true);
    spec.input.topics.push('other');
    expect(def.input.topics).toEqual(['page-views']);
    expect(Object.keys(def)).toEqual(Object.keys(spec));
  });

  test('the brand is a registry symbol, readable by another copy of the module', () => {
    const def = defineJob(base);
    expect((def as unknown as Record<symbol, unknown>)[Symbol.for('sluice.job')]).toBe(true);
  });

  test('keeps unknown fields, so that validation can name them', () => {
    const def = defineJob({ ...base, outptu: { topic: 'x' } } as JobSpec<View>);
    expectIssue(def, 'unknown field "outptu" in job');
  });
});

describe('compileJob: valid jobs and defaults', () => {
  test('a defineJob job and a plain object compile the same way', () => {
    const a = compileJob(defineJob(base));
    const b = compileJob(job());
    expect(a.name).toBe('views');
    expect(b.name).toBe('views');
    expect({ ...a, stage1: undefined }).toEqual({ ...b, stage1: undefined });
  });

  test('defaults', () => {
    const plan = compileJob(job());
    expect(plan).toMatchObject({
      name: 'views',
      inputTopics: ['page-views'],
      format: 'json',
      eventTime: undefined,
      batchIntervalMs: 1000,
      maxBatchRecords: 50_000,
      outputTopic: 'views-out',
      dlqTopic: 'views-dlq',
      repartitionTopic: undefined,
      changelogTopic: undefined,
      delivery: 'exactly-once',
      stage2: [],
      window: undefined,
    });
    expect(Object.isFrozen(plan)).toBe(true);
  });

  test('window defaults', () => {
    const plan = compileJob(job({ pipeline: (s: Stream<View>) => s.window(tumbling('10s')).aggregate(count()) }));
    expect(plan.window).toMatchObject({
      assigner: { kind: 'tumbling', sizeMs: 10_000, slideMs: 10_000 },
      latenessMs: 0,
      emit: 'final',
      idleTimeoutMs: 30_000,
      time: 'event',
    });
    expect(plan.window?.aggregator.name).toBe('count');
    // A window is state: it is kept in the job's changelog topic.
    expect(plan.changelogTopic).toBe('views-changelog');
    expect(plan.repartitionTopic).toBeUndefined();
  });

  test('explicit values', () => {
    const eventTime = (v: View): number => v.ts;
    const plan = compileJob(
      job({
        input: { topics: ['a', 'b'], format: 'string' },
        eventTime,
        batchInterval: '250ms',
        maxBatchRecords: 10,
        delivery: 'at-least-once',
        pipeline: (s: Stream<View>) =>
          s
            .window(sliding('1m', '10s'), { lateness: '5s', emit: 'update', idleTimeout: 0, time: 'processing' })
            .aggregate(sum((v) => v.ts)),
      }),
    );
    expect(plan).toMatchObject({
      inputTopics: ['a', 'b'],
      format: 'string',
      batchIntervalMs: 250,
      maxBatchRecords: 10,
      delivery: 'at-least-once',
      changelogTopic: 'views-changelog',
    });
    expect(plan.eventTime).toBe(eventTime);
    expect(plan.window).toMatchObject({
      assigner: { kind: 'sliding', sizeMs: 60_000, slideMs: 10_000 },
      latenessMs: 5000,
      emit: 'update',
      idleTimeoutMs: 0,
      time: 'processing',
    });
  });

  test('numeric durations are milliseconds; 10ms is the smallest batch interval', () => {
    expect(compileJob(job({ batchInterval: 10 })).batchIntervalMs).toBe(10);
  });

  test('reduce() compiles to the reduce aggregator', () => {
    const plan = compileJob(
      job({
        pipeline: (s: Stream<View>) =>
          s
            .map((v) => v.ts)
            .window(tumbling(1000))
            .reduce((a, b) => Math.max(a, b)),
      }),
    );
    const agg = plan.window?.aggregator;
    expect(agg?.name).toBe('reduce');
    const acc = [3, 9, 4].reduce((a, v) => agg!.add(a, v), agg!.init());
    expect(agg!.result(acc)).toBe(9);
  });

  test('the pipeline may return the root stream itself', () => {
    const plan = compileJob(job({ pipeline: (s: Stream<View>) => s }));
    expect(plan.stage1).toEqual([]);
  });
});

describe('compileJob: stage split', () => {
  const f = {
    filter: (v: unknown) => v !== null,
    map: (v: unknown) => v,
    key: (v: unknown) => String(v),
    flat: (v: unknown) => [v],
  };

  test('stateless job: every op in stage 1, a keyBy does not repartition', () => {
    const plan = compileJob(
      job({ pipeline: (s: Stream<unknown>) => s.filter(f.filter).keyBy(f.key).map(f.map).flatMap(f.flat) }),
    );
    expect(plan.repartitionTopic).toBeUndefined();
    expect(plan.changelogTopic).toBeUndefined();
    expect(plan.stage1.map((op) => op.label)).toEqual(['filter#1', 'keyBy#2', 'map#3', 'flatMap#4']);
    expect(plan.stage1.map((op) => op.fn)).toEqual([f.filter, f.key, f.map, f.flat]);
    expect(plan.stage2).toEqual([]);
    expect(plan.window).toBeUndefined();
  });

  test('window without keyBy: grouped by the record key, no repartition', () => {
    const plan = compileJob(
      job({
        pipeline: (s: Stream<unknown>) => s.filter(f.filter).map(f.map).window(tumbling('1s')).aggregate(count()),
      }),
    );
    expect(plan.repartitionTopic).toBeUndefined();
    expect(plan.stage1.map((op) => op.label)).toEqual(['filter#1', 'map#2']);
    expect(plan.stage2).toEqual([]);
    expect(plan.window).toBeDefined();
  });

  test('keyBy before a window: stage 1 up to and including keyBy, stage 2 after it', () => {
    const plan = compileJob(
      job({
        pipeline: (s: Stream<unknown>) =>
          s.filter(f.filter).keyBy(f.key).map(f.map).flatMap(f.flat).window(tumbling('1s')).aggregate(count()),
      }),
    );
    expect(plan.repartitionTopic).toBe('views-repartition');
    expect(plan.changelogTopic).toBe('views-changelog');
    expect(plan.stage1.map((op) => `${op.kind}:${op.label}`)).toEqual(['filter:filter#1', 'keyBy:keyBy#2']);
    expect(plan.stage2.map((op) => op.label)).toEqual(['map#3', 'flatMap#4']);
  });

  test('keyBy first', () => {
    const plan = compileJob(
      job({ pipeline: (s: Stream<unknown>) => s.keyBy(f.key).window(tumbling('1s')).aggregate(count()) }),
    );
    expect(plan.stage1.map((op) => op.label)).toEqual(['keyBy#1']);
    expect(plan.stage2).toEqual([]);
  });

  test('builders are immutable: branching from one stream does not mix the branches', () => {
    let other: Stream<unknown> | undefined;
    const plan = compileJob(
      job({
        pipeline: (s: Stream<unknown>) => {
          const filtered = s.filter(f.filter);
          other = filtered.map(f.map).map(f.map);
          return filtered.keyBy(f.key);
        },
      }),
    );
    expect(other).toBeDefined();
    expect(plan.stage1.map((op) => op.label)).toEqual(['filter#1', 'keyBy#2']);
  });
});

describe('compileJob: the job object', () => {
  test('not an object', () => {
    expect(issuesOf(undefined)).toEqual([expect.stringContaining('job must be an object created by defineJob()')]);
    expectIssue(42, 'job must be an object');
    expectIssue([], 'job must be an object');
  });

  test('unknown fields', () => {
    expectIssue(job({ outptu: { topic: 'x' } }), 'unknown field "outptu" in job');
    expectIssue(
      job({ outptu: {} }),
      'allowed: name, input, eventTime, batchInterval, maxBatchRecords, delivery, pipeline, output',
    );
  });

  test('missing required fields are each reported', () => {
    expect(issuesOf({})).toEqual([
      'name is required',
      'input is required',
      'output is required',
      'pipeline is required',
    ]);
  });
});

describe('compileJob: name', () => {
  test.each(['a b', '', 'x'.repeat(201), 'ünïcode', 42])('%p is refused', (name) => {
    expectIssue(job({ name }), 'name ');
    expectIssue(job({ name }), 'is invalid');
  });
  test.each(['a', 'A.b_c-1', 'x'.repeat(200)])('%p is accepted', (name) => {
    expect(compileJob(job({ name })).name).toBe(name);
  });
});

describe('compileJob: input', () => {
  test('shape', () => {
    expectIssue(job({ input: 'topic' }), 'input must be an object');
    expectIssue(job({ input: {} }), 'input.topics is required');
    expectIssue(job({ input: { topics: 'a' } }), 'input.topics must be an array');
    expectIssue(job({ input: { topics: [] } }), 'input.topics must list at least one topic');
  });

  test('topic names', () => {
    expectIssue(job({ input: { topics: ['ok', 'a b'] } }), 'input.topics[1] "a b" is not a valid topic name');
    expectIssue(job({ input: { topics: [''] } }), 'input.topics[0] "" is not a valid topic name');
    expectIssue(job({ input: { topics: ['..'] } }), 'input.topics[0] ".." is not a valid topic name');
    expectIssue(job({ input: { topics: ['x'.repeat(250)] } }), 'input.topics[0]');
    expectIssue(job({ input: { topics: [7] } }), 'input.topics[0] 7 is not a valid topic name');
    expect(compileJob(job({ input: { topics: ['x'.repeat(249)] } })).inputTopics).toHaveLength(1);
  });

  test('topics are distinct', () => {
    expectIssue(job({ input: { topics: ['a', 'b', 'a'] } }), 'input.topics[2] "a" is listed more than once');
  });

  test('format', () => {
    expectIssue(job({ input: { topics: ['a'], format: 'xml' } }), 'input.format "xml" is not supported');
    expect(compileJob(job({ input: { topics: ['a'], format: 'bytes' } })).format).toBe('bytes');
  });

  test('unknown fields', () => {
    expectIssue(job({ input: { topics: ['a'], formatt: 'json' } }), 'unknown field "formatt" in input');
  });
});

describe('compileJob: output', () => {
  test('shape and name', () => {
    expectIssue(job({ output: undefined }), 'output is required');
    expectIssue(job({ output: 'x' }), 'output must be an object');
    expectIssue(job({ output: {} }), 'output.topic is required');
    expectIssue(job({ output: { topic: 'a/b' } }), 'output.topic "a/b" is not a valid topic name');
    expectIssue(job({ output: { topic: 'x', key: 'y' } }), 'unknown field "key" in output');
  });

  test('must not be an input topic', () => {
    expectIssue(job({ output: { topic: 'page-views' } }), 'output.topic "page-views" is also an input topic');
  });

  test("must not be one of the job's internal topics, nor may an input", () => {
    expectIssue(job({ output: { topic: 'views-dlq' } }), `output.topic "views-dlq" is the job's own dead-letter topic`);
    expectIssue(
      job({ input: { topics: ['views-repartition'] } }),
      `input.topics[0] "views-repartition" is the job's own repartition topic`,
    );
    expectIssue(
      job({ input: { topics: ['a', 'views-changelog'] } }),
      `input.topics[1] "views-changelog" is the job's own changelog topic`,
    );
    expectIssue(
      job({ output: { topic: 'views-changelog' } }),
      `output.topic "views-changelog" is the job's own changelog topic`,
    );
  });
});

describe('compileJob: eventTime, batchInterval, maxBatchRecords', () => {
  test('eventTime must be a function', () => {
    expectIssue(job({ eventTime: 'ts' }), 'eventTime must be a function (got "ts")');
  });

  test('batchInterval', () => {
    expectIssue(job({ batchInterval: 'soon' }), 'batchInterval "soon" is not a valid duration');
    expectIssue(job({ batchInterval: -1 }), 'batchInterval -1 is not a valid duration');
    expectIssue(job({ batchInterval: '5ms' }), 'batchInterval must be at least 10ms (got 5 ms)');
    expectIssue(job({ batchInterval: 0 }), 'batchInterval must be at least 10ms');
    expectIssue(job({ batchInterval: '0' }), 'batchInterval must be at least 10ms (got 0 ms)');
  });

  test('a duration string without a unit is refused with the spellings that say ms or s', () => {
    expect(issuesOf(job({ batchInterval: '500' }))).toEqual([
      'batchInterval "500" has no unit: write 500 (a number of milliseconds), "500ms" or "500s" (only "0" may omit its unit)',
    ]);
  });

  test.each([0, -1, 1.5, '10', Number.POSITIVE_INFINITY, Number.NaN])('maxBatchRecords %p', (value) => {
    expectIssue(job({ maxBatchRecords: value }), 'maxBatchRecords must be a positive integer');
  });

  test('delivery: exactly-once by default, at-least-once on request, nothing else', () => {
    expect(compileJob(job()).delivery).toBe('exactly-once');
    expect(compileJob(job({ delivery: 'exactly-once' })).delivery).toBe('exactly-once');
    expect(compileJob(job({ delivery: 'at-least-once' })).delivery).toBe('at-least-once');
    for (const value of ['at_least_once', 'Exactly-Once', 1, null]) {
      expect(issuesOf(job({ delivery: value }))).toEqual([
        `delivery must be "exactly-once" or "at-least-once" (got ${JSON.stringify(value)})`,
      ]);
    }
  });
});

describe('compileJob: pipeline', () => {
  test('must be a function', () => {
    expectIssue(job({ pipeline: 'map' }), 'pipeline must be a function (got "map")');
  });

  test('a throwing pipeline is reported, with its message', () => {
    expectIssue(
      job({
        pipeline: () => {
          throw new TypeError('no stream for you');
        },
      }),
      'pipeline threw while building the stream: TypeError: no stream for you',
    );
  });

  test('must return a stream derived from the one it was given', () => {
    expectIssue(
      job({ pipeline: () => undefined }),
      'pipeline must return the stream it was given or one derived from it (got undefined)',
    );
    expectIssue(job({ pipeline: () => ({ map: () => null }) }), 'pipeline must return the stream it was given');
    expectIssue(job({ pipeline: async (s: Stream<unknown>) => s }), 'pipeline must return a stream synchronously');
    let foreign: Stream<unknown> | undefined;
    compileJob(job({ pipeline: (s: Stream<unknown>) => (foreign = s) }));
    expectIssue(job({ pipeline: () => foreign }), 'pipeline must return a stream derived from the stream it was given');
  });

  test('a window must be aggregated', () => {
    expectIssue(
      job({ pipeline: (s: Stream<unknown>) => s.map((v) => v).window(tumbling('1s')) }),
      'pipeline: window#2 must be followed by aggregate() or reduce()',
    );
  });

  test('ops must be functions, named by label', () => {
    const bad = (s: Stream<unknown>) =>
      (s as unknown as { map(f: unknown): { filter(f: unknown): Stream<unknown> } }).map((v: unknown) => v).filter(3);
    expectIssue(job({ pipeline: bad }), 'pipeline: filter#2 expects a function (got 3)');
    const badKey = (s: Stream<unknown>) => (s as unknown as { keyBy(f: unknown): Stream<unknown> }).keyBy('page');
    expectIssue(job({ pipeline: badKey }), 'pipeline: keyBy#1 expects a function (got "page")');
  });

  test('aggregators must be complete, reduce needs a function', () => {
    const incomplete = { name: 'x', init: () => 0, add: () => 0 };
    expectIssue(
      job({ pipeline: (s: Stream<unknown>) => s.window(tumbling('1s')).aggregate(incomplete as never) }),
      'pipeline: aggregate#2 expects an aggregator with init, add, merge and result functions (missing: merge, result)',
    );
    expectIssue(
      job({ pipeline: (s: Stream<unknown>) => s.window(tumbling('1s')).aggregate(undefined as never) }),
      'pipeline: aggregate#2 expects an aggregator (got undefined)',
    );
    expectIssue(
      job({ pipeline: (s: Stream<unknown>) => s.window(tumbling('1s')).reduce(null as never) }),
      'pipeline: reduce#2 expects a function (got null)',
    );
    const ok = custom({
      init: () => 0,
      add: (a: number) => a + 1,
      merge: (a: number, b: number) => a + b,
      result: (a) => a,
    });
    expect(
      compileJob(job({ pipeline: (s: Stream<unknown>) => s.window(tumbling('1s')).aggregate(ok) })).window?.aggregator,
    ).toBe(ok);
  });

  test('only one keyBy before a window', () => {
    const key = (v: unknown) => String(v);
    expectIssue(
      job({
        pipeline: (s: Stream<unknown>) =>
          s
            .keyBy(key)
            .map((v) => v)
            .keyBy(key)
            .window(tumbling('1s'))
            .aggregate(count()),
      }),
      'pipeline: only one keyBy is allowed before window (found keyBy#1, keyBy#3)',
    );
    // Stateless: several keyBys only set the output key, the last one wins.
    const plan = compileJob(job({ pipeline: (s: Stream<unknown>) => s.keyBy(key).keyBy(key) }));
    expect(plan.stage1.map((op) => op.kind)).toEqual(['keyBy', 'keyBy']);
  });
});

describe('compileJob: window', () => {
  const withWindow = (assigner: unknown, options?: unknown) =>
    job({ pipeline: (s: Stream<unknown>) => s.window(assigner as never, options as never).aggregate(count()) });

  test('assigner', () => {
    expectIssue(
      withWindow({ kind: 'hopping', size: '1s' }),
      'window: the assigner must be tumbling(size), sliding(size, slide) or session(gap) (got an object)',
    );
    expectIssue(withWindow(tumbling('ten seconds' as never)), 'window: size "ten seconds" is not a positive duration');
    expectIssue(withWindow(tumbling(0)), 'window: size 0 is not a positive duration');
    expectIssue(withWindow(sliding('10s', 0)), 'window: slide 0 is not a positive duration');
    expectIssue(withWindow(tumbling('0')), 'window: size "0" is not a positive duration');
    expectIssue(
      withWindow(tumbling('10' as never)),
      'window: size "10" has no unit: write 10 (a number of milliseconds)',
    );
    expectIssue(withWindow(sliding('10s', '5' as never)), 'window: slide "5" has no unit');
  });

  test('session(gap): a positive duration with a unit, one issue naming the field', () => {
    expect(compileJob(withWindow(session('30m'))).window?.assigner).toEqual({ kind: 'session', gapMs: 1_800_000 });
    expect(compileJob(withWindow(session(250))).window?.assigner).toEqual({ kind: 'session', gapMs: 250 });
    const only = (assigner: unknown): readonly string[] => issuesOf(withWindow(assigner));
    expect(only(session(0))).toEqual(['window: gap 0 is not a positive duration']);
    expect(only(session('0'))).toEqual(['window: gap "0" is not a positive duration']);
    expect(only(session(-5 as never))).toEqual(['window: gap -5 is not a positive duration']);
    expect(only(session('soon' as never))).toEqual(['window: gap "soon" is not a positive duration']);
    expect(only({ kind: 'session' })).toEqual(['window: gap undefined is not a positive duration']);
    expect(only(session('30' as never))).toEqual([
      'window: gap "30" has no unit: write 30 (a number of milliseconds), "30ms" or "30s" (only "0" may omit its unit)',
    ]);
  });

  test('session windows: an aggregator without merge is refused, saying why; built-ins and reduce merge', () => {
    const noMerge = { init: () => 0, add: (a: number) => a + 1, result: (a: number) => a };
    const sessions = (aggregator: unknown) =>
      job({ pipeline: (s: Stream<unknown>) => s.window(session('1m')).aggregate(aggregator as never) });
    expect(issuesOf(sessions(noMerge))).toEqual([
      'pipeline: aggregate#2 expects an aggregator with init, add, merge and result functions (missing: merge); session windows need merge(a, b): a record that bridges two sessions merges their accumulators, earlier first',
    ]);
    expect(issuesOf(sessions(custom(noMerge as never)))).toEqual(issuesOf(sessions(noMerge)));
    expect(issuesOf(sessions({ ...noMerge, merge: 'sum' }))[0]).toContain(
      '(missing: merge); session windows need merge',
    );
    // The same aggregator with another window: the plain message.
    expect(
      issuesOf(job({ pipeline: (s: Stream<unknown>) => s.window(tumbling('1m')).aggregate(noMerge as never) })),
    ).toEqual([
      'pipeline: aggregate#2 expects an aggregator with init, add, merge and result functions (missing: merge)',
    ]);
    for (const aggregator of [count(), sum(), min(), max(), avg()]) {
      const plan = compileJob(sessions(aggregator));
      expect(plan.window?.aggregator).toBe(aggregator);
      expect(typeof plan.window?.aggregator.merge).toBe('function');
    }
    const reduced = compileJob(
      job({ pipeline: (s: Stream<number>) => s.window(session('1m')).reduce((a, b) => Math.max(a, b)) }),
    ).window?.aggregator;
    // reduce(fn) merges with fn: the earlier session's value first.
    expect(reduced?.merge(reduced.add(reduced.init(), 3), reduced.add(reduced.init(), 8))).toEqual({ v: 8 });
    const order = compileJob(
      job({ pipeline: (s: Stream<string>) => s.window(session('1m')).reduce((a, b) => `${a}${b}`) }),
    ).window?.aggregator;
    const ab = order?.merge(order.add(order.init(), 'a'), order.add(order.add(order.init(), 'b'), 'c'));
    expect(order?.result(ab)).toBe('abc');
  });

  test('slide ≤ size', () => {
    expectIssue(withWindow(sliding('10s', '20s')), 'window: slide (20000 ms) is larger than size (10000 ms)');
    expect(compileJob(withWindow(sliding('10s', '10s'))).window?.assigner).toEqual({
      kind: 'sliding',
      sizeMs: 10_000,
      slideMs: 10_000,
    });
  });

  test('options', () => {
    expectIssue(
      withWindow(tumbling('1s'), { emitt: 'final' }),
      'unknown option "emitt" in window options (allowed: lateness, emit, idleTimeout, time)',
    );
    expectIssue(withWindow(tumbling('1s'), 'final'), 'window options must be an object (got "final")');
    expectIssue(withWindow(tumbling('1s'), { lateness: -5 }), 'window.lateness -5 is not a valid duration');
    expectIssue(withWindow(tumbling('1s'), { lateness: '-5s' }), 'window.lateness "-5s" is not a valid duration');
    expectIssue(withWindow(tumbling('1s'), { idleTimeout: -1 }), 'window.idleTimeout -1 is not a valid duration');
    expectIssue(withWindow(tumbling('1s'), { lateness: '5' }), 'window.lateness "5" has no unit: write 5 (a number');
    expectIssue(
      withWindow(tumbling('1s'), { emit: 'always' }),
      'window.emit must be "final" or "update" (got "always")',
    );
    expectIssue(
      withWindow(tumbling('1s'), { time: 'wall' }),
      'window.time must be "event" or "processing" (got "wall")',
    );
    expect(compileJob(withWindow(tumbling('1s'), { lateness: 0, idleTimeout: '0s' })).window).toMatchObject({
      latenessMs: 0,
      idleTimeoutMs: 0,
    });
  });

  test("lateness '0' is zero, like the number 0 (zero needs no unit)", () => {
    expect(compileJob(withWindow(tumbling('1s'), { lateness: '0', idleTimeout: '0' })).window).toMatchObject({
      latenessMs: 0,
      idleTimeoutMs: 0,
    });
  });
});

describe('compileJob: one error lists every issue', () => {
  test('issues from every level, in field order', () => {
    const error = (() => {
      try {
        compileJob({
          name: 'bad name',
          input: { topics: ['ok', 'a b'], extra: 1 },
          batchInterval: '1ms',
          maxBatchRecords: 0,
          delivery: 'twice',
          pipeline: (s: Stream<unknown>) =>
            s.window(sliding('10s', '20s'), { emitt: 'final' } as never).aggregate(count()),
          output: {},
          outptu: {},
        });
      } catch (e) {
        return e as JobValidationError;
      }
      throw new Error('expected a throw');
    })();
    expect(error).toBeInstanceOf(JobValidationError);
    expect(error.code).toBe('SLUICE_JOB_INVALID');
    const fragments = [
      'unknown field "outptu" in job',
      'name "bad name" is invalid',
      'unknown field "extra" in input',
      'input.topics[1] "a b" is not a valid topic name',
      'output.topic is required',
      'batchInterval must be at least 10ms (got 1 ms)',
      'maxBatchRecords must be a positive integer (got 0)',
      'delivery must be "exactly-once" or "at-least-once" (got "twice")',
      'window: slide (20000 ms) is larger than size (10000 ms)',
      'unknown option "emitt" in window options',
    ];
    expect(error.issues).toHaveLength(fragments.length);
    fragments.forEach((fragment, i) => expect(error.issues[i]).toContain(fragment));
    for (const fragment of fragments) expect(error.message).toContain(fragment);
  });
});
