/** The packed record format that crosses the thread boundary: every field survives a round trip. */
import { describe, expect, test } from '@jest/globals';
import {
  offsetAt,
  packMessages,
  readRecords,
  RECORD_FRAME_BYTES,
  RecordWriter,
  type CodecRecord,
  type FetchedMessage,
} from '../../src/wire/record-codec.ts';

const enc = new TextEncoder();
const bytes = (text: string): Uint8Array => enc.encode(text);

interface Plain {
  offset: number;
  timestamp: number;
  key: number[] | null;
  value: number[] | null;
  headers: Array<[string, number[]]>;
}

/** Views become plain arrays, so that `toEqual` compares contents, not buffers. */
function plain(record: CodecRecord): Plain {
  return {
    offset: record.offset,
    timestamp: record.timestamp,
    key: record.key === null ? null : [...record.key],
    value: record.value === null ? null : [...record.value],
    headers: record.headers.map(([name, value]) => [name, [...value]]),
  };
}

function roundTrip(records: readonly CodecRecord[], initialBytes?: number): { out: Plain[]; count: number } {
  const writer = new RecordWriter(initialBytes);
  for (const r of records) writer.write(r.offset, r.timestamp, r.key, r.value, r.headers);
  const count = writer.count;
  return { out: [...readRecords(writer.finish())].map(plain), count };
}

describe('RecordWriter / readRecords', () => {
  test('round trips offset, timestamp, key, value and headers', () => {
    const records: CodecRecord[] = [
      {
        offset: 42,
        timestamp: 1_700_000_000_123,
        key: bytes('user-1'),
        value: bytes('{"a":1}'),
        headers: [
          ['trace', bytes('abc')],
          ['é-ñ', bytes('ü')],
        ],
      },
    ];
    const { out, count } = roundTrip(records);
    expect(count).toBe(1);
    expect(out).toEqual([
      {
        offset: 42,
        timestamp: 1_700_000_000_123,
        key: [...bytes('user-1')],
        value: [...bytes('{"a":1}')],
        headers: [
          ['trace', [97, 98, 99]],
          ['é-ñ', [0xc3, 0xbc]],
        ],
      },
    ]);
  });

  test('null key and null value stay null; empty buffers stay empty (not null)', () => {
    const records: CodecRecord[] = [
      { offset: 0, timestamp: 0, key: null, value: null, headers: [] },
      {
        offset: 1,
        timestamp: 1,
        key: new Uint8Array(0),
        value: new Uint8Array(0),
        headers: [['h', new Uint8Array(0)]],
      },
      { offset: 2, timestamp: 2, key: null, value: bytes('v'), headers: [] },
      { offset: 3, timestamp: 3, key: bytes('k'), value: null, headers: [] },
    ];
    const { out } = roundTrip(records);
    expect(out).toEqual([
      { offset: 0, timestamp: 0, key: null, value: null, headers: [] },
      { offset: 1, timestamp: 1, key: [], value: [], headers: [['h', []]] },
      { offset: 2, timestamp: 2, key: null, value: [118], headers: [] },
      { offset: 3, timestamp: 3, key: [107], value: null, headers: [] },
    ]);
  });

  test('an empty writer finishes to an empty buffer that yields nothing', () => {
    const writer = new RecordWriter();
    const buffer = writer.finish();
    expect(buffer.byteLength).toBe(0);
    expect(writer.count).toBe(0);
    expect([...readRecords(buffer)]).toEqual([]);
  });

  test('finish() is sized exactly: fixed fields plus the payload bytes', () => {
    const writer = new RecordWriter();
    writer.write(1, 2, bytes('kk'), bytes('vvv'), [['nm', bytes('x')]]);
    // 8 offset + 8 timestamp + (4 + 2) key + (4 + 3) value + 2 header count + (2 + 2 name + 4 + 1 value)
    expect(writer.finish().byteLength).toBe(8 + 8 + 6 + 7 + 2 + 9);
  });

  test('offsets up to 2^53 - 1, negative and fractional timestamps survive', () => {
    const { out } = roundTrip([
      { offset: Number.MAX_SAFE_INTEGER, timestamp: -1, key: null, value: null, headers: [] },
      { offset: 2 ** 40 + 7, timestamp: 1.5, key: null, value: null, headers: [] },
    ]);
    expect(out.map((r) => [r.offset, r.timestamp])).toEqual([
      [Number.MAX_SAFE_INTEGER, -1],
      [2 ** 40 + 7, 1.5],
    ]);
  });

  test('a large value (3 MiB) grows the buffer from a tiny initial size', () => {
    const value = new Uint8Array(3 * 1024 * 1024);
    for (let i = 0; i < value.length; i++) value[i] = (i * 31) & 0xff;
    const writer = new RecordWriter(1);
    writer.write(7, 8, bytes('big'), value, [['h', bytes('1')]]);
    writer.write(8, 9, null, bytes('after'));
    const [first, second, ...rest] = [...readRecords(writer.finish())];
    expect(rest).toEqual([]);
    expect(first?.offset).toBe(7);
    expect(first?.value?.length).toBe(value.length);
    expect(Buffer.from(first!.value!).equals(Buffer.from(value))).toBe(true);
    expect(first?.headers.map(([n, v]) => [n, [...v]])).toEqual([['h', [49]]]);
    expect(second && plain(second)).toEqual({
      offset: 8,
      timestamp: 9,
      key: null,
      value: [...bytes('after')],
      headers: [],
    });
  });

  test('many records (20 000) with varying shapes round trip in order, across many growths', () => {
    const records: CodecRecord[] = Array.from({ length: 20_000 }, (_, i) => ({
      offset: i,
      timestamp: 1_000_000 + i * 3,
      key: i % 5 === 0 ? null : bytes(`k${i}`),
      value: i % 7 === 0 ? null : bytes('x'.repeat(i % 50)),
      headers: i % 3 === 0 ? [] : Array.from({ length: i % 4 }, (_, h) => [`h${h}`, bytes(`${i}-${h}`)] as const),
    }));
    const { out, count } = roundTrip(records, 16);
    expect(count).toBe(20_000);
    expect(out).toEqual(records.map(plain));
  });

  test('decoded fields are views into the buffer, not copies', () => {
    const writer = new RecordWriter();
    writer.write(0, 0, bytes('k'), bytes('v'));
    const buffer = writer.finish();
    const [record] = [...readRecords(buffer)];
    expect(record?.value?.buffer).toBe(buffer);
    expect(record?.key?.buffer).toBe(buffer);
  });

  test('the writer copies its input: later changes to the source arrays do not leak in', () => {
    const value = bytes('abc');
    const writer = new RecordWriter();
    writer.write(0, 0, null, value);
    value[0] = 0x7a;
    const [record] = [...readRecords(writer.finish())];
    expect([...record!.value!]).toEqual([...bytes('abc')]);
  });
});

