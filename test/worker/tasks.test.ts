/**
 * The tasks of every role, in process (no threads, no Kafka): packed records in, outputs, repartition
 * writes, dead letters, watermark reports, changelog records and commits out. Covers the stateless
 * operators and formats, every dead-letter reason, windowed emission, the commit (the end of what was
 * processed), the changelog and the restore from it (restart exactness: a restored task goes on as
 * the uninterrupted one; records below the restored position are skipped), the upgrade from state
 * kept in commit metadata (replay), and both stages of a re-keyed job (de-duplication, watermarks).
 */
import { describe, expect, test } from '@jest/globals';
import { StateError } from '../../src/errors.ts';
import { count, custom, defineJob, sliding, sum, tumbling, type JobSpec } from '../../src/index.ts';
import { compileJob, type JobPlan } from '../../src/job/plan.ts';
import { NO_PROGRESS } from '../../src/pool/progress.ts';
import { type DeadLetter, type PartitionResult, type PartitionStart } from '../../src/pool/protocol.ts';
import {
  decodeAccumulator,
  decodeProgress,
  encodeAccumulator,
  encodeProgress,
  type Progress,
  PROGRESS_KEY,
  readChangelogKey,
  windowKey,
} from '../../src/wire/changelog.ts';
import { BLOCK_HEADER, IDLE_HEADER, POSITION_HEADER, SOURCE_HEADER, WATERMARK_HEADER } from '../../src/wire/headers.ts';
import { readRecords, RecordWriter } from '../../src/wire/record-codec.ts';
import { createTask } from '../../src/worker/create-task.ts';
import { type StoredRecord, type Task } from '../../src/worker/task.ts';
import { BlockWriter, partitionFor, readBlock, type BlockEntry } from '../../src/wire/repartition-block.ts';
import { type Checkpoint, encodeCheckpoint } from '../../src/wire/checkpoint.ts';
import { type WindowAssigner } from '../../src/windows/assigners.ts';

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

const enc = new TextEncoder();
const dec = new TextDecoder();
const bytes = (text: string): Uint8Array => enc.encode(text);
const text = (view: Uint8Array | null): string | null => (view === null ? null : dec.decode(view));

/** Wall clock of the tests: "now", so a processor's own creation time never makes it idle. */
const WALL = Date.now();
/** A block entry's upstream position; its input record's timestamp 7 ms after its event time. */
const entryAt = (offset: number, sequence: number, eventTime: number) => ({
  offset,
  sequence,
  eventTime,
  timestamp: eventTime + 7,
});
const NO_START: PartitionStart = { committedOffset: null, metadata: null };

/** An input record. `value`: a string or bytes as is, `null` as null, anything else as JSON. */
interface In {
  offset: number;
  timestamp?: number;
  key?: string | Uint8Array | null;
  value: unknown;
  headers?: Array<[string, string | Uint8Array]>;
}

function encodeIn(value: unknown): Uint8Array | null {
  if (value === null) return null;
  if (typeof value === 'string') return bytes(value);
  if (value instanceof Uint8Array) return value;
  return bytes(JSON.stringify(value));
}

function pack(records: readonly In[]): ArrayBuffer {
  const writer = new RecordWriter();
  for (const r of records) {
    const key = r.key === undefined || r.key === null ? null : typeof r.key === 'string' ? bytes(r.key) : r.key;
    const headers = (r.headers ?? []).map(
      ([name, value]) => [name, typeof value === 'string' ? bytes(value) : value] as const,
    );
    writer.write(r.offset, r.timestamp ?? 1_000 + r.offset, key, encodeIn(r.value), headers);
  }
  return writer.finish();
}

/** A stage-1 result's repartition blocks for one partition, as repartition-topic records from `firstOffset` on. */
function blockRecords(result: PartitionResult, source: string, firstOffset: number, partition = 0): In[] {
  return result.repartition
    .filter((b) => b.partition === partition)
    .map((b, i) => ({
      offset: firstOffset + i,
      timestamp: WALL,
      key: null,
      value: b.data,
      headers: [
        [SOURCE_HEADER, source],
        [BLOCK_HEADER, '2'],
      ],
    }));
}

/** The entries of a stage-1 result's blocks, by partition then order. */
function entriesOf(result: PartitionResult): Array<BlockEntry & { partition: number }> {
  return result.repartition.flatMap((b) => [...readBlock(b.data)].map((e) => ({ ...e, partition: b.partition })));
}

interface Out {
  key: string | null;
  value: string | null;
  timestamp: number;
}

function outputsOf(result: PartitionResult): Out[] {
  return [...readRecords(result.outputs)].map((r) => ({
    key: text(r.key),
    value: text(r.value),
    timestamp: r.timestamp,
  }));
}

interface WindowOut {
  key: string | null;
  windowStart: number;
  windowEnd: number;
  value: unknown;
}

function windowsOf(result: PartitionResult): WindowOut[] {
  return outputsOf(result).map((o) => JSON.parse(o.value!) as WindowOut);
}

type HeaderView = [string, string | { bytes: string }];
/** Dead-letter headers, with copied byte values shown as `{ bytes }`. */
function headersOf(letter: DeadLetter): HeaderView[] {
  return letter.headers.map(([name, value]) => [
    name,
    typeof value === 'string' ? value : { bytes: dec.decode(value) },
  ]);
}

function sourceHeaders(
  code: string,
  message: string,
  offset: number,
  timestamp: number,
  topic = 'in',
  partition = 0,
): HeaderView[] {
  return [
    ['sluice-error-code', code],
    ['sluice-error-message', message],
    ['sluice-job', 'job'],
    ['sluice-source-topic', topic],
    ['sluice-source-partition', String(partition)],
    ['sluice-source-offset', String(offset)],
    ['sluice-source-timestamp', String(timestamp)],
  ];
}

function jsonErrorOf(textValue: string): string {
  try {
    JSON.parse(textValue);
  } catch (error) {
    return (error as Error).message;
  }
  throw new Error('valid JSON');
}

function jobPlan<T>(pipeline: JobSpec<T>['pipeline'], extra: Partial<JobSpec<T>> = {}): JobPlan {
  return compileJob(
    defineJob<T>({ name: 'job', input: { topics: ['in'] }, output: { topic: 'out' }, pipeline, ...extra }),
  );
}

interface ProcessorOpts {
  topic?: string;
  partition?: number;
  start?: PartitionStart;
  maxRecordBytes?: number;
  /** The job's input partitions (default: only this task's own, when it reads an input topic). */
  sources?: string[];
  repartitionPartitions?: number;
  /** The changelog records to restore from (default none), and in how many calls (as read in chunks). */
  changelog?: readonly StoredRecord[];
  chunks?: number;
}

/** A restored task with the process() defaults the old processor had (caught up). */
interface TestTask {
  task: Task;
  openWindows: number;
  /** What restored() answered: the next input offset the task processes. */
  restoredAt: number | null;
  process(records: ArrayBuffer, batchTime: number, wallNow: number, caughtUp?: boolean): PartitionResult;
}

function taskFor(plan: JobPlan, opts: ProcessorOpts = {}): Task {
  const topic = opts.topic ?? 'in';
  const partition = opts.partition ?? 0;
  return createTask(
    {
      plan,
      maxRecordBytes: opts.maxRecordBytes ?? 1_000_000,
      sources: opts.sources ?? [`${topic}:${partition}`],
      repartitionPartitions: opts.repartitionPartitions ?? 1,
      progress: NO_PROGRESS,
    },
    topic,
    partition,
    opts.start ?? NO_START,
  );
}

/** A task built and restored as a worker does it: restore() with the changelog, then restored(). */
function processor(plan: JobPlan, opts: ProcessorOpts = {}): TestTask {
  const task = taskFor(plan, opts);
  const changelog = opts.changelog ?? [];
  const chunk = Math.max(1, Math.ceil(changelog.length / (opts.chunks ?? 1)));
  for (let i = 0; i < changelog.length; i += chunk) task.restore(changelog.slice(i, i + chunk));
  const restoredAt = task.restored();
  return {
    task,
    get openWindows() {
      return task.openWindows;
    },
    restoredAt,
    process: (records, batchTime, wallNow, caughtUp = true) => task.process(records, batchTime, wallNow, caughtUp),
  };
}

/** A batch's changelog records, as a restore reads them back (copies: the batch buffer may be reused). */
function changelogOf(result: PartitionResult): StoredRecord[] {
  return [...readRecords(result.changelog)].map((r) => ({
    key: r.key && Uint8Array.from(r.key),
    value: r.value && Uint8Array.from(r.value),
  }));
}

/** The changelog of several batches, in order. */
const changelogOfAll = (results: readonly PartitionResult[]): StoredRecord[] => results.flatMap(changelogOf);

type EntryView = [start: number, key: string | null, acc: unknown];
/** Changelog records made readable: window entries (accumulator, or null for a tombstone), then progress. */
function changelogView(records: readonly StoredRecord[]): Array<EntryView | Progress | 'unknown'> {
  return records.map((r) => {
    const key = readChangelogKey(r.key);
    if (key === undefined) return 'unknown';
    if (key.kind === 'progress') return r.value ? (decodeProgress(r.value) ?? 'unknown') : 'unknown';
    return [key.start, key.key, r.value === null ? null : decodeAccumulator(r.value)];
  });
}

/** The last progress record of a changelog. */
function lastProgress(records: readonly StoredRecord[]): Progress | undefined {
  const all = changelogView(records).filter((v): v is Progress => typeof v === 'object' && !Array.isArray(v));
  return all.at(-1);
}

/** What compaction leaves of a changelog: the last record per key, tombstones removed. */
function compacted(records: readonly StoredRecord[]): StoredRecord[] {
  const hex = (r: StoredRecord): string => Buffer.from(r.key ?? []).toString('hex');
  const last = new Map<string, number>();
  records.forEach((r, i) => last.set(hex(r), i));
  return records.filter((r, i) => last.get(hex(r)) === i && r.value !== null);
}

/** A changelog record in order-insensitive form, for comparing changelogs compaction reordered. */
const recordText = (r: StoredRecord): string =>
  `${Buffer.from(r.key ?? []).toString('hex')}=${r.value === null ? 'null' : Buffer.from(r.value).toString('hex')}`;

function progressRecord(progress: Partial<Progress> & { task: string; end: number }): StoredRecord {
  return {
    key: PROGRESS_KEY,
    value: encodeProgress({ streamTime: null, dedupe: new Map(), sources: new Map(), ...progress }),
  };
}

const entryRecord = (start: number, key: string | null, acc: unknown): StoredRecord => ({
  key: windowKey(start, key),
  value: acc === null ? null : encodeAccumulator(acc),
});

function checkpoint(extra: Partial<Checkpoint> & { end: number }): Checkpoint {
  return { streamTime: null, dedupe: new Map(), sources: new Map(), ...extra };
}

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

interface View {
  n: number;
  k: string;
  ts: number;
}

// ---------------------------------------------------------------------------------------------
// Stateless operators and formats
// ---------------------------------------------------------------------------------------------

