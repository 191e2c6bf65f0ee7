/**
 * The tasks of every role, in process (no threads, no Kafka): packed records in, outputs, repartition
 * writes, dead letters, watermark reports and commits out. Covers the stateless operators and
 * formats, every dead-letter reason, windowed emission, the commit rule, restart exactness (replay
 * from commit metadata), and both stages of a re-keyed job (de-duplication, watermarks).
 */
import { describe, expect, test } from '@jest/globals';
import { count, custom, defineJob, sliding, sum, tumbling, type JobSpec } from '../../src/index.ts';
import { compileJob, type JobPlan } from '../../src/job/plan.ts';
import { NO_PROGRESS } from '../../src/pool/progress.ts';
import { type DeadLetter, type PartitionResult, type PartitionStart } from '../../src/pool/protocol.ts';
import { BLOCK_HEADER, IDLE_HEADER, POSITION_HEADER, SOURCE_HEADER, WATERMARK_HEADER } from '../../src/wire/headers.ts';
import { readRecords, RecordWriter } from '../../src/wire/record-codec.ts';
import { createTask } from '../../src/worker/create-task.ts';
import { type Task } from '../../src/worker/task.ts';
import { BlockWriter, partitionFor, readBlock, type BlockEntry } from '../../src/wire/repartition-block.ts';
import { decodeCheckpoint } from '../../src/wire/checkpoint.ts';
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
  sources?: string[];
  repartitionPartitions?: number;
}

/** A task with the process() defaults the old processor had (caught up). */
interface TestTask {
  task: Task;
  openWindows: number;
  process(records: ArrayBuffer, batchTime: number, wallNow: number, caughtUp?: boolean): PartitionResult;
}

function processor(plan: JobPlan, opts: ProcessorOpts = {}): TestTask {
  const task = createTask(
    {
      plan,
      maxRecordBytes: opts.maxRecordBytes ?? 1_000_000,
      sources: opts.sources ?? [],
      repartitionPartitions: opts.repartitionPartitions ?? 1,
      progress: NO_PROGRESS,
    },
    opts.topic ?? 'in',
    opts.partition ?? 0,
    opts.start ?? NO_START,
  );
  return {
    task,
    get openWindows() {
      return task.openWindows;
    },
    process: (records, batchTime, wallNow, caughtUp = true) => task.process(records, batchTime, wallNow, caughtUp),
  };
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
      openWindows: 0,
      streamTime: null,
    });
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
// Windows and the commit rule
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

  test('final emission equals a hand computation; commit never passes the earliest open record', () => {
    const p = processor(plan);
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
      openWindows: 2,
      streamTime: 12_500,
    });
    // Open: a@[10 000, 20 000) from offset 3, b@[10 000, 20 000) from offsets 4 and 6.
    expect(b1.commit?.offset).toBe(3);
    expect(decodeCheckpoint(b1.commit?.metadata)).toEqual({
      end: 7,
      streamTime: 12_500,
      dedupe: new Map(),
      sources: new Map(),
    });
    expect(p.openWindows).toBe(2);

    const b2 = p.process(pack([rec(7, 'a', 1_500, 100), rec(8, 'a', 25_000, 3)]), WALL, WALL);
    expect(b2.stats.late).toBe(1);
    expect(b2.dead).toHaveLength(1);
    expect(windowsOf(b2)).toEqual([
      { key: 'a', windowStart: 10_000, windowEnd: 20_000, value: 4 },
      { key: 'b', windowStart: 10_000, windowEnd: 20_000, value: 60 },
    ]);
    expect(b2.commit?.offset).toBe(8);

    const b3 = p.process(pack([rec(9, null, 40_000, 5)]), WALL, WALL);
    expect(windowsOf(b3)).toEqual([{ key: 'a', windowStart: 20_000, windowEnd: 30_000, value: 3 }]);
    expect(b3.commit?.offset).toBe(9);
    // A null key is a key of its own, emitted as null.
    const b4 = p.process(pack([rec(10, 'z', 100_000, 1)]), WALL, WALL);
    expect(outputsOf(b4)).toEqual([
      { key: null, value: '{"key":null,"windowStart":40000,"windowEnd":50000,"value":5}', timestamp: -1 },
    ]);
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

  test('the commit equals the end when no window is open (closed by idleness), then null when unchanged', () => {
    const idlePlan = jobPlan<View>((s) => s.window(tumbling('10s'), { idleTimeout: '1s' }).aggregate(count()), {
      eventTime: (v) => v.ts,
    });
    const p = processor(idlePlan, { start: { committedOffset: 40, metadata: null } });
    const b1 = p.process(pack([rec(40, 'a', 1_000, 0), rec(41, 'a', 5_000, 0), rec(42, 'b', 3_000, 0)]), WALL, WALL);
    expect(b1.commit?.offset).toBe(40);
    expect(b1.outputCount).toBe(0);
    const b2 = p.process(pack([]), WALL + 60_000, WALL + 60_000);
    expect(windowsOf(b2)).toEqual([
      { key: 'a', windowStart: 0, windowEnd: 10_000, value: 2 },
      { key: 'b', windowStart: 0, windowEnd: 10_000, value: 1 },
    ]);
    expect(b2.stats.openWindows).toBe(0);
    expect(b2.commit?.offset).toBe(43);
    expect(decodeCheckpoint(b2.commit?.metadata)?.end).toBe(43);
    expect(p.process(pack([]), WALL + 60_000, WALL + 60_000).commit).toBeNull();
  });

  test('late and dead-lettered records do not hold the commit back', () => {
    const p = processor(plan);
    p.process(pack([rec(0, 'a', 50_000, 1)]), WALL, WALL);
    const result = p.process(pack([rec(1, 'a', 1_000, 1), { offset: 2, value: 'bad' }]), WALL, WALL);
    expect(result.dead).toHaveLength(2);
    expect(result.commit?.offset).toBe(0); // the open window of offset 0, not the late record
    const closes = p.process(pack([rec(3, 'b', 70_000, 1)]), WALL, WALL);
    expect(closes.commit?.offset).toBe(3);
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
});

