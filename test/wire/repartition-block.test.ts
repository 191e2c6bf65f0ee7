/**
 * Repartition blocks: entries round-trip exactly (every encoding, null and empty keys and values,
 * positions, event times), blocks split near the target size without losing or reordering entries,
 * malformed blocks are refused, and the partitioner agrees with kafkajs's (Kafka's murmur2).
 */
import { createRequire } from 'node:module';
import { describe, expect, test } from '@jest/globals';
import {
  BLOCK_TARGET_BYTES,
  BlockFormatError,
  BlockWriter,
  blockEntryCount,
  murmur2,
  partitionFor,
  readBlock,
  repartitionRecords,
  type EntryPosition,
} from '../../src/wire/repartition-block.ts';
import { BLOCK_HEADER, WATERMARK_HEADER } from '../../src/wire/headers.ts';

const enc = new TextEncoder();
const dec = new TextDecoder();
/** An entry's upstream position; its input timestamp a fixed distance from its event time. */
const at = (offset: number, sequence: number, eventTime: number): EntryPosition => ({
  offset,
  sequence,
  eventTime,
  timestamp: eventTime + 3,
});

function seeded(seed: number): () => number {
  let s = seed >>> 0;
  return () => {
    s = (Math.imul(s, 1_664_525) + 1_013_904_223) >>> 0;
    return s / 2 ** 32;
  };
}

describe('partitionFor', () => {
  // kafkajs's own murmur2 (the one its DefaultPartitioner uses), reached through its source tree.
  const require = createRequire(import.meta.url);
  const kafkajsMurmur2 = require('kafkajs/src/producer/partitioners/default/murmur2.js') as (key: Buffer) => number;

  test('agrees with kafkajs on 5 000 random keys of every length 0–40, ASCII and not', () => {
    const random = seeded(7);
    for (let i = 0; i < 5_000; i++) {
      const key = new Uint8Array(Math.floor(random() * 41));
      for (let j = 0; j < key.length; j++) key[j] = Math.floor(random() * 256);
      expect(murmur2(key)).toBe(kafkajsMurmur2(Buffer.from(key)));
      expect(partitionFor(key, 8)).toBe((kafkajsMurmur2(Buffer.from(key)) & 0x7fffffff) % 8);
    }
  });

  test('known values of Kafka’s murmur2 (from the Java client’s tests)', () => {
    // org.apache.kafka.common.utils.UtilsTest#testMurmur2
    expect(murmur2(enc.encode('21'))).toBe(-973932308);
    expect(murmur2(enc.encode('foobar'))).toBe(-790332482);
    expect(murmur2(enc.encode('a-little-bit-long-string'))).toBe(-985981536);
    expect(murmur2(enc.encode('a-little-bit-longer-string'))).toBe(-1486304829);
    expect(murmur2(enc.encode('lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8'))).toBe(-58897971);
    expect(murmur2(new Uint8Array([97, 98, 99]))).toBe(479470107);
  });
});

