/**
 * An aggregating task with session windows, in process (no threads, no Kafka): the store is picked by
 * the assigner; results and retractions as output records (key = group key, value JSON); the
 * changelog's session entries (with their end) and tombstones; the restore from them — a task restored
 * after any batch goes on exactly as the uninterrupted one; a changelog of the other window kind is
 * refused; an accumulator the changelog cannot hold and a late record are dead-lettered.
 */
import { describe, expect, test } from '@jest/globals';
import { mulberry32 } from '../../examples/generator/clickstream.ts';
import { StateError } from '../../src/errors.ts';
import { count, custom, defineJob, session, sum, tumbling, type JobSpec } from '../../src/index.ts';
import { compileJob, type JobPlan } from '../../src/job/plan.ts';
import { NO_PROGRESS } from '../../src/pool/progress.ts';
import { type PartitionResult } from '../../src/pool/protocol.ts';
import { decodeSession, readChangelogKey, windowKey, encodeAccumulator } from '../../src/wire/changelog.ts';
import { readRecords, RecordWriter } from '../../src/wire/record-codec.ts';
import { type WindowAssigner } from '../../src/windows/assigners.ts';
import { createTask } from '../../src/worker/create-task.ts';
import { type StoredRecord, type Task } from '../../src/worker/task.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
const WALL = Date.now();

interface Ev {
  ts: number;
  n: number;
}

/** `[offset, key, event time, n]`: a record of the input partition. */
type In = [offset: number, key: string | null, ts: number, n: number];

/** Records packed as a batch of the input partition. */
function pack(records: readonly In[]): ArrayBuffer {
  const writer = new RecordWriter();
  for (const [offset, key, ts, n] of records) {
    writer.write(offset, 1, key === null ? null : enc.encode(key), enc.encode(JSON.stringify({ ts, n })));
  }
  return writer.finish();
}

function planFor(
  assigner: WindowAssigner,
  options: { lateness?: number; emit?: 'final' | 'update' } = {},
  aggregate: JobSpec<Ev>['pipeline'] = (s) =>
    s
      .window(assigner, { lateness: options.lateness ?? 0, emit: options.emit ?? 'final', idleTimeout: 0 })
      .aggregate(sum((v) => v.n)),
): JobPlan {
  return compileJob(
    defineJob<Ev>({
      name: 'job',
      input: { topics: ['in'] },
      output: { topic: 'out' },
      eventTime: (v) => v.ts,
      pipeline: aggregate,
    }),
  );
}

function taskFor(plan: JobPlan, changelog: readonly StoredRecord[] = [], chunks = 1): Task {
  const task = createTask(
    { plan, maxRecordBytes: 1_000_000, sources: ['in:0'], repartitionPartitions: 1, progress: NO_PROGRESS },
    'in',
    0,
    { committedOffset: null, metadata: null },
  );
  const size = Math.max(1, Math.ceil(changelog.length / chunks));
  for (let i = 0; i < changelog.length; i += size) task.restore(changelog.slice(i, i + size));
  task.restored();
  return task;
}

const processBatch = (task: Task, records: In[]): PartitionResult => task.process(pack(records), WALL, WALL, true);

/** Output records as `[kafka key, value JSON]`. */
const outputsOf = (result: PartitionResult): Array<[string | null, unknown]> =>
  [...readRecords(result.outputs)].map((r) => [
    r.key && dec.decode(r.key),
    JSON.parse(dec.decode(r.value!)) as unknown,
  ]);

function changelogOf(result: PartitionResult): StoredRecord[] {
  return [...readRecords(result.changelog)].map((r) => ({
    key: r.key && Uint8Array.from(r.key),
    value: r.value && Uint8Array.from(r.value),
  }));
}

/** Session entries of a changelog, readable: `[start, key, end, acc]`, or `[start, key, null]` for a tombstone. */
function sessionEntries(records: readonly StoredRecord[]): unknown[] {
  return records.flatMap((r) => {
    const key = readChangelogKey(r.key);
    if (key?.kind !== 'session') return [];
    if (r.value === null) return [[key.start, key.key, null]];
    const { end, acc } = decodeSession(r.value);
    return [[key.start, key.key, end, acc]];
  });
}

/** What compaction leaves of a changelog: the last record per key, tombstones removed. */
function compacted(records: readonly StoredRecord[]): StoredRecord[] {
  const hex = (r: StoredRecord): string => Buffer.from(r.key ?? []).toString('hex');
  const last = new Map<string, number>();
  records.forEach((r, i) => last.set(hex(r), i));
  return records.filter((r, i) => last.get(hex(r)) === i && r.value !== null);
}