// ---------------------------------------------------------------------------------------------
// Restart exactness
// ---------------------------------------------------------------------------------------------

describe('restart from the committed offset and its metadata', () => {
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
      const key = ['a', 'b', 'c'][Math.floor(random() * 3)]!;
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

  interface Run {
    results: PartitionResult[];
  }
  function run(p: TestTask, batches: In[][]): Run {
    return { results: batches.map((b) => p.process(pack(b), WALL, WALL)) };
  }
  const windowKey = (w: WindowOut): string => `${w.key}@${w.windowStart}`;
  const deadOffsets = (results: PartitionResult[]): number[] =>
    results.flatMap((r) =>
      r.dead.map((d) => Number(d.headers.find(([n]) => n === 'sluice-source-offset')![1] as string)),
    );
  const lastCommit = (results: PartitionResult[]): { offset: number; metadata: string | null } | undefined =>
    results.reduce<PartitionResult['commit'] | undefined>((last, r) => r.commit ?? last, undefined) ?? undefined;

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
      const referenceWindows = new Map(reference.results.flatMap(windowsOf).map((w) => [windowKey(w), w.value]));
      const endOf = (k: number): number => batches[k - 1]!.at(-1)!.offset + 1;

      test('the uninterrupted run is non-trivial: windows, late records and malformed records', () => {
        expect(referenceWindows.size).toBeGreaterThan(20);
        const letters = reference.results.flatMap((r) => r.dead.map(headersOf));
        const codes = new Set(letters.map((h) => h[0]![1]));
        expect(codes).toEqual(new Set(['SLUICE_LATE_RECORD', 'SLUICE_DESERIALIZE_FAILED']));
        expect(
          reference.results.some((r) => r.commit !== null && r.commit.offset < endOf(reference.results.indexOf(r) + 1)),
        ).toBe(true);
      });

      test('crash right after a commit: replay rebuilds state silently, later batches are identical', () => {
        for (let k = 1; k < batches.length; k++) {
          const commit = lastCommit(reference.results.slice(0, k))!;
          const checkpoint = decodeCheckpoint(commit.metadata)!;
          expect(checkpoint.end).toBe(endOf(k));
          expect(commit.offset).toBeLessThanOrEqual(checkpoint.end);
          const p = processor(finalPlan, { start: { committedOffset: commit.offset, metadata: commit.metadata } });
          const replayRecords = records.slice(commit.offset, endOf(k));
          const replay = p.process(pack(replayRecords), WALL, WALL);
          expect(replay.outputCount).toBe(0);
          expect(replay.dead).toEqual([]);
          expect(replay.stats.late).toBe(0);
          expect(replay.stats.replayed).toBe(replayRecords.length);
          expect(replay.commit).toEqual(commit);
          const rest = run(p, batches.slice(k));
          rest.results.forEach((r, i) => {
            const ref = reference.results[k + i]!;
            expect(outputsOf(r)).toEqual(outputsOf(ref));
            expect(r.dead.map(headersOf)).toEqual(ref.dead.map(headersOf));
            expect(r.commit).toEqual(ref.commit);
            expect(r.stats.replayed).toBe(0);
          });
        }
      });

      test('crash before the last commits were made: every window once with the same value, nothing lost', () => {
        for (let k = 2; k < batches.length; k += 1) {
          const acked = Math.max(1, k - 3); // batches acked+1..k were published, their commits lost
          const first = run(processor(finalPlan), batches.slice(0, k));
          const commit = lastCommit(first.results.slice(0, acked));
          if (!commit) continue;
          const e = decodeCheckpoint(commit.metadata)!.end;
          const p = processor(finalPlan, { start: { committedOffset: commit.offset, metadata: commit.metadata } });
          const second = run(p, [records.slice(commit.offset, endOf(k)), ...batches.slice(k)]);

          const values = new Map<string, Set<unknown>>();
          for (const w of [...first.results, ...second.results].flatMap(windowsOf)) {
            const set = values.get(windowKey(w)) ?? new Set();
            set.add(w.value);
            values.set(windowKey(w), set);
          }
          expect([...values.keys()].sort()).toEqual([...referenceWindows.keys()].sort());
          for (const [key, set] of values) expect([...set]).toEqual([referenceWindows.get(key)]);

          // Replayed records (below the checkpoint's end) are never dead-lettered again.
          const secondDead = deadOffsets(second.results);
          expect(secondDead.every((o) => o >= e)).toBe(true);
          expect(new Set([...deadOffsets(first.results), ...secondDead])).toEqual(
            new Set(deadOffsets(reference.results)),
          );
        }
      });

      test('update mode: replayed records are not emitted as updates again', () => {
        const updatePlan = planFor(assigner, lateness, 'update');
        const ref = run(processor(updatePlan), batches);
        for (const k of [1, 3, Math.floor(batches.length / 2), batches.length - 2]) {
          const commit = lastCommit(ref.results.slice(0, k))!;
          const p = processor(updatePlan, { start: { committedOffset: commit.offset, metadata: commit.metadata } });
          const replay = p.process(pack(records.slice(commit.offset, endOf(k))), WALL, WALL);
          expect(replay.outputCount).toBe(0);
          expect(replay.dead).toEqual([]);
          const rest = run(p, batches.slice(k));
          rest.results.forEach((r, i) => expect(outputsOf(r)).toEqual(outputsOf(ref.results[k + i]!)));
        }
      });
    });
  }

  test('a restart with foreign commit metadata starts fresh at the committed offset (nothing replayed)', () => {
    const plan = planFor(tumbling('10s'), 0, 'final');
    const p = processor(plan, { start: { committedOffset: 5, metadata: 'written-by-another-tool' } });
    const result = p.process(pack([{ offset: 5, key: 'a', value: { ts: 1_000, n: 1 } }]), WALL, WALL);
    expect(result.stats.replayed).toBe(0);
    expect(result.commit?.offset).toBe(5);
    expect(decodeCheckpoint(result.commit?.metadata)?.end).toBe(6);
  });

  test('a restart whose first batch stops short of the checkpoint end keeps that end in the next commit', () => {
    const plan = planFor(tumbling('10s'), 0, 'final');
    const first = processor(plan);
    const c1 = first.process(
      pack([0, 1, 2, 3].map((i) => ({ offset: i, key: 'a', value: { ts: 1_000 + i, n: 1 } }))),
      WALL,
      WALL,
    ).commit!;
    expect(c1.offset).toBe(0);
    const p = processor(plan, { start: { committedOffset: c1.offset, metadata: c1.metadata } });
    const partial = p.process(
      pack([0, 1].map((i) => ({ offset: i, key: 'a', value: { ts: 1_000 + i, n: 1 } }))),
      WALL,
      WALL,
    );
    expect(partial.commit?.offset).toBe(0);
    expect(decodeCheckpoint(partial.commit?.metadata)?.end).toBe(4);
    const restOfReplay = p.process(
      pack([2, 3, 4].map((i) => ({ offset: i, key: 'a', value: { ts: 1_000 + i, n: 1 } }))),
      WALL,
      WALL,
    );
    expect(restOfReplay.stats.replayed).toBe(2);
    const close = p.process(pack([{ offset: 5, key: 'b', value: { ts: 50_000, n: 1 } }]), WALL, WALL);
    expect(windowsOf(close)).toEqual([{ key: 'a', windowStart: 0, windowEnd: 10_000, value: 5 }]);
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
    const result = p.process(
      pack([control(0, A, 1_000), data(1, A, '0:0', 'x', 1_000), control(2, B, 2_000), control(3, A, 3_000)]),
      WALL,
      WALL,
    );
    expect(result.stats.recordsIn).toBe(1);
    const restarted = stage2({ start: { committedOffset: 0, metadata: result.commit!.metadata } });
    const replay = restarted.process(
      pack([control(0, A, 1_000), data(1, A, '0:0', 'x', 1_000), control(2, B, 2_000), control(3, A, 3_000)]),
      WALL,
      WALL,
    );
    expect(replay.stats).toMatchObject({ recordsIn: 1, replayed: 1, duplicates: 0 });
  });

  test('the checkpoint round-trips the de-duplication marks and the source map', () => {
    const p = stage2();
    p.process(pack([control(0, A, 1_000), control(1, B, 2_000, true)]), WALL, WALL);
    const result = p.process(
      pack([data(2, A, '5:0', 'home', 4_000), data(3, A, '5:1', 'home', 4_000), data(4, B, '9:0', 'home', 4_500)]),
      WALL,
      WALL,
    );
    const commit = result.commit!;
    expect(commit.offset).toBe(2);
    expect(decodeCheckpoint(commit.metadata, [A, B])).toEqual({
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
    });

    // A new owner: replays 2..4 (the open window), then skips what it had already seen.
    const q = stage2({ start: { committedOffset: commit.offset, metadata: commit.metadata } });
    const replay = q.process(
      pack([data(2, A, '5:0', 'home', 4_000), data(3, A, '5:1', 'home', 4_000), data(4, B, '9:0', 'home', 4_500)]),
      WALL,
      WALL,
    );
    expect(replay.stats).toMatchObject({ replayed: 3, duplicates: 0, dead: 0, openWindows: 1, streamTime: 4_000 });
    expect(replay.commit).toEqual(commit);
    const next = q.process(
      pack([
        data(5, A, '5:1', 'home', 4_000), // written twice upstream (crash between publish and commit)
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

  test('after a restart, a source that was idle before any record is still idle', () => {
    // views:1 is an empty input partition: its first and only report is "idle, no stream time".
    const p = stage2();
    const result = p.process(
      pack([control(0, B, null, true), control(1, A, 5_000), data(2, A, '0:0', 'home', 1_000)]),
      WALL,
      WALL,
    );
    expect(result.stats.streamTime).toBe(5_000);
    const commit = result.commit!;
    const q = stage2({ start: { committedOffset: commit.offset, metadata: commit.metadata } });
    const after = q.process(pack([data(2, A, '0:0', 'home', 1_000), control(3, A, 25_000)]), WALL, WALL);
    expect(after.stats.streamTime).toBe(25_000);
    expect(windowsOf(after)).toEqual([{ key: 'home', windowStart: 0, windowEnd: 10_000, value: 1 }]);
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

  test('blocks: a restart replays the open window from the blocks, emitting and dead-lettering nothing twice', () => {
    const p = stage2();
    const b0 = block(0, A, [
      [1, 0, 'home', 1_000],
      [2, 0, 'home', 2_000],
    ]);
    const b1 = block(1, B, [[1, 0, 'home', 3_000]]);
    const first = p.process(pack([control(2, A, 30_000), b0, b1]), WALL, WALL);
    // The controls came first: A at 30 000 but B unknown, so nothing closes yet.
    expect(first.stats).toMatchObject({ recordsIn: 3, openWindows: 1 });
    const commit = first.commit!;
    expect(commit.offset).toBe(0);
    const q = stage2({ start: { committedOffset: commit.offset, metadata: commit.metadata } });
    const replay = q.process(pack([b0, b1, control(2, A, 30_000)]), WALL, WALL);
    expect(replay.stats).toMatchObject({ recordsIn: 3, replayed: 3, duplicates: 0, dead: 0, openWindows: 1 });
    expect(replay.outputCount).toBe(0);
    const next = q.process(pack([block(3, B, [[2, 0, 'home', 4_000]]), control(4, B, 30_000)]), WALL, WALL);
    expect(windowsOf(next)).toEqual([{ key: 'home', windowStart: 0, windowEnd: 10_000, value: 4 }]);
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