describe('stateless jobs', () => {
  test('filter + map (JSON): outputs keep the record key, value is JSON, timestamp is the event time', () => {
    const plan = jobPlan<View>((s) => s.filter((v) => v.n % 2 === 0).map((v) => ({ k: v.k, doubled: v.n * 2 })));
    const p = processor(plan);
    const result = p.process(
      pack(
        [0, 1, 2, 3].map((n) => ({ offset: 10 + n, key: `key-${n}`, timestamp: 500 + n, value: { n, k: 'x', ts: 0 } })),
      ),
      WALL,
      WALL,
    );
    expect(outputsOf(result)).toEqual([
      { key: 'key-0', value: '{"k":"x","doubled":0}', timestamp: 500 },
      { key: 'key-2', value: '{"k":"x","doubled":4}', timestamp: 502 },
    ]);
    expect(result.outputCount).toBe(2);
    expect(result.repartitionCount).toBe(0);
    expect(result.repartition).toEqual([]);
    expect(result.dead).toEqual([]);
    expect(result.watermark).toBeNull();
    expect(result.commit).toEqual({ offset: 14, metadata: null });
    expect(result.stats).toEqual({
      recordsIn: 4,
      recordsOut: 2,
      late: 0,
      dead: 0,
      duplicates: 0,
      replayed: 0,
      skipped: 0,
      changelog: 0,
      openWindows: 0,
      streamTime: null,
    });
    // No state: no changelog.
    expect(result.changelog.byteLength).toBe(0);
    expect(result.changelogPartition).toBeNull();
    expect(result.committed).toBe(false);
    expect(p.openWindows).toBe(0);
  });

  test('flatMap + keyBy: one output per element, keys from keyBy (numbers as decimal strings)', () => {
    interface Order {
      items: Array<{ id: number | string; qty: number }>;
    }
    const plan = jobPlan<Order>((s) => s.flatMap((o) => o.items).keyBy((i) => i.id));
    const p = processor(plan);
    const result = p.process(
      pack([
        {
          offset: 0,
          key: 'order-1',
          timestamp: 7,
          value: {
            items: [
              { id: 1, qty: 2 },
              { id: 'sku-x', qty: 1 },
            ],
          },
        },
        { offset: 1, key: 'order-2', timestamp: 8, value: { items: [] } },
        { offset: 2, key: null, timestamp: 9, value: { items: [{ id: 2.5, qty: 3 }] } },
      ]),
      WALL,
      WALL,
    );
    expect(outputsOf(result)).toEqual([
      { key: '1', value: '{"id":1,"qty":2}', timestamp: 7 },
      { key: 'sku-x', value: '{"id":"sku-x","qty":1}', timestamp: 7 },
      { key: '2.5', value: '{"id":2.5,"qty":3}', timestamp: 9 },
    ]);
    expect(result.commit).toEqual({ offset: 3, metadata: null });
  });

  test('the key passes through unchanged when there is no keyBy, and a null key stays null', () => {
    const plan = jobPlan<View>((s) => s.map((v) => v.n));
    const result = processor(plan).process(
      pack([
        { offset: 0, key: 'k', value: { n: 1 } },
        { offset: 1, key: null, value: { n: 2 } },
      ]),
      WALL,
      WALL,
    );
    expect(outputsOf(result).map((o) => [o.key, o.value])).toEqual([
      ['k', '1'],
      [null, '2'],
    ]);
  });

  test('string format: values are UTF-8 text; a string result is written as is', () => {
    const plan = jobPlan<string>((s) => s.map((line) => line.toUpperCase()), {
      input: { topics: ['in'], format: 'string' },
    });
    const result = processor(plan).process(
      pack([
        { offset: 0, key: 'a', value: 'héllo wörld', timestamp: 1 },
        { offset: 1, value: '{"not":"parsed"}', timestamp: 2 },
        { offset: 2, value: '', timestamp: 3 },
      ]),
      WALL,
      WALL,
    );
    expect(outputsOf(result)).toEqual([
      { key: 'a', value: 'HÉLLO WÖRLD', timestamp: 1 },
      { key: null, value: '{"NOT":"PARSED"}', timestamp: 2 },
      { key: null, value: '', timestamp: 3 },
    ]);
  });

  test('JSON format: a string result is written as text, a number or object as JSON', () => {
    const plan = jobPlan<View>((s) => s.map((v) => (v.n === 0 ? 'zero' : v.n === 1 ? 42 : { n: v.n })));
    const result = processor(plan).process(pack([0, 1, 2].map((n) => ({ offset: n, value: { n } }))), WALL, WALL);
    expect(outputsOf(result).map((o) => o.value)).toEqual(['zero', '42', '{"n":2}']);
  });

  test('bytes format: the pipeline gets a Buffer; a byte result is written unchanged', () => {
    let seen: unknown;
    const plan = jobPlan<Buffer>(
      (s) =>
        s.map((b) => {
          seen = b;
          return b.subarray(1);
        }),
      { input: { topics: ['in'], format: 'bytes' } },
    );
    const value = new Uint8Array([0x00, 0xff, 0xfe, 0x10]);
    const result = processor(plan).process(pack([{ offset: 0, key: 'k', value }]), WALL, WALL);
    expect(Buffer.isBuffer(seen)).toBe(true);
    const [out] = [...readRecords(result.outputs)];
    expect([...out!.value!]).toEqual([0xff, 0xfe, 0x10]);
    expect(text(out!.key)).toBe('k');
  });

  test('bytes format: a binary key passes through a key-preserving job unchanged', () => {
    const plan = jobPlan<Buffer>((s) => s.filter(() => true), { input: { topics: ['in'], format: 'bytes' } });
    const key = new Uint8Array([0xff, 0x00, 0xc3]);
    const result = processor(plan).process(pack([{ offset: 0, key, value: new Uint8Array([1]) }]), WALL, WALL);
    const [out] = [...readRecords(result.outputs)];
    expect([...out!.key!]).toEqual([0xff, 0x00, 0xc3]);
  });

  test('bytes format: a tombstone (null value) passing through stays a null value', () => {
    const plan = jobPlan<Buffer | null>((s) => s.filter(() => true), { input: { topics: ['in'], format: 'bytes' } });
    const result = processor(plan).process(pack([{ offset: 0, key: 'k', value: null }]), WALL, WALL);
    expect(result.dead).toEqual([]);
    const [out] = [...readRecords(result.outputs)];
    expect(out?.value).toBeNull();
  });

  test('the output timestamp is the input record timestamp, not the extracted event time (retention)', () => {
    const plan = jobPlan<View>((s) => s.map((v) => v.n), {
      eventTime: (v, meta) => (v.n === 1 ? new Date(v.ts) : v.ts + Number(meta.offset)),
    });
    const result = processor(plan).process(
      pack([
        { offset: 5, timestamp: 1, value: { n: 0, ts: 1_000_000 } },
        { offset: 6, timestamp: 2, value: { n: 1, ts: 2_000_000 } },
      ]),
      WALL,
      WALL,
    );
    expect(outputsOf(result).map((o) => o.timestamp)).toEqual([1, 2]);
  });

  test('eventTime receives the record metadata: topic, partition, offset, timestamp, key, headers', () => {
    const metas: unknown[] = [];
    const plan = jobPlan<View>((s) => s.window(tumbling('10s')).aggregate(count()), {
      eventTime: (_v, meta) => {
        metas.push(meta);
        return meta.timestamp;
      },
    });
    processor(plan, { topic: 'in', partition: 3 }).process(
      pack([
        {
          offset: 77,
          timestamp: 1234,
          key: 'kk',
          value: {},
          headers: [
            ['h', 'v'],
            ['trace', 'é'],
          ],
        },
      ]),
      WALL,
      WALL,
    );
    expect(metas).toEqual([
      { topic: 'in', partition: 3, offset: '77', timestamp: 1234, key: 'kk', headers: { h: 'v', trace: 'é' } },
    ]);
  });

  test('an extractor that does not declare meta still reads it, decoded on demand', () => {
    const seen: unknown[] = [];
    const plan = jobPlan<View>((s) => s.window(tumbling('10s')).aggregate(count()), {
      // One declared parameter: meta arrives as the second argument all the same.
      eventTime: function (this: unknown, _v: View): number {
        // eslint-disable-next-line prefer-rest-params
        const meta = arguments[1] as { offset: string; timestamp: number; key: string | null; headers: object };
        seen.push([meta.offset, meta.timestamp, meta.key, meta.headers]);
        return meta.timestamp;
      },
    });
    processor(plan, { topic: 'in', partition: 0 }).process(
      pack([{ offset: 5, timestamp: 99, key: 'k', value: {}, headers: [['h', 'v']] }]),
      WALL,
      WALL,
    );
    expect(seen).toEqual([['5', 99, 'k', { h: 'v' }]]);
  });

  test('the commit is null when nothing new was processed', () => {
    const p = processor(jobPlan<View>((s) => s));
    expect(p.process(pack([{ offset: 0, value: {} }]), WALL, WALL).commit).toEqual({ offset: 1, metadata: null });
    expect(p.process(pack([]), WALL, WALL).commit).toBeNull();
    expect(p.process(pack([{ offset: 1, value: {} }]), WALL, WALL).commit).toEqual({ offset: 2, metadata: null });
  });

  test('no state to restore: no changelog partition, restored() is the committed offset (null without one)', () => {
    const plan = jobPlan<View>((s) => s);
    const fresh = processor(plan);
    expect(fresh.task.changelogPartition).toBeNull();
    expect(fresh.restoredAt).toBeNull();
    // Whatever is handed to restore() is ignored: a stateless task has no changelog.
    const p = processor(plan, {
      start: { committedOffset: 12, metadata: null },
      changelog: [progressRecord({ task: 'in:0', end: 99 })],
    });
    expect(p.restoredAt).toBe(12);
  });

  test('records below the committed offset are skipped (read before the previous owner’s last commit settled)', () => {
    const p = processor(
      jobPlan<View>((s) => s.map((v) => v.n)),
      { start: { committedOffset: 5, metadata: null } },
    );
    const result = p.process(pack([3, 4, 5, 6].map((n) => ({ offset: n, value: { n } }))), WALL, WALL);
    expect(outputsOf(result).map((o) => o.value)).toEqual(['5', '6']);
    expect(result.stats).toMatchObject({ recordsIn: 2, skipped: 2, recordsOut: 2 });
    expect(result.commit).toEqual({ offset: 7, metadata: null });
    const again = p.process(pack([{ offset: 6, value: { n: 6 } }]), WALL, WALL);
    expect(again.stats).toMatchObject({ recordsIn: 1, skipped: 0 }); // only below the committed offset
  });
});

// ---------------------------------------------------------------------------------------------
// Dead letters
// ---------------------------------------------------------------------------------------------

