/**
 * The worker's side of queryable state (`state-query.ts`), on real tasks in process: a windowed
 * task's open windows for a key, valued as the output later shows them (checked against the output
 * records the same windows produce when they close), the range, a `result()` that throws or returns
 * what JSON cannot hold, and partitions without a restored aggregating task.
 */
import { describe, expect, test } from '@jest/globals';
import { count, custom, defineJob, tumbling, type JobSpec } from '../../src/index.ts';
import { compileJob, type JobPlan } from '../../src/job/plan.ts';
import { NO_PROGRESS } from '../../src/pool/progress.ts';
import { type QueriedWindow, type StateQueryRequest, type WorkerResponse } from '../../src/pool/protocol.ts';
import { readRecords, RecordWriter } from '../../src/wire/record-codec.ts';
import { createTask } from '../../src/worker/create-task.ts';
import { answerStateQuery } from '../../src/worker/state-query.ts';
import { type Task } from '../../src/worker/task.ts';

const enc = new TextEncoder();
const WALL = Date.now();

interface View {
  user: string;
  page: string;
  ts: number;
}

function planOf(pipeline: JobSpec<View>['pipeline']): JobPlan {
  return compileJob(
    defineJob<View>({
      name: 'job',
      input: { topics: ['in'] },
      output: { topic: 'out' },
      eventTime: (e) => e.ts,
      pipeline,
    }),
  );
}

function taskOf(plan: JobPlan, topic = 'in', partition = 0): Task {
  const ctx = {
    plan,
    maxRecordBytes: 1_000_000,
    sources: ['in:0', 'in:1'],
    repartitionPartitions: 2,
    progress: NO_PROGRESS,
  };
  const task = createTask(ctx, topic, partition, { committedOffset: null, metadata: null });
  task.restored();
  return task;
}

function pack(views: ReadonlyArray<View>, firstOffset = 0): ArrayBuffer {
  const writer = new RecordWriter();
  views.forEach((v, i) => writer.write(firstOffset + i, v.ts, enc.encode(v.user), enc.encode(JSON.stringify(v))));
  return writer.finish();
}

function ask(tasks: Map<string, Task>, plan: JobPlan, query: Partial<StateQueryRequest>): WorkerResponse {
  return answerStateQuery(tasks, plan, {
    type: 'state-query',
    requestId: 7,
    topic: 'in',
    partition: 0,
    key: 'u1',
    from: -Infinity,
    to: Infinity,
    ...query,
  });
}

const windowsOf = (response: WorkerResponse): QueriedWindow[] => {
  if (response.type !== 'state') throw new Error(`unexpected ${response.type}`);
  return response.windows;
};

describe('answerStateQuery', () => {
  test("a key's open windows, valued as the output shows them when they close", () => {
    // The value is the distinct pages of the window, sorted: a result() that is not the accumulator.
    const plan = planOf((s) =>
      s.window(tumbling('10s'), { lateness: '1h' }).aggregate(
        custom<View, string[], { pages: string[]; n: number }>({
          init: () => [],
          add: (acc, v) => [...acc, v.page],
          merge: (a, b) => [...a, ...b],
          result: (acc) => ({ pages: [...new Set(acc)].sort(), n: acc.length }),
        }),
      ),
    );
    const task = taskOf(plan);
    const tasks = new Map([['in:0', task]]);
    const views: View[] = [];
    for (let i = 0; i < 300; i++) views.push({ user: `u${i % 7}`, page: `/p${i % 5}`, ts: 1_000_000 + i * 97 });
    task.process(pack(views), WALL, WALL, true);

    const queried = new Map<string, QueriedWindow[]>();
    for (let u = 0; u < 7; u++) {
      const response = ask(tasks, plan, { key: `u${u}` });
      expect(response).toMatchObject({ type: 'state', requestId: 7, held: true });
      queried.set(`u${u}`, windowsOf(response));
    }
    // Close every window with a record far ahead: the outputs are the windows as queried.
    const closing = task.process(pack([{ user: 'late', page: '/x', ts: 1e12 }], 300), WALL, WALL, true);
    const outputs = [...readRecords(closing.outputs)].map(
      (r) => JSON.parse(new TextDecoder().decode(r.value!)) as QueriedWindow & { key: string },
    );
    expect(outputs.length).toBeGreaterThan(14);
    for (const [key, windows] of queried) {
      const emitted = outputs
        .filter((o) => o.key === key)
        .map(({ windowStart, windowEnd, value }) => ({ windowStart, windowEnd, value }));
      expect({ key, windows }).toEqual({ key, windows: emitted });
    }
  });

  test('the range, a throwing result() and one JSON cannot hold fail only their window', () => {
    const plan = planOf((s) =>
      s.window(tumbling('10s'), { lateness: '1h' }).aggregate(
        custom<View, number, unknown>({
          init: () => 0,
          add: (acc) => acc + 1,
          merge: (a, b) => a + b,
          result: (acc) => {
            if (acc === 2) throw new Error('two is not allowed');
            return acc === 3 ? BigInt(acc) : acc === 4 ? undefined : acc;
          },
        }),
      ),
    );
    const task = taskOf(plan);
    const tasks = new Map([['in:0', task]]);
    const at = (ts: number): View => ({ user: 'u1', page: '/', ts });
    // Windows [0, 10 s): 1 record, [10 s, 20 s): 2, [20 s, 30 s): 3, [30 s, 40 s): 4.
    task.process(pack([at(1), at(10_001), at(10_002), at(20_001), at(20_002), at(20_003)]), WALL, WALL, true);
    task.process(pack([at(30_001), at(30_002), at(30_003), at(30_004)], 6), WALL, WALL, true);
    expect(windowsOf(ask(tasks, plan, {}))).toEqual([
      { windowStart: 0, windowEnd: 10_000, value: 1 },
      { windowStart: 10_000, windowEnd: 20_000, value: null, error: 'Error: two is not allowed' },
      {
        windowStart: 20_000,
        windowEnd: 30_000,
        value: null,
        error: 'TypeError: Do not know how to serialize a BigInt',
      },
      { windowStart: 30_000, windowEnd: 40_000, value: null },
    ]);
    expect(windowsOf(ask(tasks, plan, { from: 5_000, to: 20_000 })).map((w) => w.windowStart)).toEqual([0, 10_000]);
    expect(windowsOf(ask(tasks, plan, { key: 'nobody' }))).toEqual([]);
  });

  test('a partition without an aggregating task here answers held: false', () => {
    const plan = planOf((s) => s.window(tumbling('10s')).aggregate(count()));
    const tasks = new Map([['in:0', taskOf(plan)]]);
    expect(ask(tasks, plan, { partition: 1 })).toEqual({ type: 'state', requestId: 7, held: false, windows: [] });
    const rekeyed = planOf((s) =>
      s
        .keyBy((v) => v.page)
        .window(tumbling('10s'))
        .aggregate(count()),
    );
    // A shuffle writer holds no state: the key's state is in the repartition topic's task.
    const writers = new Map([['in:0', taskOf(rekeyed)]]);
    expect(ask(writers, rekeyed, {})).toEqual({ type: 'state', requestId: 7, held: false, windows: [] });
    const readers = new Map([['job-repartition:1', taskOf(rekeyed, 'job-repartition', 1)]]);
    expect(ask(readers, rekeyed, { topic: 'job-repartition', partition: 1 })).toEqual({
      type: 'state',
      requestId: 7,
      held: true,
      windows: [],
    });
  });
});