describe('BlockWriter and readBlock', () => {
  test('entries round-trip exactly, per partition in write order', () => {
    const writer = new BlockWriter(3);
    const written: Array<{ key: string; offset: number; sequence: number; eventTime: number }> = [];
    const payloads: Array<[Parameters<BlockWriter['add']>[2], string | Uint8Array | null]> = [
      ['json', '{"a":1,"é":"ü"}'],
      ['string', 'plain text, not JSON — ✓'],
      ['bytes', new Uint8Array([0, 255, 128, 7])],
      ['null', null],
      ['string', ''],
      ['bytes', new Uint8Array(0)],
    ];
    for (let i = 0; i < 60; i++) {
      const key = i % 10 === 0 ? '' : `key-${i % 13}`;
      const [encoding, payload] = payloads[i % payloads.length]!;
      const eventTime = i === 5 ? -1 : 1_700_000_000_000 + i * 17;
      writer.add(enc.encode(key), at(2 ** 40 + i, i % 3, eventTime), encoding, payload);
      written.push({ key, offset: 2 ** 40 + i, sequence: i % 3, eventTime });
    }
    expect(writer.count).toBe(60);
    const blocks = writer.finish();
    expect(blocks.reduce((n, b) => n + b.count, 0)).toBe(60);
    const seen = new Map<number, Array<{ key: string; offset: number }>>();
    for (const b of blocks) {
      expect(blockEntryCount(b.data)).toBe(b.count);
      for (const e of readBlock(b.data)) {
        const i = e.offset - 2 ** 40;
        const [encoding, payload] = payloads[i % payloads.length]!;
        expect({ ...written[i], encoding }).toEqual({
          key: dec.decode(e.key!),
          offset: e.offset,
          sequence: e.sequence,
          eventTime: e.eventTime,
          encoding: e.encoding,
        });
        expect(e.timestamp).toBe(e.eventTime + 3);
        if (payload === null) expect(e.value).toBeNull();
        else if (typeof payload === 'string') expect(dec.decode(e.value!)).toBe(payload);
        else expect([...e.value!]).toEqual([...payload]);
        expect(partitionFor(e.key!, 3)).toBe(b.partition);
        const list = seen.get(b.partition) ?? [];
        list.push({ key: dec.decode(e.key!), offset: e.offset });
        seen.set(b.partition, list);
      }
    }
    for (const list of seen.values()) {
      expect(list.map((x) => x.offset)).toEqual([...list.map((x) => x.offset)].sort((a, b) => a - b));
    }
  });

  test('a batch larger than the target becomes several blocks; an entry larger than it goes whole', () => {
    const writer = new BlockWriter(1);
    const big = 'y'.repeat(BLOCK_TARGET_BYTES + 10);
    const small = 'x'.repeat(1_000);
    let n = 0;
    for (; n < 600; n++) writer.add(enc.encode('k'), at(n, 0, 0), 'string', small);
    writer.add(enc.encode('k'), at(n++, 0, 0), 'string', big);
    writer.add(enc.encode('k'), at(n++, 0, 0), 'string', small);
    const blocks = writer.finish();
    expect(blocks.length).toBeGreaterThanOrEqual(3);
    const offsets = blocks.flatMap((b) => [...readBlock(b.data)].map((e) => e.offset));
    expect(offsets).toEqual(Array.from({ length: n }, (_, i) => i));
    const sizes = blocks.flatMap((b) => [...readBlock(b.data)].map((e) => e.value!.length));
    expect(sizes.filter((s) => s === big.length)).toHaveLength(1);
  });

  test('a key given as text is written and partitioned as its UTF-8 bytes, long and non-ASCII included', () => {
    const keys = ['', 'home', 'é✓ü', 'x'.repeat(300), '€'.repeat(200), 'k-7'];
    const asText = new BlockWriter(5);
    const asBytes = new BlockWriter(5);
    keys.forEach((k, i) => {
      asText.add(k, at(i, 0, 0), 'null', null);
      asBytes.add(enc.encode(k), at(i, 0, 0), 'null', null);
    });
    const flat = (w: BlockWriter): Array<[number, number, string]> =>
      w
        .finish()
        .flatMap((b) =>
          [...readBlock(b.data)].map((e) => [b.partition, e.offset, dec.decode(e.key!)] as [number, number, string]),
        );
    const text = flat(asText);
    expect(text).toEqual(flat(asBytes));
    expect(text.map(([, , k]) => k).sort()).toEqual([...keys].sort());
  });

  test('version 1 blocks (written before entries carried the input timestamp) are still read', () => {
    // u8 version 1 | u32 count | f64 offset | u32 sequence | f64 eventTime | u8 encoding | key | value
    const key = enc.encode('page-7');
    const value = enc.encode('{"n":1}');
    const data = new Uint8Array(5 + 21 + 4 + key.length + 4 + value.length);
    const view = new DataView(data.buffer);
    view.setUint8(0, 1);
    view.setUint32(1, 1, true);
    view.setFloat64(5, 42, true);
    view.setUint32(13, 2, true);
    view.setFloat64(17, 1_700_000_000_123, true);
    view.setUint8(25, 0);
    view.setInt32(26, key.length, true);
    data.set(key, 30);
    view.setInt32(30 + key.length, value.length, true);
    data.set(value, 34 + key.length);
    expect(blockEntryCount(data)).toBe(1);
    const [entry] = [...readBlock(data)];
    expect({ ...entry, key: dec.decode(entry!.key!), value: dec.decode(entry!.value!) }).toEqual({
      offset: 42,
      sequence: 2,
      eventTime: 1_700_000_000_123,
      timestamp: undefined,
      encoding: 'json',
      key: 'page-7',
      value: '{"n":1}',
    });
  });

  test('finish() empties the writer', () => {
    const writer = new BlockWriter(2);
    writer.add(enc.encode('a'), at(1, 0, 0), 'null', null);
    expect(writer.finish()).toHaveLength(1);
    expect(writer.finish()).toEqual([]);
  });

  test('malformed blocks are refused with BlockFormatError', () => {
    const writer = new BlockWriter(1);
    writer.add(enc.encode('key'), at(1, 0, 5), 'json', '{"v":1}');
    const good = writer.finish()[0]!.data;
    const cases: Array<Uint8Array | null> = [
      null,
      new Uint8Array(0),
      new Uint8Array([1, 1, 0]),
      Uint8Array.from([3, ...good.subarray(1)]), // unknown version
      good.subarray(0, good.length - 1), // truncated value
      Uint8Array.from([...good, 0]), // trailing bytes
      (() => {
        const c = good.slice();
        c[5 + 28] = 9; // unknown encoding
        return c;
      })(),
      (() => {
        const c = good.slice();
        c[1] = 2; // claims two entries
        return c;
      })(),
    ];
    for (const data of cases) expect(() => [...readBlock(data)]).toThrow(BlockFormatError);
    expect([...readBlock(good)]).toHaveLength(1);
  });

  test('repartitionRecords counts block entries, no control records, and anything else one each', () => {
    const writer = new BlockWriter(1);
    for (let i = 0; i < 5; i++) writer.add(enc.encode('k'), at(i, 0, 0), 'null', null);
    const data = writer.finish()[0]!.data;
    expect(
      repartitionRecords([
        { value: data, headers: [[BLOCK_HEADER, enc.encode('1')]] },
        { value: null, headers: [[WATERMARK_HEADER, enc.encode('5')]] },
        { value: enc.encode('{}'), headers: [['sluice-src', enc.encode('in:0')]] },
      ]),
    ).toBe(6);
  });
});