describe('dead letters: exact headers, and the batch goes on', () => {
  /** Runs [good, bad, good] and returns the one dead letter, after checking the good ones went out. */
  function deadLetterOf(
    plan: JobPlan,
    bad: In,
    opts: ProcessorOpts = {},
  ): { letter: DeadLetter; result: PartitionResult } {
    const p = processor(plan, opts);
    const good = (offset: number): In => ({
      offset,
      key: `g${offset}`,
      timestamp: 10 + offset,
      value: { n: 1, k: 'g', ts: 10 + offset },
    });
    const result = p.process(pack([good(bad.offset - 1), bad, good(bad.offset + 1)]), WALL, WALL);
    expect(result.dead).toHaveLength(1);
    expect(result.stats.dead).toBe(1);
    expect(result.stats.recordsIn).toBe(3);
    if (plan.window) {
      // The good records around it went into their windows.
      expect(result.stats.late).toBe(0);
      expect(p.openWindows).toBeGreaterThan(0);
    } else {
      // The good records around it went out (output timestamp = their event time).
      expect(outputsOf(result).map((o) => o.timestamp)).toEqual([9 + bad.offset, 11 + bad.offset]);
      expect(result.commit).toEqual({ offset: bad.offset + 2, metadata: null });
    }
    return { letter: result.dead[0]!, result };
  }

  const passThrough = jobPlan<View>((s) => s.map((v) => v));

  test('malformed JSON', () => {
    const { letter } = deadLetterOf(passThrough, { offset: 5, key: 'bad', timestamp: 99, value: 'not json' });
    expect(headersOf(letter)).toEqual(
      sourceHeaders('SLUICE_DESERIALIZE_FAILED', `value is not valid JSON: ${jsonErrorOf('not json')}`, 5, 99),
    );
    expect(text(letter.key)).toBe('bad');
    expect(text(letter.value)).toBe('not json');
  });

  test('invalid UTF-8 (JSON and string formats)', () => {
    const value = new Uint8Array([0x7b, 0xff, 0xfe, 0x7d]);
    for (const format of ['json', 'string'] as const) {
      const plan = jobPlan<unknown>((s) => s, { input: { topics: ['in'], format } });
      const { letter } = deadLetterOf(plan, { offset: 3, timestamp: 4, value });
      expect(headersOf(letter)).toEqual(sourceHeaders('SLUICE_DESERIALIZE_FAILED', 'value is not valid UTF-8', 3, 4));
      expect(letter.key).toBeNull();
      expect([...letter.value!]).toEqual([...value]);
    }
  });

  test('null value (JSON format)', () => {
    const { letter } = deadLetterOf(passThrough, { offset: 8, key: 'tomb', timestamp: 1, value: null });
    expect(headersOf(letter)).toEqual(sourceHeaders('SLUICE_DESERIALIZE_FAILED', 'record has no value', 8, 1));
    expect(letter.value).toBeNull();
  });

  test('too large: key + value over maxRecordBytes; exactly at the limit passes', () => {
    const p = processor(passThrough, { maxRecordBytes: 10 });
    const result = p.process(
      pack([
        { offset: 1, key: 'k', timestamp: 2, value: '123456789' }, // 1 + 9 bytes: at the limit
        { offset: 2, key: 'k', timestamp: 3, value: '"123456789"' }, // 1 + 11 bytes
        { offset: 3, key: null, timestamp: 4, value: '1234567890' }, // 10 bytes, no key
      ]),
      WALL,
      WALL,
    );
    expect(result.dead.map(headersOf)).toEqual([
      sourceHeaders('SLUICE_RECORD_TOO_LARGE', 'record of 12 bytes exceeds SLUICE_MAX_RECORD_BYTES (10)', 2, 3),
    ]);
    expect(text(result.dead[0]!.value)).toBe('"123456789"');
    expect(outputsOf(result).map((o) => o.value)).toEqual(['123456789', '1234567890']);
    expect(result.commit).toEqual({ offset: 4, metadata: null });
  });

  test('a user map that throws (an Error, or any value)', () => {
    const plan = jobPlan<View>((s) =>
      s.map((v) => {
        if (v.k === 'err') throw new RangeError('boom');
        if (v.k === 'str') throw 'oops' as unknown as Error;
        return v;
      }),
    );
    expect(headersOf(deadLetterOf(plan, { offset: 1, timestamp: 2, value: { k: 'err' } }).letter)).toEqual(
      sourceHeaders('SLUICE_USER_CODE_FAILED', 'map#1 threw RangeError: boom', 1, 2),
    );
    expect(headersOf(deadLetterOf(plan, { offset: 1, timestamp: 2, value: { k: 'str' } }).letter)).toEqual(
      sourceHeaders('SLUICE_USER_CODE_FAILED', 'map#1 threw oops', 1, 2),
    );
  });

  test('a result that cannot be serialised', () => {
    const plan = jobPlan<View>((s) => s.map((v) => (v.k === 'undef' ? undefined : v)));
    expect(headersOf(deadLetterOf(plan, { offset: 1, timestamp: 2, value: { k: 'undef' } }).letter)).toEqual(
      sourceHeaders('SLUICE_USER_CODE_FAILED', 'result is not serialisable: undefined', 1, 2),
    );
  });

  test('flatMap returning a non-iterable; flatMap whose iteration throws', () => {
    const plan = jobPlan<View>((s) =>
      s
        .filter(() => true)
        .flatMap((v): Iterable<View> => {
          if (v.k === 'num') return 5 as unknown as Iterable<View>;
          if (v.k === 'gen')
            return (function* () {
              yield v;
              throw new Error('mid-way');
            })();
          return [v];
        }),
    );
    expect(headersOf(deadLetterOf(plan, { offset: 1, timestamp: 2, value: { k: 'num' } }).letter)).toEqual(
      sourceHeaders('SLUICE_USER_CODE_FAILED', 'flatMap#2 did not return an iterable', 1, 2),
    );
    const { letter, result } = deadLetterOf(plan, { offset: 1, timestamp: 2, value: { k: 'gen' } });
    expect(headersOf(letter)).toEqual(
      sourceHeaders('SLUICE_USER_CODE_FAILED', 'flatMap#2 iteration threw Error: mid-way', 1, 2),
    );
    // Nothing of the failed record went out, not even the element yielded before the throw.
    expect(result.outputCount).toBe(2);
  });

  test('keyBy returning an object (or undefined)', () => {
    const plan = jobPlan<View>((s) =>
      s
        .map((v) => v)
        .keyBy((v) =>
          v.k === 'obj' ? ({ id: 1 } as unknown as string) : v.k === 'undef' ? (undefined as unknown as string) : v.k,
        ),
    );
    expect(headersOf(deadLetterOf(plan, { offset: 1, timestamp: 2, value: { k: 'obj' } }).letter)).toEqual(
      sourceHeaders('SLUICE_USER_CODE_FAILED', 'keyBy#2 returned object, not a string or number', 1, 2),
    );
    expect(headersOf(deadLetterOf(plan, { offset: 1, timestamp: 2, value: { k: 'undef' } }).letter)).toEqual(
      sourceHeaders('SLUICE_USER_CODE_FAILED', 'keyBy#2 returned undefined, not a string or number', 1, 2),
    );
  });

  test('eventTime throwing', () => {
    const plan = jobPlan<View>((s) => s.window(tumbling('10s')).aggregate(count()), {
      eventTime: (v) => {
        if (v.k === 'bad') throw new Error('no ts');
        return v.ts;
      },
    });
    expect(headersOf(deadLetterOf(plan, { offset: 1, timestamp: 2, value: { k: 'bad' } }).letter)).toEqual(
      sourceHeaders('SLUICE_USER_CODE_FAILED', 'eventTime threw Error: no ts', 1, 2),
    );
  });

  test('eventTime returning a non-time: a string', () => {
    const plan = jobPlan<View>((s) => s.window(tumbling('10s')).aggregate(count()), {
      eventTime: (v) => (v.k === 'bad' ? ('yesterday' as unknown as number) : v.ts),
    });
    expect(headersOf(deadLetterOf(plan, { offset: 1, timestamp: 2, value: { k: 'bad' } }).letter)).toEqual(
      sourceHeaders('SLUICE_USER_CODE_FAILED', 'eventTime returned "yesterday", not a time', 1, 2),
    );
  });

  test('eventTime returning NaN (e.g. Date.parse of a bad string) says NaN', () => {
    const plan = jobPlan<View>((s) => s.window(tumbling('10s')).aggregate(count()), {
      eventTime: (v) => (v.k === 'bad' ? Date.parse('garbage') : v.ts),
    });
    expect(headersOf(deadLetterOf(plan, { offset: 1, timestamp: 2, value: { k: 'bad' } }).letter)).toEqual(
      sourceHeaders('SLUICE_USER_CODE_FAILED', 'eventTime returned NaN, not a time', 1, 2),
    );
  });

  test('the record headers are copied onto the dead letter (except sluice-error-*), as copies', () => {
    const batch = pack([
      {
        offset: 0,
        key: 'k',
        timestamp: 5,
        value: 'nope',
        headers: [
          ['trace-id', 't-1'],
          ['sluice-error-code', 'OLD'],
          ['sluice-error-message', 'old'],
          ['bin', new Uint8Array([1, 2])],
        ],
      },
    ]);
    const result = processor(passThrough).process(batch, WALL, WALL);
    const [letter] = result.dead;
    expect(headersOf(letter!)).toEqual([
      ...sourceHeaders('SLUICE_DESERIALIZE_FAILED', `value is not valid JSON: ${jsonErrorOf('nope')}`, 0, 5),
      ['trace-id', { bytes: 't-1' }],
      ['bin', { bytes: '\u0001\u0002' }],
    ]);
    // Copies, not views into the (transferred) batch buffer.
    expect(letter!.key!.buffer).not.toBe(batch);
    expect(letter!.value!.buffer).not.toBe(batch);
    for (const [, value] of letter!.headers) if (typeof value !== 'string') expect(value.buffer).not.toBe(batch);
  });

  test('the error message is cut at 1000 characters', () => {
    const plan = jobPlan<View>((s) =>
      s.map(() => {
        throw new Error('x'.repeat(5000));
      }),
    );
    const [letter] = processor(plan).process(pack([{ offset: 0, value: {} }]), WALL, WALL).dead;
    const message = letter!.headers.find(([n]) => n === 'sluice-error-message')![1] as string;
    expect(message).toBe(`map#1 threw Error: ${'x'.repeat(5000)}`.slice(0, 1000));
  });

  describe('windowed jobs', () => {
    const windowed = (aggregatorThrows: (v: View) => boolean): JobPlan =>
      jobPlan<View>(
        (s) =>
          s.window(tumbling('10s'), { idleTimeout: 0 }).aggregate(
            custom<View, number, number>({
              init: () => 0,
              add: (acc, v) => {
                if (aggregatorThrows(v)) throw new Error(`refused ${v.n}`);
                return acc + v.n;
              },
              merge: (a, b) => a + b,
              result: (acc) => acc,
            }),
          ),
        { eventTime: (v) => v.ts },
      );

    test('an aggregate that throws: dead letter, the window keeps the other records, the batch goes on', () => {
      const p = processor(windowed((v) => v.n < 0));
      const result = p.process(
        pack([
          { offset: 0, key: 'a', timestamp: 1, value: { n: 1, ts: 1_000 } },
          { offset: 1, key: 'a', timestamp: 2, value: { n: -5, ts: 2_000 } },
          { offset: 2, key: 'a', timestamp: 3, value: { n: 2, ts: 3_000 } },
          { offset: 3, key: 'b', timestamp: 4, value: { n: 7, ts: 25_000 } },
        ]),
        WALL,
        WALL,
      );
      expect(result.dead.map(headersOf)).toEqual([
        sourceHeaders('SLUICE_USER_CODE_FAILED', 'aggregate threw Error: refused -5', 1, 2),
      ]);
      expect(windowsOf(result)).toEqual([{ key: 'a', windowStart: 0, windowEnd: 10_000, value: 3 }]);
      expect(result.stats.late).toBe(0);
    });

    test('a built-in aggregator given a non-number', () => {
      const plan = jobPlan<View>((s) => s.window(tumbling('10s'), { idleTimeout: 0 }).aggregate(sum((v) => v.n)), {
        eventTime: (v) => v.ts,
      });
      const result = processor(plan).process(
        pack([{ offset: 0, key: 'a', timestamp: 9, value: { n: 'x', ts: 1_000 } }]),
        WALL,
        WALL,
      );
      expect(result.dead.map(headersOf)).toEqual([
        sourceHeaders(
          'SLUICE_USER_CODE_FAILED',
          'aggregate threw TypeError: aggregated value is not a finite number: "x"',
          0,
          9,
        ),
      ]);
    });

    test('a late record: SLUICE_LATE_RECORD with its event time', () => {
      const p = processor(windowed(() => false));
      p.process(pack([{ offset: 0, key: 'a', timestamp: 1, value: { n: 1, ts: 25_000 } }]), WALL, WALL);
      const result = p.process(pack([{ offset: 1, key: 'a', timestamp: 2, value: { n: 1, ts: 3_000 } }]), WALL, WALL);
      expect(result.dead.map(headersOf)).toEqual([
        [
          ...sourceHeaders(
            'SLUICE_LATE_RECORD',
            'event time 3000 is behind stream time 25000 by more than the allowed lateness',
            1,
            2,
          ),
          ['sluice-event-time', '3000'],
        ],
      ]);
      expect(result.stats.late).toBe(1);
    });

    test('a result that cannot be serialised: dead letter for that window, others still emitted', () => {
      const plan = jobPlan<View>(
        (s) =>
          s.window(tumbling('10s'), { idleTimeout: 0 }).aggregate(
            custom<View, number, unknown>({
              init: () => 0,
              add: (acc, v) => acc + v.n,
              merge: (a, b) => a + b,
              result: (acc) => (acc === 13 ? BigInt(acc) : acc),
            }),
          ),
        { eventTime: (v) => v.ts },
      );
      const result = processor(plan).process(
        pack([
          { offset: 0, key: 'a', value: { n: 13, ts: 1_000 } },
          { offset: 1, key: 'b', value: { n: 2, ts: 1_000 } },
          { offset: 2, key: 'c', value: { n: 1, ts: 50_000 } },
        ]),
        WALL,
        WALL,
      );
      expect(windowsOf(result)).toEqual([{ key: 'b', windowStart: 0, windowEnd: 10_000, value: 2 }]);
      expect(result.dead).toHaveLength(1);
      expect(text(result.dead[0]!.key)).toBe('a');
      expect(result.dead[0]!.value).toBeNull();
      expect(headersOf(result.dead[0]!)).toEqual([
        ['sluice-error-code', 'SLUICE_USER_CODE_FAILED'],
        ['sluice-error-message', 'TypeError: Do not know how to serialize a BigInt'],
        ['sluice-job', 'job'],
        ['sluice-window-start', '0'],
        ['sluice-window-end', '10000'],
      ]);
    });

    test('an aggregator result() that throws: dead letter for that window, the batch goes on', () => {
      const plan = jobPlan<View>(
        (s) =>
          s.window(tumbling('10s'), { idleTimeout: 0 }).aggregate(
            custom<View, number, number>({
              init: () => 0,
              add: (acc, v) => acc + v.n,
              merge: (a, b) => a + b,
              result: (acc) => {
                if (acc === 13) throw new Error('cannot render 13');
                return acc;
              },
            }),
          ),
        { eventTime: (v) => v.ts },
      );
      const p = processor(plan);
      const result = p.process(
        pack([
          { offset: 0, key: 'a', value: { n: 13, ts: 1_000 } },
          { offset: 1, key: 'b', value: { n: 2, ts: 1_000 } },
          { offset: 2, key: 'c', value: { n: 1, ts: 50_000 } },
        ]),
        WALL,
        WALL,
      );
      expect(windowsOf(result)).toEqual([{ key: 'b', windowStart: 0, windowEnd: 10_000, value: 2 }]);
      expect(result.dead.map(headersOf)).toEqual([
        [
          ['sluice-error-code', 'SLUICE_USER_CODE_FAILED'],
          ['sluice-error-message', 'Error: cannot render 13'],
          ['sluice-job', 'job'],
          ['sluice-window-start', '0'],
          ['sluice-window-end', '10000'],
        ],
      ]);
      // The failed window is not retried forever: the next batch is clean.
      const next = p.process(pack([{ offset: 3, key: 'c', value: { n: 1, ts: 51_000 } }]), WALL, WALL);
      expect(next.dead).toEqual([]);
    });
  });
});

// ---------------------------------------------------------------------------------------------
// Windows, the commit and the changelog
// ---------------------------------------------------------------------------------------------