const headerOf = (letter: { headers: Array<[string, string | Uint8Array]> }, name: string): unknown =>
  letter.headers.find(([n]) => n === name)?.[1];

describe('session windows in an aggregating task', () => {
  test('final: one output per session when it closes, key = group key, value {key, windowStart, windowEnd, value}', () => {
    const task = taskFor(planFor(session('10s'), { lateness: 20_000 }));
    const first = processBatch(task, [
      [0, 'a', 100_000, 1],
      [1, 'b', 101_000, 2],
      [2, 'a', 108_000, 3],
      [3, 'a', 125_000, 4],
    ]);
    expect(outputsOf(first)).toEqual([]);
    expect(task.openWindows).toBe(3);
    const second = processBatch(task, [
      [4, 'a', 117_000, 5], // bridges [100 s, 118 s) and [125 s, 135 s)
      [5, null, 150_000, 6],
    ]);
    expect(outputsOf(second)).toEqual([['b', { key: 'b', windowStart: 101_000, windowEnd: 111_000, value: 2 }]]);
    const third = processBatch(task, [[6, null, 200_000, 7]]);
    expect(outputsOf(third)).toEqual([
      ['a', { key: 'a', windowStart: 100_000, windowEnd: 135_000, value: 13 }],
      [null, { key: null, windowStart: 150_000, windowEnd: 160_000, value: 6 }],
    ]);
    expect(third.commit).toEqual({ offset: 7, metadata: null });
  });

  test('update: changed sessions after each batch, and a retraction for a session merged away', () => {
    const task = taskFor(planFor(session('10s'), { lateness: 60_000, emit: 'update' }));
    const first = processBatch(task, [
      [0, 'a', 100_000, 1],
      [1, 'a', 118_000, 2],
    ]);
    expect(outputsOf(first)).toEqual([
      ['a', { key: 'a', windowStart: 100_000, windowEnd: 110_000, value: 1 }],
      ['a', { key: 'a', windowStart: 118_000, windowEnd: 128_000, value: 2 }],
    ]);
    const second = processBatch(task, [[2, 'a', 109_000, 4]]);
    expect(outputsOf(second)).toEqual([
      ['a', { key: 'a', windowStart: 100_000, windowEnd: 128_000, value: 7 }],
      [
        'a',
        {
          key: 'a',
          windowStart: 118_000,
          windowEnd: 128_000,
          value: null,
          mergedInto: { windowStart: 100_000, windowEnd: 128_000 },
        },
      ],
    ]);
    // The retraction's value is exactly the documented shape, in this field order.
    const raw = [...readRecords(second.outputs)].map((r) => dec.decode(r.value!));
    expect(raw[1]).toBe(
      '{"key":"a","windowStart":118000,"windowEnd":128000,"value":null,"mergedInto":{"windowStart":100000,"windowEnd":128000}}',
    );
  });

  test('the changelog holds session entries with their end; a merge tombstones the sessions merged away', () => {
    const task = taskFor(planFor(session('10s'), { lateness: 60_000 }));
    const first = changelogOf(
      processBatch(task, [
        [0, 'a', 100_000, 1],
        [1, 'a', 118_000, 2],
      ]),
    );
    expect(sessionEntries(first)).toEqual([
      [100_000, 'a', 110_000, 1],
      [118_000, 'a', 128_000, 2],
    ]);
    expect(first.some((r) => readChangelogKey(r.key)?.kind === 'window')).toBe(false);
    const second = changelogOf(processBatch(task, [[2, 'a', 95_000, 4]])); // moves the start of [100 s, 110 s)
    const third = changelogOf(processBatch(task, [[3, 'a', 109_000, 8]])); // bridges
    expect(sessionEntries(second)).toEqual([
      [95_000, 'a', 110_000, 5],
      [100_000, 'a', null],
    ]);
    expect(sessionEntries(third)).toEqual([
      [95_000, 'a', 128_000, 15],
      [118_000, 'a', null],
    ]);
    expect(readChangelogKey(third.at(-1)!.key)).toEqual({ kind: 'progress' });
  });

  describe('restart: restored from the changelog after any batch, the rest is identical', () => {
    function batches(seed: number): Array<In[]> {
      const random = mulberry32(seed);
      const out: Array<In[]> = [];
      let offset = 0;
      for (let b = 0; b < 40; b++) {
        const batch: In[] = [];
        for (let i = 0, size = 1 + Math.floor(random() * 15); i < size; i++, offset++) {
          const late = random() < 0.15 ? Math.floor(random() * 40_000) : Math.floor(random() * 3_000);
          const key = ['a', 'b', 'c', null][Math.floor(random() * 4)]!;
          batch.push([offset, key, 1_000_000 + offset * 700 - late, 1 + Math.floor(random() * 9)]);
        }
        out.push(batch);
      }
      return out;
    }

    test.each(['final', 'update'] as const)('%s emission', (emit) => {
      const plan = planFor(session('4s'), { lateness: 5_000, emit });
      const all = batches(emit === 'final' ? 1 : 2);
      const reference = ((task) => all.map((b) => processBatch(task, b)))(taskFor(plan));
      const view = (r: PartitionResult) => ({
        outputs: outputsOf(r),
        dead: r.dead.map((d) => [headerOf(d, 'sluice-error-code'), headerOf(d, 'sluice-source-offset')]),
        commit: r.commit,
        stats: r.stats,
      });
      const expected = reference.map(view);
      const flat = JSON.stringify(expected);
      expect(flat).toContain('SLUICE_LATE_RECORD');
      expect(flat).toContain(emit === 'update' ? 'mergedInto' : '"windowEnd"');
      for (const point of [1, 3, 10, 20, 33, 39]) {
        const written = reference.slice(0, point).flatMap(changelogOf);
        const restored = taskFor(plan, compacted(written), 3);
        const again = all.slice(point).map((b) => processBatch(restored, b));
        expect(again.map(view)).toEqual(expected.slice(point));
      }
    });
  });

  test('a changelog of the other window kind is refused with a StateError naming both', () => {
    const windowEntry: StoredRecord = { key: windowKey(100_000, 'a'), value: encodeAccumulator(3) };
    expect(() => taskFor(planFor(session('10s')), [windowEntry])).toThrow(StateError);
    expect(() => taskFor(planFor(session('10s')), [windowEntry])).toThrow(
      /holds windows but the job has session windows/,
    );
    const sessionTask = taskFor(planFor(session('10s')));
    const written = changelogOf(processBatch(sessionTask, [[0, 'a', 100_000, 1]]));
    expect(() => taskFor(planFor(tumbling('10s')), written)).toThrow(/holds sessions but the job has windows/);
  });

  test('an accumulator the changelog cannot store: the session is dead-lettered with its range and dropped', () => {
    const plan = planFor(session('10s'), {}, (s) =>
      s.window(session('10s'), { idleTimeout: 0 }).aggregate(
        custom<Ev, unknown, number>({
          init: () => 0,
          add: (acc, v) => (v.n === 9 ? () => 9 : acc),
          merge: (a) => a,
          result: () => 1,
        }),
      ),
    );
    const task = taskFor(plan);
    const result = processBatch(task, [
      [0, 'a', 100_000, 1],
      [1, 'a', 105_000, 9],
      [2, 'b', 100_000, 1],
    ]);
    expect(
      result.dead.map((d) => [
        headerOf(d, 'sluice-error-code'),
        headerOf(d, 'sluice-window-start'),
        headerOf(d, 'sluice-window-end'),
      ]),
    ).toEqual([['SLUICE_STATE_FAILED', '100000', '115000']]);
    expect(task.openWindows).toBe(1);
    expect(sessionEntries(changelogOf(result))).toEqual([
      [100_000, 'a', null],
      [100_000, 'b', 110_000, 0],
    ]);
  });

  test('a late record is dead-lettered as late, against the stream time before it', () => {
    const task = taskFor(
      planFor(session('10s'), { lateness: 1_000 }, (s) =>
        s.window(session('10s'), { lateness: 1_000, idleTimeout: 0 }).aggregate(count()),
      ),
    );
    const result = processBatch(task, [
      [0, 'a', 100_000, 1],
      [1, 'b', 120_000, 1],
      [2, 'a', 105_000, 1], // touches [100 s, 110 s), closed at 111 s
      [3, 'c', 110_000, 1], // [110 s, 120 s) closes at 121 s: not late
    ]);
    expect(result.dead.map((d) => [headerOf(d, 'sluice-error-code'), headerOf(d, 'sluice-source-offset')])).toEqual([
      ['SLUICE_LATE_RECORD', '2'],
    ]);
    expect(result.stats.late).toBe(1);
  });
});
