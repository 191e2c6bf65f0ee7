/** Commit metadata: what a restarted owner of a partition rebuilds its state from. */
import { describe, expect, test } from '@jest/globals';
import {
  type Checkpoint,
  decodeCheckpoint,
  encodeCheckpoint,
  MAX_SOURCES,
  METADATA_LIMIT_BYTES,
} from '../../src/wire/checkpoint.ts';

function checkpoint(extra: Partial<Checkpoint> = {}): Checkpoint {
  return { end: 0, streamTime: null, dedupe: new Map(), sources: new Map(), ...extra };
}

const SOURCES = ['orders:0', 'orders:1', 'orders:2'];

describe('encodeCheckpoint / decodeCheckpoint', () => {
  test('round trips end, stream time, de-duplication marks and source watermarks', () => {
    const original = checkpoint({
      end: 12_345,
      streamTime: 1_700_000_000_000,
      dedupe: new Map<string, readonly [number, number]>([
        ['orders:0', [17, 0]],
        ['orders:1', [9_000_000_000, 3]],
      ]),
      sources: new Map([
        ['orders:0', { streamTime: 1_700_000_000_000, idle: false }],
        ['orders:1', { streamTime: 1_699_999_990_000, idle: true }],
      ]),
    });
    expect(decodeCheckpoint(encodeCheckpoint(original, SOURCES), SOURCES)).toEqual(original);
  });

  test('the minimal checkpoint is compact and round trips with null stream time and empty maps', () => {
    const text = encodeCheckpoint(checkpoint({ end: 5 }), SOURCES);
    expect(text).toBe('{"v":2,"e":5}');
    expect(decodeCheckpoint(text, SOURCES)).toEqual(checkpoint({ end: 5 }));
  });

  test('a non-finite stream time is stored as none', () => {
    for (const streamTime of [-Infinity, Infinity, Number.NaN]) {
      expect(decodeCheckpoint(encodeCheckpoint(checkpoint({ end: 1, streamTime })))?.streamTime).toBeNull();
    }
  });

  test('a source that reported idleness before any record (stream time -Infinity) survives the round trip', () => {
    // An empty input partition reports "idle, no record yet". Dropping it on restart would turn it into
    // "not idle, no stream time", which holds the stage's stream time at -Infinity.
    const original = checkpoint({
      end: 3,
      streamTime: 5_000,
      sources: new Map([
        ['orders:0', { streamTime: 5_000, idle: false }],
        ['orders:1', { streamTime: -Infinity, idle: true }],
      ]),
    });
    const decoded = decodeCheckpoint(encodeCheckpoint(original, SOURCES), SOURCES);
    expect(decoded?.sources.get('orders:1')).toEqual({ streamTime: -Infinity, idle: true });
    expect(decoded?.sources.get('orders:0')).toEqual({ streamTime: 5_000, idle: false });
    expect(decoded?.sources.has('orders:2')).toBe(false);
  });

  test('per-source marks written for another partition layout are dropped, the rest is kept', () => {
    const original = checkpoint({
      end: 7,
      streamTime: 9_000,
      dedupe: new Map<string, readonly [number, number]>([['orders:0', [1, 0]]]),
      sources: new Map([['orders:0', { streamTime: 9_000, idle: false }]]),
    });
    const text = encodeCheckpoint(original, SOURCES);
    const grown = [...SOURCES, 'orders:3'];
    expect(decodeCheckpoint(text, grown)).toEqual(checkpoint({ end: 7, streamTime: 9_000 }));
    const renamed = ['other:0', 'other:1', 'other:2'];
    expect(decodeCheckpoint(text, renamed)).toEqual(checkpoint({ end: 7, streamTime: 9_000 }));
  });

  test('metadata written by anything else is ignored', () => {
    for (const foreign of [
      null,
      undefined,
      '',
      'not json',
      'null',
      '[]',
      '42',
      '"text"',
      '{}',
      '{"e":5}',
      '{"v":1,"e":5}',
      '{"v":"2","e":5}',
      '{"v":2,"e":"5"}',
      '{"v":2}',
      'kafka-streams:{"v":2,"e":5}',
    ]) {
      expect(decodeCheckpoint(foreign, SOURCES)).toBeUndefined();
    }
  });

  test(`with ${MAX_SOURCES} upstream partitions the metadata stays under Kafka’s 4096-byte limit`, () => {
    // offset.metadata.max.bytes defaults to 4096: a larger commit is rejected by the broker
    // (OFFSET_METADATA_TOO_LARGE), so the partition could never commit again.
    const topic = 'clickstream-events-with-a-long-name';
    const names = Array.from({ length: MAX_SOURCES }, (_, p) => `${topic}:${p}`);
    const dedupe = new Map<string, readonly [number, number]>();
    const sources = new Map<string, { streamTime: number; idle: boolean }>();
    names.forEach((name, p) => {
      dedupe.set(name, [1_234_567_890 + p, p % 4]);
      sources.set(name, { streamTime: 1_700_000_000_000 - p * 1000, idle: p % 9 === 0 });
    });
    const original = checkpoint({ end: 9_876_543_210, streamTime: 1_700_000_000_000, dedupe, sources });
    const text = encodeCheckpoint(original, names);
    expect(Buffer.byteLength(text, 'utf8')).toBeLessThan(METADATA_LIMIT_BYTES);
    expect(decodeCheckpoint(text, names)).toEqual(original);
  });
});