describe('windowed jobs (one stage)', () => {
  const plan = jobPlan<View>(
    (s) => s.window(tumbling('10s'), { lateness: '2s', idleTimeout: 0 }).aggregate(sum((v) => v.n)),
    { eventTime: (v) => v.ts },
  );
  const rec = (offset: number, key: string | null, ts: number, n: number): In => ({
    offset,
    key,
    timestamp: 7,
    value: { ts, n },
  });

  test('final emission equals a hand computation; the commit is the end; the changelog holds what is open', () => {
    const p = processor(plan);
    expect(p.task.changelogPartition).toBe(0);
    expect(p.restoredAt).toBeNull();
    const b1 = p.process(
      pack([
        rec(0, 'a', 1_000, 1),
        rec(1, 'b', 2_000, 10),
        rec(2, 'a', 9_999, 2),
        rec(3, 'a', 10_000, 4), // next window
        rec(4, 'b', 11_000, 20),
        rec(5, 'a', 5_000, 8), // out of order, within lateness: [0, 10 000) closes at 12 000
        rec(6, 'b', 12_500, 40), // stream time 12 500: [0, 10 000) closes
      ]),
      WALL,
      WALL,
    );
    expect(outputsOf(b1)).toEqual([
      { key: 'a', value: '{"key":"a","windowStart":0,"windowEnd":10000,"value":11}', timestamp: -1 },
      { key: 'b', value: '{"key":"b","windowStart":0,"windowEnd":10000,"value":10}', timestamp: -1 },
    ]);
    expect(b1.stats).toMatchObject({
      recordsIn: 7,
      recordsOut: 2,
      late: 0,
      dead: 0,
      skipped: 0,
      changelog: 5,
      openWindows: 2,
      streamTime: 12_500,
    });
    // Open windows no longer hold the commit back: their state is in the changelog.
    expect(b1.commit).toEqual({ offset: 7, metadata: null });
    expect(b1.committed).toBe(false);
    expect(b1.changelogPartition).toBe(0);
    // The windows opened in the batch, tombstones for those it closed (never a put for them), the progress.
    expect(changelogView(changelogOf(b1))).toEqual([
      [10_000, 'a', 4],
      [10_000, 'b', 60],
      [0, 'a', null],
      [0, 'b', null],
      { task: 'in:0', end: 7, streamTime: 12_500, dedupe: new Map(), sources: new Map() },
    ]);
    expect(p.openWindows).toBe(2);

    const b2 = p.process(pack([rec(7, 'a', 1_500, 100), rec(8, 'a', 25_000, 3)]), WALL, WALL);
    expect(b2.stats.late).toBe(1);
    expect(b2.dead).toHaveLength(1);
    expect(windowsOf(b2)).toEqual([
      { key: 'a', windowStart: 10_000, windowEnd: 20_000, value: 4 },
      { key: 'b', windowStart: 10_000, windowEnd: 20_000, value: 60 },
    ]);
    expect(b2.commit?.offset).toBe(9);
    expect(changelogView(changelogOf(b2))).toEqual([
      [20_000, 'a', 3],
      [10_000, 'a', null],
      [10_000, 'b', null],
      { task: 'in:0', end: 9, streamTime: 25_000, dedupe: new Map(), sources: new Map() },
    ]);

    const b3 = p.process(pack([rec(9, null, 40_000, 5)]), WALL, WALL);
    expect(windowsOf(b3)).toEqual([{ key: 'a', windowStart: 20_000, windowEnd: 30_000, value: 3 }]);
    expect(b3.commit?.offset).toBe(10);
    // A null key is a key of its own, emitted as null and logged as null (not "null").
    expect(changelogView(changelogOf(b3))[0]).toEqual([40_000, null, 5]);
    const b4 = p.process(pack([rec(10, 'z', 100_000, 1)]), WALL, WALL);
    expect(outputsOf(b4)).toEqual([
      { key: null, value: '{"key":null,"windowStart":40000,"windowEnd":50000,"value":5}', timestamp: -1 },
    ]);
  });

  test('the changelog partition is the input partition’s position among the job’s input partitions', () => {
    const sources = ['clicks:0', 'clicks:1', 'in:0', 'in:1', 'in:2'];
    for (const [partition, at] of [
      [0, 2],
      [2, 4],
    ] as const) {
      const p = processor(plan, { partition, sources });
      expect(p.task.changelogPartition).toBe(at);
      expect(p.process(pack([rec(0, 'a', 1_000, 1)]), WALL, WALL).changelogPartition).toBe(at);
    }
    // A partition that is not among the job's inputs has no changelog partition: it cannot keep state.
    expect(() => taskFor(plan, { partition: 7, sources })).toThrow('in:7 has no changelog partition');
  });

  test('sliding windows: each record counts in every window containing it', () => {
    const slidingPlan = jobPlan<View>((s) => s.window(sliding('10s', '5s'), { idleTimeout: 0 }).aggregate(count()), {
      eventTime: (v) => v.ts,
    });
    const result = processor(slidingPlan).process(
      pack([rec(0, 'k', 3_000, 0), rec(1, 'k', 7_000, 0), rec(2, 'k', 12_000, 0), rec(3, 'x', 100_000, 0)]),
      WALL,
      WALL,
    );
    expect(windowsOf(result)).toEqual([
      { key: 'k', windowStart: -5_000, windowEnd: 5_000, value: 1 },
      { key: 'k', windowStart: 0, windowEnd: 10_000, value: 2 },
      { key: 'k', windowStart: 5_000, windowEnd: 15_000, value: 2 },
      { key: 'k', windowStart: 10_000, windowEnd: 20_000, value: 1 },
    ]);
  });

  test('the commit is the end, then null while nothing new is processed; idle closing is logged once', () => {
    const idlePlan = jobPlan<View>((s) => s.window(tumbling('10s'), { idleTimeout: '1s' }).aggregate(count()), {
      eventTime: (v) => v.ts,
    });
    const p = processor(idlePlan, { start: { committedOffset: 40, metadata: null } });
    expect(p.restoredAt).toBe(40);
    const b1 = p.process(pack([rec(40, 'a', 1_000, 0), rec(41, 'a', 5_000, 0), rec(42, 'b', 3_000, 0)]), WALL, WALL);
    expect(b1.commit).toEqual({ offset: 43, metadata: null });
    expect(b1.outputCount).toBe(0);
    const b2 = p.process(pack([]), WALL + 60_000, WALL + 60_000);
    expect(windowsOf(b2)).toEqual([
      { key: 'a', windowStart: 0, windowEnd: 10_000, value: 2 },
      { key: 'b', windowStart: 0, windowEnd: 10_000, value: 1 },
    ]);
    expect(b2.stats.openWindows).toBe(0);
    expect(b2.commit).toBeNull(); // nothing read since
    // The windows closed by idleness are tombstoned, and the progress carries the advanced stream time.
    expect(changelogView(changelogOf(b2))).toEqual([
      [0, 'a', null],
      [0, 'b', null],
      { task: 'in:0', end: 43, streamTime: 65_000, dedupe: new Map(), sources: new Map() },
    ]);
    const b3 = p.process(pack([]), WALL + 60_000, WALL + 60_000);
    expect(b3.commit).toBeNull();
    // Nothing changed, not even the progress: no changelog record at all.
    expect(b3.stats.changelog).toBe(0);
    expect(b3.changelog.byteLength).toBe(0);
  });

  test('the commit is the end of the batch, whatever windows are open and whatever was late or dead-lettered', () => {
    const p = processor(plan);
    expect(p.process(pack([rec(0, 'a', 50_000, 1)]), WALL, WALL).commit?.offset).toBe(1);
    const result = p.process(pack([rec(1, 'a', 1_000, 1), { offset: 2, value: 'bad' }]), WALL, WALL);
    expect(result.dead).toHaveLength(2);
    expect(result.commit?.offset).toBe(3);
    // Nothing but the progress moved: the late and the malformed records change no window.
    expect(changelogView(changelogOf(result))).toEqual([
      { task: 'in:0', end: 3, streamTime: 50_000, dedupe: new Map(), sources: new Map() },
    ]);
    const closes = p.process(pack([rec(3, 'b', 70_000, 1)]), WALL, WALL);
    expect(closes.commit?.offset).toBe(4);
  });

  test('update mode: the windows changed in a batch are emitted after it, the final value once', () => {
    const updatePlan = jobPlan<View>(
      (s) => s.window(tumbling('10s'), { emit: 'update', idleTimeout: 0 }).aggregate(sum((v) => v.n)),
      { eventTime: (v) => v.ts },
    );
    const p = processor(updatePlan);
    expect(windowsOf(p.process(pack([rec(0, 'a', 1_000, 1), rec(1, 'a', 2_000, 2)]), WALL, WALL))).toEqual([
      { key: 'a', windowStart: 0, windowEnd: 10_000, value: 3 },
    ]);
    expect(p.process(pack([]), WALL, WALL).outputCount).toBe(0);
    expect(windowsOf(p.process(pack([rec(2, 'b', 3_000, 5)]), WALL, WALL))).toEqual([
      { key: 'b', windowStart: 0, windowEnd: 10_000, value: 5 },
    ]);
  });

  test('an accumulator the changelog cannot store: its window is dead-lettered and tombstoned, the rest goes on', () => {
    const fnPlan = jobPlan<View>(
      (s) =>
        s.window(tumbling('10s'), { idleTimeout: 0 }).aggregate(
          custom<View, { n: number; f?: () => number }, number>({
            init: () => ({ n: 0 }),
            // A function in the accumulator: fine in memory, not storable.
            add: (acc, v) => (v.k === 'fn' ? { n: acc.n + v.n, f: () => 1 } : { n: acc.n + v.n }),
            merge: (a, b) => ({ n: a.n + b.n }),
            result: (acc) => acc.n,
          }),
        ),
      { eventTime: (v) => v.ts },
    );
    const p = processor(fnPlan);
    const b1 = p.process(
      pack([
        { offset: 0, key: 'bad', value: { k: 'fn', n: 1, ts: 1_000 } },
        { offset: 1, key: 'good', value: { k: 'x', n: 2, ts: 1_000 } },
      ]),
      WALL,
      WALL,
    );
    expect(b1.dead.map(headersOf)).toEqual([
      [
        ['sluice-error-code', 'SLUICE_STATE_FAILED'],
        ['sluice-error-message', expect.stringContaining('the accumulator cannot be stored')],
        ['sluice-job', 'job'],
        ['sluice-window-start', '0'],
        ['sluice-window-end', '10000'],
      ],
    ]);
    expect(text(b1.dead[0]!.key)).toBe('bad');
    expect(changelogView(changelogOf(b1))).toEqual([
      [0, 'bad', null],
      [0, 'good', { n: 2 }],
      { task: 'in:0', end: 2, streamTime: 1_000, dedupe: new Map(), sources: new Map() },
    ]);
    expect(p.openWindows).toBe(1); // dropped, so that a restart cannot differ from this run
    const b2 = p.process(pack([{ offset: 2, key: 'z', value: { k: 'x', n: 0, ts: 50_000 } }]), WALL, WALL);
    expect(windowsOf(b2)).toEqual([{ key: 'good', windowStart: 0, windowEnd: 10_000, value: 2 }]);
    expect(b2.dead).toEqual([]);
  });
});

// ---------------------------------------------------------------------------------------------
// Restart exactness
// ---------------------------------------------------------------------------------------------