describe('packMessages (a fetch packed once, as the receiver does)', () => {
  const message = (over: Partial<FetchedMessage> & { offset: string }): FetchedMessage => ({
    timestamp: '1700000000123',
    key: null,
    value: null,
    ...over,
  });

  test('reads back as the codec: keys, values, nulls, text and repeated headers, in order', () => {
    const messages: FetchedMessage[] = [
      message({ offset: '7', key: Buffer.from('user-1'), value: Buffer.from('{"a":1}') }),
      message({ offset: '8', headers: { trace: Buffer.from('t-1'), text: 'héllo', gone: undefined } }),
      message({ offset: '9', value: Buffer.alloc(0), headers: { many: [Buffer.from('x'), 'y'] } }),
    ];
    const packed = packMessages(messages);
    const out = [...readRecords(packed.bytes.slice().buffer)].map(plain);
    expect(out).toEqual([
      { offset: 7, timestamp: 1_700_000_000_123, key: [...bytes('user-1')], value: [...bytes('{"a":1}')], headers: [] },
      {
        offset: 8,
        timestamp: 1_700_000_000_123,
        key: null,
        value: null,
        headers: [
          ['trace', [...bytes('t-1')]],
          ['text', [...bytes('héllo')]],
        ],
      },
      {
        offset: 9,
        timestamp: 1_700_000_000_123,
        key: null,
        value: [],
        headers: [
          ['many', [...bytes('x')]],
          ['many', [...bytes('y')]],
        ],
      },
    ]);
    expect(packed.payloadBytes).toBe(6 + 7 + (5 + 3) + (4 + bytes('héllo').length) + (4 + 1) * 2);
  });

  test('one exactly sized buffer of its own, and where each record starts', () => {
    const packed = packMessages([
      message({ offset: '1', value: Buffer.from('abc') }),
      message({ offset: '2', key: Buffer.from('k') }),
    ]);
    expect(packed.bytes.byteOffset).toBe(0);
    expect(packed.bytes.buffer.byteLength).toBe(packed.bytes.byteLength); // transferable as it is
    expect([...packed.starts]).toEqual([0, RECORD_FRAME_BYTES + 3, 2 * RECORD_FRAME_BYTES + 4]);
    expect(offsetAt(packed.bytes, packed.starts[1]!)).toBe(2);
  });

  test('copies the bytes: the fetch buffers can be reused or freed', () => {
    const value = Buffer.from('abc');
    const packed = packMessages([message({ offset: '1', value })]);
    value[0] = 0x7a;
    expect([...readRecords(packed.bytes.buffer as ArrayBuffer)][0]!.value).toEqual(bytes('abc'));
  });
});