describe('restart: state restored from the changelog', () => {
  interface Ev {
    ts: number;
    n: number;
  }
  const N = 400;

  /** Mostly ordered event times with jitter, some very late records, some malformed ones, then a flush. */
  function generate(seed: number): In[] {
    const random = seeded(seed);
    const records: In[] = [];
    for (let i = 0; i < N; i++) {
      const key = ['a', 'b', 'c', null][Math.floor(random() * 4)]!;
      let ts = 100_000 + i * 400 + Math.floor(random() * 4_000) - 3_000;
      if (random() < 0.05) ts -= 30_000;
      const value = random() < 0.04 ? 'not json' : { ts, n: 1 + Math.floor(random() * 9) };
      records.push({ offset: i, key, timestamp: 1, value });
    }
    records.push({ offset: N, key: 'z', timestamp: 1, value: { ts: 10_000_000, n: 0 } });
    return records;
  }

  function split(records: In[], seed: number): In[][] {
    const random = seeded(seed);
    const batches: In[][] = [];
    for (let i = 0; i < records.length;) {
      const size = 1 + Math.floor(random() * 25);
      batches.push(records.slice(i, i + size));
      i += size;
    }
    return batches;
  }

  const planFor = (assigner: WindowAssigner, lateness: number, emit: 'final' | 'update'): JobPlan =>
    jobPlan<Ev>((s) => s.window(assigner, { lateness, emit, idleTimeout: 0 }).aggregate(sum((v) => v.n)), {
      eventTime: (v) => v.ts,
    });

  const run = (p: TestTask, batches: In[][]): PartitionResult[] => batches.map((b) => p.process(pack(b), WALL, WALL));
  const windowId = (w: WindowOut): string => `${w.key}@${w.windowStart}`;
  const deadOffsets = (results: PartitionResult[]): number[] =>
    results.flatMap((r) =>
      r.dead.map((d) => Number(d.headers.find(([n]) => n === 'sluice-source-offset')![1] as string)),
    );

  /** The restarted run's batches are the uninterrupted run's: outputs, dead letters, commits, changelog. */
  function expectSameBatches(
    again: PartitionResult[],
    reference: PartitionResult[],
    changelog: 'exact' | 'unordered' = 'exact',
  ): void {
    expect(again).toHaveLength(reference.length);
    again.forEach((r, i) => {
      const ref = reference[i]!;
      expect(outputsOf(r)).toEqual(outputsOf(ref));
      expect(r.dead.map(headersOf)).toEqual(ref.dead.map(headersOf));
      expect(r.commit).toEqual(ref.commit);
      expect(r.stats).toEqual(ref.stats);
      if (changelog === 'exact') expect(changelogOf(r)).toEqual(changelogOf(ref));
      else expect(changelogOf(r).map(recordText).sort()).toEqual(changelogOf(ref).map(recordText).sort());
    });
  }

  const scenarios: Array<[string, WindowAssigner, number]> = [
    ['tumbling 10s, lateness 2s', tumbling('10s'), 2_000],
    ['sliding 10s/5s, no lateness', sliding('10s', '5s'), 0],
  ];

  for (const [name, assigner, lateness] of scenarios) {
    describe(name, () => {
      const records = generate(11);
      const batches = split(records, 5);
      const finalPlan = planFor(assigner, lateness, 'final');
      const reference = run(processor(finalPlan), batches);
      const referenceWindows = new Map(reference.flatMap(windowsOf).map((w) => [windowId(w), w.value]));
      const endOf = (k: number): number => batches[k - 1]!.at(-1)!.offset + 1;
      /** Restart points: after the first batch, several in between, before the last. */
      const points = [1, 2, 5, 9, 14, Math.floor(batches.length / 2), batches.length - 2, batches.length - 1];

      test('the uninterrupted run is non-trivial: windows, late and malformed records, entries and tombstones', () => {
        expect(referenceWindows.size).toBeGreaterThan(20);
        const codes = new Set(reference.flatMap((r) => r.dead.map((d) => headersOf(d)[0]![1])));
        expect(codes).toEqual(new Set(['SLUICE_LATE_RECORD', 'SLUICE_DESERIALIZE_FAILED']));
        const views = changelogView(changelogOfAll(reference));
        expect(views.filter((v) => Array.isArray(v) && v[2] === null).length).toBeGreaterThan(20);
        expect(views.filter((v) => Array.isArray(v) && v[2] !== null).length).toBeGreaterThan(20);
        expect(views).not.toContain('unknown');
        // Every batch commits its end, and its progress says so.
        reference.forEach((r, i) => {
          expect(r.commit).toEqual({ offset: endOf(i + 1), metadata: null });
          expect(lastProgress(changelogOf(r))?.end).toBe(endOf(i + 1));
        });
      });

      test('restored after a batch (its changelog and commit written): the rest is identical, changelog included', () => {
        for (const k of points) {
          const changelog = changelogOfAll(reference.slice(0, k));
          const p = processor(finalPlan, { start: { committedOffset: endOf(k), metadata: null }, changelog });
          expect(p.restoredAt).toBe(endOf(k));
          expect(p.openWindows).toBe(reference[k - 1]!.stats.openWindows);
          expectSameBatches(run(p, batches.slice(k)), reference.slice(k));
        }
      });

      test('restored from the compacted changelog, read in chunks: the same', () => {
        for (const k of points) {
          const changelog = compacted(changelogOfAll(reference.slice(0, k)));
          const p = processor(finalPlan, {
            start: { committedOffset: endOf(k), metadata: null },
            changelog,
            chunks: 3,
          });
          expect(p.restoredAt).toBe(endOf(k));
          // Compaction reorders the entries: the closing batches' tombstones may come in another order.
          expectSameBatches(run(p, batches.slice(k)), reference.slice(k), 'unordered');
        }
      });

      test('at-least-once, the last commits lost: the records the state holds are skipped, nothing twice, nothing lost', () => {
        for (const k of points) {
          const acked = Math.max(0, k - 3); // batches acked+1..k were published with their changelog, not committed
          const committed = acked === 0 ? null : endOf(acked);
          const changelog = changelogOfAll(reference.slice(0, k));
          const p = processor(finalPlan, { start: { committedOffset: committed, metadata: null }, changelog });
          expect(p.restoredAt).toBe(endOf(k));
          const from = committed ?? 0;
          const [again, ...rest] = run(p, [records.slice(from, endOf(k)), ...batches.slice(k)]);
          expect(again!.stats).toMatchObject({ recordsIn: 0, skipped: endOf(k) - from, replayed: 0, late: 0 });
          expect(again!.outputCount).toBe(0);
          expect(again!.dead).toEqual([]);
          expect(again!.commit).toEqual({ offset: endOf(k), metadata: null });
          expectSameBatches(rest, reference.slice(k));

          // Over both runs: every window once with its value, every dead letter once.
          const first = reference.slice(0, k);
          const windows = [...first, ...rest].flatMap(windowsOf);
          expect(windows.map(windowId).sort()).toEqual([...referenceWindows.keys()].sort());
          for (const w of windows) expect(w.value).toEqual(referenceWindows.get(windowId(w)));
          expect(deadOffsets([...first, again!, ...rest])).toEqual(deadOffsets(reference));
        }
      });

      test('update mode: restored after a batch, updates go on exactly as without the restart', () => {
        const updatePlan = planFor(assigner, lateness, 'update');
        const ref = run(processor(updatePlan), batches);
        expect(ref.reduce((n, r) => n + r.outputCount, 0)).toBeGreaterThan(
          reference.reduce((n, r) => n + r.outputCount, 0),
        );
        for (const k of points) {
          const changelog = changelogOfAll(ref.slice(0, k));
          const p = processor(updatePlan, { start: { committedOffset: endOf(k), metadata: null }, changelog });
          expectSameBatches(run(p, batches.slice(k)), ref.slice(k));
        }
      });

      test('restarted again and again: after every few batches a new task restored from all that was written', () => {
        let p = processor(finalPlan);
        const results: PartitionResult[] = [];
        batches.forEach((b, k) => {
          if (k > 0 && k % 3 === 0) {
            p = processor(finalPlan, {
              start: { committedOffset: endOf(k), metadata: null },
              changelog: compacted(changelogOfAll(results)),
            });
          }
          results.push(p.process(pack(b), WALL, WALL));
        });
        expect(results.flatMap(windowsOf)).toEqual(reference.flatMap(windowsOf));
        expect(results.flatMap((r) => r.dead.map(headersOf))).toEqual(reference.flatMap((r) => r.dead.map(headersOf)));
      });
    });
  }

  const plan = planFor(tumbling('10s'), 0, 'final');

  test('records below the restored position are skipped and counted, neither aggregated nor dead-lettered again', () => {
    const changelog = [entryRecord(0, 'a', 5), progressRecord({ task: 'in:0', end: 10, streamTime: 4_000 })];
    const p = processor(plan, { start: { committedOffset: 6, metadata: null }, changelog });
    expect(p.restoredAt).toBe(10);
    expect(p.openWindows).toBe(1);
    const result = p.process(
      pack([
        { offset: 8, key: 'a', value: { ts: 1_000, n: 100 } },
        { offset: 9, key: 'a', value: 'not json' }, // dead-lettered before the restart
        { offset: 10, key: 'a', value: { ts: 2_000, n: 1 } },
        { offset: 11, key: 'b', value: { ts: 30_000, n: 1 } },
      ]),
      WALL,
      WALL,
    );
    expect(result.stats).toMatchObject({ recordsIn: 2, skipped: 2, dead: 0, late: 0 });
    expect(result.dead).toEqual([]);
    expect(windowsOf(result)).toEqual([{ key: 'a', windowStart: 0, windowEnd: 10_000, value: 6 }]);
    expect(result.commit).toEqual({ offset: 12, metadata: null });
  });

  test('a restored position behind the committed offset: the records below the commit are skipped too', () => {
    const changelog = [progressRecord({ task: 'in:0', end: 3, streamTime: 1_000 })];
    const p = processor(plan, { start: { committedOffset: 5, metadata: null }, changelog });
    expect(p.restoredAt).toBe(5);
    const result = p.process(
      pack([3, 4, 5].map((o) => ({ offset: o, key: 'a', value: { ts: 2_000, n: 1 } }))),
      WALL,
      WALL,
    );
    expect(result.stats).toMatchObject({ recordsIn: 1, skipped: 2 });
  });

  test('the restored stream time decides lateness from the first record on', () => {
    const changelog = [progressRecord({ task: 'in:0', end: 1, streamTime: 25_000 })];
    const p = processor(plan, { start: { committedOffset: 1, metadata: null }, changelog });
    const result = p.process(pack([{ offset: 1, key: 'a', timestamp: 2, value: { ts: 12_000, n: 1 } }]), WALL, WALL);
    expect(result.stats.late).toBe(1);
    expect(result.stats.streamTime).toBe(25_000);
    expect(headersOf(result.dead[0]!)).toContainEqual([
      'sluice-error-message',
      'event time 12000 is behind stream time 25000 by more than the allowed lateness',
    ]);
  });

  test('the last record of the changelog for an entry wins; a tombstone removes it; the last progress counts', () => {
    const changelog = [
      entryRecord(0, 'a', 1),
      entryRecord(0, 'b', 7),
      progressRecord({ task: 'in:0', end: 3, streamTime: 1_000 }),
      entryRecord(0, 'a', 4),
      entryRecord(0, 'b', null), // b's window was dropped
      entryRecord(0, 'null', 2), // not the null key
      progressRecord({ task: 'in:0', end: 8, streamTime: 2_000 }),
    ];
    const p = processor(plan, { start: { committedOffset: 3, metadata: null }, changelog });
    expect(p.restoredAt).toBe(8);
    expect(p.openWindows).toBe(2);
    const result = p.process(pack([{ offset: 8, key: 'z', value: { ts: 50_000, n: 1 } }]), WALL, WALL);
    expect(windowsOf(result)).toEqual([
      { key: 'a', windowStart: 0, windowEnd: 10_000, value: 4 },
      { key: 'null', windowStart: 0, windowEnd: 10_000, value: 2 },
    ]);
  });

  test('changelog records this format never wrote are ignored', () => {
    const changelog: StoredRecord[] = [
      { key: null, value: bytes('x') },
      { key: bytes('{"window":0}'), value: bytes('1') },
      { key: Uint8Array.from([0x07, 1, 2]), value: null },
      { key: PROGRESS_KEY, value: bytes('not json') }, // a progress this format cannot read: no progress
      { key: PROGRESS_KEY, value: null },
      entryRecord(0, 'a', 3),
    ];
    const p = processor(plan, { start: { committedOffset: 4, metadata: null }, changelog });
    expect(p.restoredAt).toBe(4); // no progress read: the committed offset
    expect(p.openWindows).toBe(1);
  });

  test('a progress record of another task: restore throws a StateError naming both (the inputs changed)', () => {
    const task = taskFor(plan, { partition: 1, sources: ['in:0', 'in:1'] });
    expect(task.changelogPartition).toBe(1);
    let error: unknown;
    try {
      task.restore([entryRecord(0, 'a', 1), progressRecord({ task: 'in:0', end: 5 })]);
    } catch (e) {
      error = e;
    }
    expect(error).toBeInstanceOf(StateError);
    expect((error as StateError).code).toBe('SLUICE_STATE_FAILED');
    expect((error as StateError).message).toContain('changelog partition 1 holds the state of in:0, not in:1');
    // The same task's progress is fine.
    const own = taskFor(plan, { partition: 1, sources: ['in:0', 'in:1'] });
    own.restore([progressRecord({ task: 'in:1', end: 5 })]);
    expect(own.restored()).toBe(5);
  });

  test('restore() in chunks is restore() at once', () => {
    const results = run(processor(plan), split(generate(3), 9).slice(0, 6));
    const changelog = changelogOfAll(results);
    const end = results.at(-1)!.commit!.offset;
    const whole = processor(plan, { start: { committedOffset: end, metadata: null }, changelog });
    const chunked = processor(plan, { start: { committedOffset: end, metadata: null }, changelog, chunks: 7 });
    const flush = pack([{ offset: end, key: 'z', value: { ts: 10_000_000, n: 0 } }]);
    expect(whole.openWindows).toBeGreaterThan(0);
    expect(chunked.openWindows).toBe(whole.openWindows);
    expect(outputsOf(chunked.process(flush, WALL, WALL))).toEqual(outputsOf(whole.process(flush, WALL, WALL)));
  });
});

// ---------------------------------------------------------------------------------------------
// Upgrade: state kept in commit metadata by a version before the changelog
// ---------------------------------------------------------------------------------------------

describe('upgrade: a checkpoint in the commit metadata and an empty changelog (replay from the commit)', () => {
  interface Ev {
    ts: number;
    n: number;
  }
  const plan = jobPlan<Ev>(
    (s) => s.window(tumbling('10s'), { lateness: '1s', idleTimeout: 0 }).aggregate(sum((v) => v.n)),
    { eventTime: (v) => v.ts },
  );
  /** 120 records over 60 s of event time, a few late and a few malformed, then a flush. */
  const records: In[] = (() => {
    const random = seeded(21);
    const list: In[] = [];
    for (let i = 0; i < 120; i++) {
      let ts = 10_000 + i * 500 + Math.floor(random() * 1_500) - 1_000;
      if (random() < 0.05) ts -= 20_000;
      const value = random() < 0.05 ? 'not json' : { ts, n: 1 + Math.floor(random() * 5) };
      list.push({ offset: i, key: ['a', 'b'][i % 2]!, timestamp: 1, value });
    }
    list.push({ offset: 120, key: 'z', timestamp: 1, value: { ts: 1_000_000, n: 0 } });
    return list;
  })();
  const batches = Array.from({ length: Math.ceil(records.length / 10) }, (_, i) => records.slice(i * 10, i * 10 + 10));
  const reference = ((p: TestTask) => batches.map((b) => p.process(pack(b), WALL, WALL)))(processor(plan));
  /**
   * What the version before the changelog committed after batch k: the earliest offset an open window
   * still needed (its windows' last end + lateness beyond the stream time), with the checkpoint.
   */
  function legacyCommit(k: number): { offset: number; checkpoint: Checkpoint } {
    const end = k * 10;
    const streamTime = reference[k - 1]!.stats.streamTime;
    const needed = records
      .slice(0, end)
      .filter((r) => typeof r.value === 'object' && streamTime !== null)
      .filter((r) => Math.floor((r.value as Ev).ts / 10_000) * 10_000 + 10_000 + 1_000 > streamTime!)
      .map((r) => r.offset);
    return { offset: needed.length > 0 ? Math.min(...needed) : end, checkpoint: checkpoint({ end, streamTime }) };
  }

  test('records from the commit to the checkpoint’s end rebuild the windows silently; the rest is identical', () => {
    let replayedSome = false;
    for (let k = 1; k < batches.length; k++) {
      const { offset, checkpoint: cp } = legacyCommit(k);
      for (const committed of new Set([0, offset])) {
        const p = processor(plan, { start: { committedOffset: committed, metadata: encodeCheckpoint(cp) } });
        expect(p.restoredAt).toBe(committed);
        const replay = p.process(pack(records.slice(committed, cp.end)), WALL, WALL);
        replayedSome ||= replay.stats.replayed > 0 && committed > 0;
        expect(replay.stats).toMatchObject({ replayed: cp.end - committed, recordsIn: cp.end - committed, late: 0 });
        expect(replay.outputCount).toBe(0);
        expect(replay.dead).toEqual([]);
        expect(replay.commit).toEqual({ offset: cp.end, metadata: null });
        expect(replay.stats.openWindows).toBe(reference[k - 1]!.stats.openWindows);
        // From here on the state is in the changelog: the progress says the replay is over.
        expect(lastProgress(changelogOf(replay))).toEqual({
          task: 'in:0',
          end: cp.end,
          streamTime: cp.streamTime,
          dedupe: new Map(),
          sources: new Map(),
        });
        const rest = batches.slice(k).map((b) => p.process(pack(b), WALL, WALL));
        rest.forEach((r, i) => {
          expect(outputsOf(r)).toEqual(outputsOf(reference[k + i]!));
          expect(r.dead.map(headersOf)).toEqual(reference[k + i]!.dead.map(headersOf));
          expect(r.stats.replayed).toBe(0);
        });
      }
    }
    expect(replayedSome).toBe(true);
  });

  test('an upgrade interrupted during its replay goes on replaying after a restore from the changelog', () => {
    const k = 8;
    const { offset, checkpoint: cp } = legacyCommit(k);
    expect(cp.end - offset).toBeGreaterThan(4);
    const metadata = encodeCheckpoint(cp);
    const p = processor(plan, { start: { committedOffset: offset, metadata } });
    const half = offset + 3;
    const first = p.process(pack(records.slice(offset, half)), WALL, WALL);
    expect(first.stats.replayed).toBe(3);
    expect(first.commit).toEqual({ offset: half, metadata: null });
    expect(lastProgress(changelogOf(first))).toMatchObject({ end: half, replayUntil: cp.end });
    // The crash: the commit (without metadata now) and the changelog are what is left.
    const q = processor(plan, { start: { committedOffset: half, metadata: null }, changelog: changelogOf(first) });
    expect(q.restoredAt).toBe(half);
    const second = q.process(pack(records.slice(half, cp.end)), WALL, WALL);
    expect(second.stats.replayed).toBe(cp.end - half);
    expect(second.outputCount).toBe(0);
    expect(second.dead).toEqual([]);
    expect(lastProgress(changelogOf(second))).not.toHaveProperty('replayUntil');
    const rest = batches.slice(k).map((b) => q.process(pack(b), WALL, WALL));
    expect(rest.flatMap(outputsOf)).toEqual(reference.slice(k).flatMap(outputsOf));
  });

  test('a progress record in the changelog wins over a checkpoint left in the metadata', () => {
    const metadata = encodeCheckpoint(checkpoint({ end: 50, streamTime: 1_000 }));
    const changelog = [progressRecord({ task: 'in:0', end: 20, streamTime: 2_000 })];
    const p = processor(plan, { start: { committedOffset: 20, metadata }, changelog });
    expect(p.restoredAt).toBe(20);
    const result = p.process(pack([{ offset: 20, key: 'a', value: { ts: 5_000, n: 1 } }]), WALL, WALL);
    expect(result.stats).toMatchObject({ replayed: 0, recordsIn: 1, streamTime: 5_000 });
  });

  test('foreign commit metadata starts fresh at the committed offset (nothing replayed)', () => {
    const p = processor(plan, { start: { committedOffset: 5, metadata: 'written-by-another-tool' } });
    expect(p.restoredAt).toBe(5);
    const result = p.process(pack([{ offset: 5, key: 'a', value: { ts: 1_000, n: 1 } }]), WALL, WALL);
    expect(result.stats.replayed).toBe(0);
    expect(result.commit).toEqual({ offset: 6, metadata: null });
  });

  test('a checkpoint without a committed offset is not an upgrade: nothing replayed', () => {
    const p = processor(plan, { start: { committedOffset: null, metadata: encodeCheckpoint(checkpoint({ end: 9 })) } });
    expect(p.restoredAt).toBeNull();
    const result = p.process(pack([{ offset: 0, key: 'a', value: { ts: 1_000, n: 1 } }]), WALL, WALL);
    expect(result.stats.replayed).toBe(0);
  });
});

// ---------------------------------------------------------------------------------------------
// Re-keyed jobs: stage 1 (writes the repartition topic) and stage 2 (aggregates it)
// ---------------------------------------------------------------------------------------------

interface PageView {
  page: string;
  ts: number;
  pages?: string[];
}

const pvPlan = compileJob(
  defineJob<PageView>({
    name: 'job',
    input: { topics: ['views'] },
    eventTime: (v) => v.ts,
    pipeline: (s) =>
      s
        .keyBy((v) => v.page)
        .window(tumbling('10s'), { idleTimeout: '5s' })
        .aggregate(count()),
    output: { topic: 'out' },
  }),
);

describe('stage 1 of a re-keyed job', () => {
  test('the plan splits at the keyBy', () => {
    expect(pvPlan.repartitionTopic).toBe('job-repartition');
    expect(pvPlan.stage1.map((o) => o.kind)).toEqual(['keyBy']);
    expect(pvPlan.stage2).toEqual([]);
  });

  test('writes re-keyed records into one block per target partition, with position and event time', () => {
    const p = processor(pvPlan, { topic: 'views', partition: 3, repartitionPartitions: 4 });
    const result = p.process(
      pack([
        { offset: 10, key: 'user-1', timestamp: 1, value: { page: 'home', ts: 5_000 } },
        { offset: 11, key: 'user-2', timestamp: 2, value: { page: 'about', ts: 3_000 } },
        { offset: 12, timestamp: 3, value: 'broken' },
        { offset: 13, key: 'user-3', timestamp: 4, value: { page: 'home', ts: 6_000 } },
      ]),
      WALL,
      WALL,
    );
    expect(result.outputCount).toBe(0);
    expect(result.repartitionCount).toBe(3);
    // Kafka's default partitioner decides: the same key always lands in the same partition.
    const home = partitionFor(bytes('home'), 4);
    const about = partitionFor(bytes('about'), 4);
    expect(result.repartition.map((b) => b.partition).sort()).toEqual([...new Set([home, about])].sort());
    expect(
      entriesOf(result).map((e) => ({
        partition: e.partition,
        key: text(e.key),
        value: text(e.value),
        position: [e.offset, e.sequence],
        eventTime: e.eventTime,
        encoding: e.encoding,
      })),
    ).toEqual(
      expect.arrayContaining([
        {
          partition: home,
          key: 'home',
          value: '{"page":"home","ts":5000}',
          position: [10, 0],
          eventTime: 5_000,
          encoding: 'json',
        },
        {
          partition: about,
          key: 'about',
          value: '{"page":"about","ts":3000}',
          position: [11, 0],
          eventTime: 3_000,
          encoding: 'json',
        },
        {
          partition: home,
          key: 'home',
          value: '{"page":"home","ts":6000}',
          position: [13, 0],
          eventTime: 6_000,
          encoding: 'json',
        },
      ]),
    );
    // Within a partition, entries keep the input order.
    expect(
      entriesOf(result)
        .filter((e) => e.partition === home)
        .map((e) => e.offset),
    ).toEqual([10, 13]);
    expect(entriesOf(result)).toHaveLength(3);
    expect(result.dead).toHaveLength(1);
    // Stage 1 holds no window: it commits its end, without metadata.
    expect(result.commit).toEqual({ offset: 14, metadata: null });
    expect(result.stats.openWindows).toBe(0);
  });

  test('a large batch is split into several blocks per partition, none lost, order kept', () => {
    const p = processor(pvPlan, { topic: 'views', partition: 0, repartitionPartitions: 2 });
    const pad = 'x'.repeat(1_000);
    const input = Array.from({ length: 2_000 }, (_, i) => ({
      offset: i,
      value: { page: `p${i % 7}`, ts: 1_000 + i, pad },
    }));
    const result = p.process(pack(input), WALL, WALL);
    expect(result.repartition.length).toBeGreaterThan(4);
    for (const b of result.repartition) expect(b.data.length).toBeLessThan(300 * 1024);
    expect(result.repartitionCount).toBe(2_000);
    const entries = entriesOf(result);
    expect(entries.map((e) => e.offset).sort((x, y) => x - y)).toEqual(input.map((r) => r.offset));
    for (const partition of [0, 1]) {
      const offsets = entries.filter((e) => e.partition === partition).map((e) => e.offset);
      expect(offsets).toEqual([...offsets].sort((x, y) => x - y));
      for (const e of entries.filter((x) => x.partition === partition)) {
        expect(partitionFor(e.key!, 2)).toBe(partition);
      }
    }
  });

  test('a value that only passed filter and keyBy is written as the input bytes; a mapped one re-serialized', () => {
    const raw = '{ "page": "home",  "ts": 5000, "extra": [1, 2] }';
    const passed = processor(pvPlan, { topic: 'views', partition: 0 }).process(
      pack([{ offset: 0, value: raw }]),
      WALL,
      WALL,
    );
    expect(entriesOf(passed).map((e) => [e.encoding, text(e.value)])).toEqual([['json', raw]]);
    const mapped = compileJob(
      defineJob<PageView>({
        name: 'job',
        input: { topics: ['views'] },
        eventTime: (v) => v.ts,
        pipeline: (s) =>
          s
            .map((v) => ({ ...v, page: v.page.toUpperCase() }))
            .keyBy((v) => v.page)
            .window(tumbling('10s'))
            .aggregate(count()),
        output: { topic: 'out' },
      }),
    );
    const changed = processor(mapped, { topic: 'views', partition: 0 }).process(
      pack([{ offset: 0, value: raw }]),
      WALL,
      WALL,
    );
    expect(entriesOf(changed).map((e) => [text(e.key), text(e.value)])).toEqual([
      ['HOME', '{"page":"HOME","ts":5000,"extra":[1,2]}'],
    ]);
  });

  test('one input record that becomes several re-keyed records numbers them 0, 1, 2…', () => {
    const plan = compileJob(
      defineJob<PageView>({
        name: 'job',
        input: { topics: ['views'] },
        eventTime: (v) => v.ts,
        pipeline: (s) =>
          s
            .flatMap((v) => (v.pages ?? []).map((page) => ({ page, ts: v.ts })))
            .keyBy((v) => v.page)
            .window(tumbling('10s'))
            .aggregate(count()),
        output: { topic: 'out' },
      }),
    );
    const result = processor(plan, { topic: 'views', partition: 0 }).process(
      pack([{ offset: 7, value: { page: '', ts: 1_000, pages: ['a', 'b', 'c'] } }]),
      WALL,
      WALL,
    );
    expect(entriesOf(result).map((e) => [text(e.key), `${e.offset}:${e.sequence}`])).toEqual([
      ['a', '7:0'],
      ['b', '7:1'],
      ['c', '7:2'],
    ]);
  });

  test('reports its stream time only when it changed, and idle after idleTimeout without records', () => {
    const p = processor(pvPlan, { topic: 'views', partition: 0 });
    const at = (wall: number, records: In[]): PartitionResult['watermark'] =>
      p.process(pack(records), WALL + wall, WALL + wall).watermark;
    const view = (offset: number, ts: number): In => ({ offset, value: { page: 'p', ts } });

    expect(at(0, [view(0, 5_000), view(1, 3_000)])).toEqual({ streamTime: 5_000, idle: false });
    expect(at(1_000, [])).toBeNull();
    expect(at(4_999, [])).toBeNull();
    expect(at(5_000, [])).toEqual({ streamTime: 5_000, idle: true });
    expect(at(6_000, [])).toBeNull();
    expect(at(7_000, [view(2, 4_000)])).toEqual({ streamTime: 5_000, idle: false });
    expect(at(7_500, [view(3, 9_000)])).toEqual({ streamTime: 9_000, idle: false });
    expect(at(8_000, [view(4, 9_000)])).toBeNull();
    expect(at(8_000, [{ offset: 5, value: 'not json' }])).toBeNull();
  });
});

describe('stage 2 of a re-keyed job', () => {
  const A = 'views:0';
  const B = 'views:1';
  const stage2 = (opts: ProcessorOpts = {}): TestTask =>
    processor(pvPlan, { topic: 'job-repartition', partition: 0, sources: [A, B], ...opts });
  const control = (offset: number, source: string, wm: number | null, idle = false): In => ({
    offset,
    key: null,
    value: null,
    headers: [
      [SOURCE_HEADER, source],
      [WATERMARK_HEADER, wm === null ? '' : String(wm)],
      [IDLE_HEADER, idle ? '1' : '0'],
    ],
  });
  /** A block record from `source`: entries [upstream offset, sequence, page, event time]. */
  const block = (offset: number, source: string, entries: Array<[number, number, string, number]>): In => {
    const writer = new BlockWriter(1);
    for (const [o, seq, page, ts] of entries) {
      writer.add(bytes(page), entryAt(o, seq, ts), 'json', JSON.stringify({ page, ts }));
    }
    const [only] = writer.finish();
    return {
      offset,
      timestamp: WALL,
      key: null,
      value: only!.data,
      headers: [
        [SOURCE_HEADER, source],
        [BLOCK_HEADER, '2'],
      ],
    };
  };

  /** One re-keyed record from `source` at upstream position `pos` (`offset:sequence`), as a one-entry block. */
  const data = (offset: number, source: string, pos: string, page: string, ts: number): In => {
    const [o, seq] = pos.split(':').map(Number) as [number, number];
    return block(offset, source, [[o, seq, page, ts]]);
  };

  test('stream time is the smallest of the upstream sources; a record on time for its source is not late', () => {
    const p = stage2();
    const b1 = p.process(pack([control(0, A, 1_000), control(1, B, 100_000)]), WALL, WALL);
    expect(b1.stats.streamTime).toBe(1_000);
    expect(b1.stats.recordsIn).toBe(0);
    // B is far ahead; A's record at 1 500 is on time for A.
    const b2 = p.process(pack([data(2, A, '0:0', 'home', 1_500)]), WALL, WALL);
    expect(b2.dead).toEqual([]);
    expect(b2.stats).toMatchObject({ recordsIn: 1, late: 0, openWindows: 1, streamTime: 1_500 });
    // A moves past B: the stage's stream time is now B's, and [0, 10 000) closes.
    const b3 = p.process(pack([data(3, A, '1:0', 'home', 200_000)]), WALL, WALL);
    expect(windowsOf(b3)).toEqual([{ key: 'home', windowStart: 0, windowEnd: 10_000, value: 1 }]);
    expect(b3.stats.streamTime).toBe(100_000);
  });

  test('an expected source that never reported holds the stream time back', () => {
    const p = stage2();
    const result = p.process(pack([control(0, A, 50_000), data(1, A, '0:0', 'home', 1_000)]), WALL, WALL);
    expect(result.stats.streamTime).toBeNull();
    expect(result.dead).toEqual([]);
    expect(result.outputCount).toBe(0);
  });

  test('a source that is not expected does not count', () => {
    const p = stage2();
    const result = p.process(pack([control(0, A, 5_000), control(1, B, 7_000), control(2, 'other:9', 1)]), WALL, WALL);
    expect(result.stats.streamTime).toBe(5_000);
  });

  test('idle sources are left out of the minimum; all idle: the largest', () => {
    const p = stage2();
    expect(p.process(pack([control(0, A, 5_000, true), control(1, B, 30_000)]), WALL, WALL).stats.streamTime).toBe(
      30_000,
    );
    const q = stage2();
    expect(q.process(pack([control(0, A, 50_000, true), control(1, B, 30_000)]), WALL, WALL).stats.streamTime).toBe(
      30_000,
    );
    const r = stage2();
    expect(
      r.process(pack([control(0, A, 5_000, true), control(1, B, 30_000, true)]), WALL, WALL).stats.streamTime,
    ).toBe(30_000);
  });

  /**
   * The dead letter of B's record 4:0 (event time 1 000, input timestamp 1 007), late at repartition
   * offset 2 (stream time 30 000): it names its input record (views:1 offset 4), not the internal topic.
   */
  const lateAt2FromB4: HeaderView[] = [
    ...sourceHeaders(
      'SLUICE_LATE_RECORD',
      'event time 1000 is behind stream time 30000 by more than the allowed lateness',
      4,
      1_007,
      'views',
      1,
    ),
    ['sluice-event-time', '1000'],
    [SOURCE_HEADER, B],
    [POSITION_HEADER, '4:0'],
    ['sluice-enc', 'json'],
  ];

  test('a late record in stage 2 is dead-lettered against the stage’s stream time', () => {
    const p = stage2();
    p.process(pack([control(0, A, 30_000), control(1, B, 30_000)]), WALL, WALL);
    const result = p.process(pack([data(2, B, '4:0', 'home', 1_000)]), WALL, WALL);
    expect(result.stats.late).toBe(1);
    expect(result.dead.map(headersOf)).toEqual([lateAt2FromB4]);
  });

  test('skips duplicates: the same or a lower position from the same source', () => {
    const p = stage2();
    const result = p.process(
      pack([
        data(0, A, '5:0', 'home', 1_000),
        data(1, A, '5:0', 'home', 1_000), // same
        data(2, A, '4:9', 'home', 1_000), // lower
        data(3, A, '5:1', 'home', 1_000), // next element of the same record
        data(4, B, '5:0', 'home', 1_000), // another source
        data(5, B, '6:0', 'home', 1_000),
        data(6, B, '6:0', 'home', 1_000), // same
      ]),
      WALL,
      WALL,
    );
    expect(result.stats).toMatchObject({ recordsIn: 7, duplicates: 3, dead: 0 });
    const close = p.process(pack([control(7, A, 50_000), control(8, B, 50_000)]), WALL, WALL);
    expect(windowsOf(close)).toEqual([{ key: 'home', windowStart: 0, windowEnd: 10_000, value: 4 }]);
    expect(close.stats.recordsIn).toBe(0);
  });

  test('control records are not counted in stats.recordsIn (nor replayed)', () => {
    const p = stage2();
    const log = [control(0, A, 1_000), data(1, A, '0:0', 'x', 1_000), control(2, B, 2_000), control(3, A, 3_000)];
    const result = p.process(pack(log), WALL, WALL);
    expect(result.stats.recordsIn).toBe(1);
    // Replayed after an upgrade (a checkpoint in the commit metadata): the entry is replayed, the controls are not records.
    const metadata = encodeCheckpoint(checkpoint({ end: 4, streamTime: 2_000 }), [A, B]);
    const restarted = stage2({ start: { committedOffset: 0, metadata } });
    const replay = restarted.process(pack(log), WALL, WALL);
    expect(replay.stats).toMatchObject({ recordsIn: 1, replayed: 1, duplicates: 0 });
  });

  test('the progress carries the de-duplication marks and the upstream stream times; a restored task uses them', () => {
    const p = stage2();
    const b1 = p.process(pack([control(0, A, 1_000), control(1, B, 2_000, true)]), WALL, WALL);
    const seen = [data(2, A, '5:0', 'home', 4_000), data(3, A, '5:1', 'home', 4_000), data(4, B, '9:0', 'home', 4_500)];
    const b2 = p.process(pack(seen), WALL, WALL);
    expect(b2.commit).toEqual({ offset: 5, metadata: null });
    expect(b2.changelogPartition).toBe(0);
    expect(changelogView(changelogOf(b2))).toEqual([
      [0, 'home', 3],
      {
        task: 'job-repartition:0',
        end: 5,
        streamTime: 4_000,
        dedupe: new Map([
          [A, [5, 1]],
          [B, [9, 0]],
        ]),
        sources: new Map([
          [A, { streamTime: 4_000, idle: false }],
          [B, { streamTime: 4_500, idle: false }],
        ]),
      },
    ]);

    // A new owner whose consumer starts from an older commit: what the state holds is skipped, then
    // a block stage 1 wrote twice (a crash between its publish and its commit) is a duplicate.
    const q = stage2({ start: { committedOffset: 2, metadata: null }, changelog: changelogOfAll([b1, b2]) });
    expect(q.restoredAt).toBe(5);
    expect(q.openWindows).toBe(1);
    const again = q.process(pack(seen), WALL, WALL);
    expect(again.stats).toMatchObject({ skipped: 3, recordsIn: 0, duplicates: 0, openWindows: 1, streamTime: 4_000 });
    const next = q.process(
      pack([
        data(5, A, '5:1', 'home', 4_000), // written twice upstream
        data(6, A, '6:0', 'home', 5_000),
        control(7, A, 60_000),
        control(8, B, 60_000),
      ]),
      WALL,
      WALL,
    );
    expect(next.stats.duplicates).toBe(1);
    expect(windowsOf(next)).toEqual([{ key: 'home', windowStart: 0, windowEnd: 10_000, value: 4 }]);
  });

  test('after a restart, a source that was idle before any record is still idle (changelog or checkpoint)', () => {
    // views:1 is an empty input partition: its first and only report is "idle, no stream time".
    const p = stage2();
    const result = p.process(
      pack([control(0, B, null, true), control(1, A, 5_000), data(2, A, '0:0', 'home', 1_000)]),
      WALL,
      WALL,
    );
    expect(result.stats.streamTime).toBe(5_000);
    const progress = lastProgress(changelogOf(result))!;
    expect(progress.sources.get(B)).toEqual({ streamTime: -Infinity, idle: true });

    const restored = stage2({ start: { committedOffset: 3, metadata: null }, changelog: changelogOf(result) });
    const after = restored.process(pack([control(3, A, 25_000)]), WALL, WALL);
    expect(after.stats.streamTime).toBe(25_000);
    expect(windowsOf(after)).toEqual([{ key: 'home', windowStart: 0, windowEnd: 10_000, value: 1 }]);

    // The same state as a checkpoint of the version before the changelog: replayed from offset 2.
    const upgraded = stage2({ start: { committedOffset: 2, metadata: encodeCheckpoint(progress, [A, B]) } });
    const replayed = upgraded.process(pack([data(2, A, '0:0', 'home', 1_000), control(3, A, 25_000)]), WALL, WALL);
    expect(replayed.stats.replayed).toBe(1);
    expect(replayed.stats.streamTime).toBe(25_000);
    expect(windowsOf(replayed)).toEqual([{ key: 'home', windowStart: 0, windowEnd: 10_000, value: 1 }]);
  });

  test('a progress record of another repartition partition: restore throws a StateError', () => {
    const task = taskFor(pvPlan, { topic: 'job-repartition', partition: 2, sources: [A, B] });
    expect(task.changelogPartition).toBe(2); // a shuffle reader's changelog partition is its own number
    expect(() => task.restore([progressRecord({ task: 'job-repartition:1', end: 3 })])).toThrow(StateError);
    expect(() =>
      taskFor(pvPlan, { topic: 'job-repartition', partition: 2, sources: [A, B] }).restore([
        progressRecord({ task: 'views:2', end: 3 }),
      ]),
    ).toThrow('holds the state of views:2, not job-repartition:2');
  });

  test('records below the restored position are skipped, blocks and control records alike', () => {
    const changelog = [
      entryRecord(0, 'home', 2),
      progressRecord({
        task: 'job-repartition:0',
        end: 3,
        streamTime: 2_000,
        dedupe: new Map([[A, [2, 0]]]),
        sources: new Map([
          [A, { streamTime: 2_000, idle: false }],
          [B, { streamTime: 2_000, idle: false }],
        ]),
      }),
    ];
    const p = stage2({ start: { committedOffset: 0, metadata: null }, changelog });
    expect(p.restoredAt).toBe(3);
    const result = p.process(
      pack([
        data(0, A, '1:0', 'home', 1_000),
        control(1, A, 60_000), // below the position: must not move stream time
        data(2, A, '2:0', 'home', 1_500),
        data(3, B, '1:0', 'home', 1_800),
      ]),
      WALL,
      WALL,
    );
    expect(result.stats).toMatchObject({ skipped: 3, recordsIn: 1, duplicates: 0, streamTime: 2_000 });
    expect(result.outputCount).toBe(0);
    const close = p.process(pack([control(4, A, 30_000), control(5, B, 30_000)]), WALL, WALL);
    expect(windowsOf(close)).toEqual([{ key: 'home', windowStart: 0, windowEnd: 10_000, value: 3 }]);
  });

  test('the stage’s own idle clock does not push stream time past what the upstream sources reported', () => {
    // Both upstream partitions are active and report 41 000. This partition's last record came 40 s of
    // wall time ago (idleTimeout 5 s). A record at 41 500 from A is on time for A: it must not be late.
    const p = stage2();
    p.process(pack([control(0, A, 1_000), control(1, B, 1_000), data(2, A, '0:0', 'home', 1_500)]), WALL, WALL);
    const b2 = p.process(pack([control(3, A, 41_000), control(4, B, 41_000)]), WALL + 40_000, WALL + 40_000);
    expect(windowsOf(b2)).toEqual([{ key: 'home', windowStart: 0, windowEnd: 10_000, value: 1 }]);
    expect(b2.stats.streamTime).toBe(41_000);
    const b3 = p.process(pack([data(5, A, '1:0', 'home', 41_500)]), WALL + 40_000, WALL + 40_000);
    expect(b3.stats.late).toBe(0);
    expect(b3.dead).toEqual([]);
  });

  test('blocks: every entry counts as a record; a block written twice is skipped entry by entry', () => {
    const p = stage2();
    const first = block(0, A, [
      [5, 0, 'home', 1_000],
      [5, 1, 'home', 1_100],
      [6, 0, 'about', 1_200],
    ]);
    const r1 = p.process(pack([first, block(1, B, [[9, 0, 'home', 2_000]])]), WALL, WALL);
    expect(r1.stats).toMatchObject({ recordsIn: 4, duplicates: 0, dead: 0, late: 0 });
    // A crash between stage 1's publish and its commit writes the same block again, then more.
    const r2 = p.process(
      pack([
        { ...first, offset: 2 },
        block(3, A, [
          [6, 0, 'about', 1_200],
          [7, 0, 'about', 1_300],
        ]),
        control(4, A, 50_000),
        control(5, B, 50_000),
      ]),
      WALL,
      WALL,
    );
    expect(r2.stats).toMatchObject({ recordsIn: 5, duplicates: 4 });
    expect(windowsOf(r2)).toEqual([
      { key: 'about', windowStart: 0, windowEnd: 10_000, value: 2 },
      { key: 'home', windowStart: 0, windowEnd: 10_000, value: 3 },
    ]);
  });

  test('blocks: a late entry is dead-lettered alone, naming its upstream record', () => {
    const p = stage2();
    p.process(pack([control(0, A, 30_000), control(1, B, 30_000)]), WALL, WALL);
    const result = p.process(
      pack([
        block(2, B, [
          [4, 0, 'home', 1_000],
          [5, 0, 'home', 31_000],
        ]),
      ]),
      WALL,
      WALL,
    );
    expect(result.stats).toMatchObject({ recordsIn: 2, late: 1, openWindows: 1 });
    expect(result.dead.map(headersOf)).toEqual([lateAt2FromB4]);
    expect(text(result.dead[0]!.key)).toBe('home');
    expect(JSON.parse(text(result.dead[0]!.value)!)).toEqual({ page: 'home', ts: 1_000 });
  });

  test('blocks: an entry whose stage-2 operator throws is dead-lettered; the rest of the block goes on', () => {
    const plan = compileJob(
      defineJob<PageView>({
        name: 'job',
        input: { topics: ['views'] },
        eventTime: (v) => v.ts,
        pipeline: (s) =>
          s
            .keyBy((v) => v.page)
            .map((v) => {
              if (v.ts === 1_100) throw new Error('bad view');
              return v;
            })
            .window(tumbling('10s'), { idleTimeout: 0 })
            .aggregate(count()),
        output: { topic: 'out' },
      }),
    );
    const p = processor(plan, { topic: 'job-repartition', partition: 0, sources: [A] });
    const result = p.process(
      pack([
        block(0, A, [
          [1, 0, 'home', 1_000],
          [2, 0, 'home', 1_100],
          [3, 0, 'home', 1_200],
        ]),
        control(1, A, 30_000),
      ]),
      WALL,
      WALL,
    );
    expect(result.dead).toHaveLength(1);
    expect(headersOf(result.dead[0]!)).toEqual(
      expect.arrayContaining([
        ['sluice-error-code', 'SLUICE_USER_CODE_FAILED'],
        [POSITION_HEADER, '2:0'],
      ]),
    );
    expect(windowsOf(result)).toEqual([{ key: 'home', windowStart: 0, windowEnd: 10_000, value: 2 }]);
  });

  test('blocks: a malformed block is dead-lettered whole, and the batch goes on', () => {
    const p = stage2();
    const broken: In = { ...block(0, A, [[1, 0, 'home', 1_000]]), value: new Uint8Array([1, 9, 0, 0, 0, 7]) };
    const result = p.process(pack([broken, block(1, A, [[2, 0, 'home', 1_500]])]), WALL, WALL);
    expect(result.dead.map((d) => headersOf(d).find(([n]) => n === 'sluice-error-code')![1])).toEqual([
      'SLUICE_DESERIALIZE_FAILED',
    ]);
    expect(result.stats.openWindows).toBe(1);
  });

  test('blocks: an upgrade replays the open window from the blocks, emitting and dead-lettering nothing twice', () => {
    const p = stage2();
    const b0 = block(0, A, [
      [1, 0, 'home', 1_000],
      [2, 0, 'home', 2_000],
    ]);
    const b1 = block(1, B, [[1, 0, 'home', 3_000]]);
    const first = p.process(pack([control(2, A, 30_000), b0, b1]), WALL, WALL);
    // A reported 30 000, B only 3 000: nothing closes yet.
    expect(first.stats).toMatchObject({ recordsIn: 3, openWindows: 1, streamTime: 3_000 });
    // What the version before the changelog committed for this state: offset 0 and its checkpoint.
    const metadata = encodeCheckpoint(lastProgress(changelogOf(first))!, [A, B]);
    const q = stage2({ start: { committedOffset: 0, metadata } });
    expect(q.restoredAt).toBe(0);
    const replay = q.process(pack([b0, b1, control(2, A, 30_000)]), WALL, WALL);
    expect(replay.stats).toMatchObject({ recordsIn: 3, replayed: 3, duplicates: 0, dead: 0, openWindows: 1 });
    expect(replay.outputCount).toBe(0);
    expect(replay.commit).toEqual({ offset: 3, metadata: null });
    const next = q.process(pack([block(3, B, [[2, 0, 'home', 4_000]]), control(4, B, 30_000)]), WALL, WALL);
    expect(windowsOf(next)).toEqual([{ key: 'home', windowStart: 0, windowEnd: 10_000, value: 4 }]);
  });

  describe('restored from the changelog at any point, a shuffle reader goes on as the uninterrupted one', () => {
    interface Hit {
      page: string;
      ts: number;
      n: number;
    }
    const rekeyed = (emit: 'final' | 'update'): JobPlan =>
      compileJob(
        defineJob<Hit>({
          name: 'job',
          input: { topics: ['views'] },
          eventTime: (v) => v.ts,
          pipeline: (s) =>
            s
              .keyBy((v) => v.page)
              .window(tumbling('10s'), { lateness: '1s', emit, idleTimeout: 0 })
              .aggregate(sum((v) => v.n)),
          output: { topic: 'out' },
        }),
      );

    /**
     * The repartition partition's records: blocks from two upstream partitions (upstream positions in
     * order, sometimes several entries of one record), some blocks written twice, stream-time reports
     * (sometimes idle), a malformed record, late entries; then both sources far ahead.
     */
    function repartitionLog(seed: number): In[] {
      const random = seeded(seed);
      const log: In[] = [];
      const next = new Map([
        [A, 0],
        [B, 0],
      ]);
      const clock = new Map([
        [A, 100_000],
        [B, 100_000],
      ]);
      const last = new Map<string, In>();
      for (let offset = 0; offset < 400; offset++) {
        const source = random() < 0.5 ? A : B;
        const roll = random();
        if (roll < 0.04 && last.has(source)) {
          log.push({ ...last.get(source)!, offset }); // stage 1 wrote its batch again
        } else if (roll < 0.2) {
          log.push(control(offset, source, clock.get(source)!, random() < 0.1));
        } else if (roll < 0.22) {
          log.push({ offset, key: null, value: 'junk', headers: [] });
        } else {
          const writer = new BlockWriter(1);
          for (let records = 1 + Math.floor(random() * 3); records > 0; records--) {
            const upstream = next.get(source)!;
            next.set(source, upstream + 1);
            clock.set(source, clock.get(source)! + Math.floor(random() * 700));
            let ts = clock.get(source)! - Math.floor(random() * 1_500);
            if (random() < 0.05) ts -= 25_000;
            // Sometimes one upstream record became two re-keyed ones (sequence 0 and 1).
            for (let sequence = 0, parts = random() < 0.2 ? 2 : 1; sequence < parts; sequence++) {
              const value = { page: ['home', 'about', 'cart'][Math.floor(random() * 3)]!, ts, n: 1 + (offset % 5) };
              writer.add(bytes(value.page), entryAt(upstream, sequence, ts), 'json', JSON.stringify(value));
            }
          }
          const record: In = {
            offset,
            timestamp: WALL,
            key: null,
            value: writer.finish()[0]!.data,
            headers: [
              [SOURCE_HEADER, source],
              [BLOCK_HEADER, '2'],
            ],
          };
          last.set(source, record);
          log.push(record);
        }
      }
      log.push(control(400, A, 10_000_000), control(401, B, 10_000_000));
      return log;
    }

    const log = repartitionLog(31);
    const batches: In[][] = [];
    const random = seeded(32);
    for (let i = 0; i < log.length;) {
      const size = 1 + Math.floor(random() * 20);
      batches.push(log.slice(i, i + size));
      i += size;
    }
    const endOf = (k: number): number => batches[k - 1]!.at(-1)!.offset + 1;
    const runAll = (p: TestTask, list: In[][]): PartitionResult[] => list.map((b) => p.process(pack(b), WALL, WALL));

    test.each(['final', 'update'] as const)('%s emission', (emit) => {
      const plan = rekeyed(emit);
      const ref = runAll(processor(plan, { topic: 'job-repartition', partition: 0, sources: [A, B] }), batches);
      // Non-trivial: results, duplicates, late entries, the malformed record.
      expect(ref.reduce((n, r) => n + r.outputCount, 0)).toBeGreaterThan(20);
      expect(ref.reduce((n, r) => n + r.stats.duplicates, 0)).toBeGreaterThan(5);
      expect(ref.reduce((n, r) => n + r.stats.late, 0)).toBeGreaterThan(3);
      expect(ref.some((r) => r.dead.some((d) => headersOf(d)[0]![1] === 'SLUICE_DESERIALIZE_FAILED'))).toBe(true);

      for (const k of [1, 2, 4, 7, 11, Math.floor(batches.length / 2), batches.length - 3, batches.length - 1]) {
        for (const changelog of [changelogOfAll(ref.slice(0, k)), compacted(changelogOfAll(ref.slice(0, k)))]) {
          // The consumer starts two batches back (at-least-once: commits lost); the state skips those.
          const committed = k >= 3 ? endOf(k - 2) : null;
          const p = processor(plan, {
            topic: 'job-repartition',
            partition: 0,
            sources: [A, B],
            start: { committedOffset: committed, metadata: null },
            changelog,
          });
          expect(p.restoredAt).toBe(endOf(k));
          const [skipped, ...rest] = runAll(p, [log.slice(committed ?? 0, endOf(k)), ...batches.slice(k)]);
          expect(skipped!.stats).toMatchObject({ skipped: endOf(k) - (committed ?? 0), recordsIn: 0 });
          expect(skipped!.outputCount).toBe(0);
          expect(skipped!.dead).toEqual([]);
          rest.forEach((r, i) => {
            const want = ref[k + i]!;
            expect(outputsOf(r)).toEqual(outputsOf(want));
            expect(r.dead.map(headersOf)).toEqual(want.dead.map(headersOf));
            expect(r.stats).toEqual(want.stats);
            expect(r.commit).toEqual(want.commit);
          });
        }
      }
    });
  });

  test('stage 1 output feeds stage 2: JSON values aggregate end to end', () => {
    const s1 = processor(pvPlan, { topic: 'views', partition: 0 });
    const r1 = s1.process(
      pack([
        { offset: 0, value: { page: 'home', ts: 1_000 } },
        { offset: 1, value: { page: 'about', ts: 2_000 } },
        { offset: 2, value: { page: 'home', ts: 3_000 } },
      ]),
      WALL,
      WALL,
    );
    const s2 = processor(pvPlan, { topic: 'job-repartition', partition: 0, sources: [A] });
    const r2 = s2.process(
      pack([...blockRecords(r1, A, 0), control(3, A, r1.watermark!.streamTime), control(4, A, 20_000)]),
      WALL,
      WALL,
    );
    expect(r2.dead).toEqual([]);
    expect(windowsOf(r2)).toEqual([
      { key: 'about', windowStart: 0, windowEnd: 10_000, value: 1 },
      { key: 'home', windowStart: 0, windowEnd: 10_000, value: 2 },
    ]);
  });

  test('stage 1 output feeds stage 2: string values (format "string") survive the repartition topic', () => {
    const plan = compileJob(
      defineJob<string>({
        name: 'job',
        input: { topics: ['lines'], format: 'string' },
        pipeline: (s) =>
          s
            .keyBy((line) => line.split(',')[0]!)
            .window(tumbling('10s'), { idleTimeout: 0 })
            .reduce((a, b) => `${a}|${b}`),
        output: { topic: 'out' },
      }),
    );
    const s1 = processor(plan, { topic: 'lines', partition: 0 });
    const r1 = s1.process(
      pack([
        { offset: 0, timestamp: 1_000, value: 'a,1' },
        { offset: 1, timestamp: 2_000, value: 'b,2' },
        { offset: 2, timestamp: 3_000, value: 'a,007' },
      ]),
      WALL,
      WALL,
    );
    expect(r1.dead).toEqual([]);
    const s2 = processor(plan, { topic: 'job-repartition', partition: 0, sources: ['lines:0'] });
    const r2 = s2.process(pack([...blockRecords(r1, A, 0), control(3, 'lines:0', 20_000)]), WALL, WALL);
    expect(r2.dead.map(headersOf)).toEqual([]);
    expect(windowsOf(r2)).toEqual([
      { key: 'a', windowStart: 0, windowEnd: 10_000, value: 'a,1|a,007' },
      { key: 'b', windowStart: 0, windowEnd: 10_000, value: 'b,2' },
    ]);
  });

  test('stage 1 output feeds stage 2: byte values (format "bytes") survive the repartition topic', () => {
    const plan = compileJob(
      defineJob<Buffer>({
        name: 'job',
        input: { topics: ['raw'], format: 'bytes' },
        pipeline: (s) =>
          s
            .keyBy((b) => b[0]!)
            .window(tumbling('10s'), { idleTimeout: 0 })
            .aggregate(sum((b) => b.length)),
        output: { topic: 'out' },
      }),
    );
    const s1 = processor(plan, { topic: 'raw', partition: 0 });
    const r1 = s1.process(
      pack([
        { offset: 0, timestamp: 1_000, value: new Uint8Array([1, 0xff, 0xfe]) },
        { offset: 1, timestamp: 2_000, value: new Uint8Array([1, 2]) },
      ]),
      WALL,
      WALL,
    );
    const s2 = processor(plan, { topic: 'job-repartition', partition: 0, sources: ['raw:0'] });
    const r2 = s2.process(pack([...blockRecords(r1, A, 0), control(2, 'raw:0', 20_000)]), WALL, WALL);
    expect(r2.dead.map(headersOf)).toEqual([]);
    expect(windowsOf(r2)).toEqual([{ key: '1', windowStart: 0, windowEnd: 10_000, value: 5 }]);
  });
});
