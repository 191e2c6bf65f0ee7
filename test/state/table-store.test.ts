/** The table store: latest value per key in offset order, tombstones, positions, records it cannot read. */
import { describe, expect, test } from '@jest/globals';
import { type TableRecord, TableStore } from '../../src/state/table-store.ts';

const enc = new TextEncoder();
const rec = (offset: number, key: string | null, value: string | null): TableRecord => ({
  offset,
  key: key === null ? null : enc.encode(key),
  value: value === null ? null : enc.encode(value),
});
const json = (v: unknown): string => JSON.stringify(v);

function store(format: 'json' | 'string' | 'bytes' = 'json'): TableStore {
  return new TableStore({ topic: 'users', kind: 'partitioned', format });
}

/** An independent recomputation: the last value per key, a null deleting it. */
function reference(records: readonly TableRecord[]): Map<string, unknown> {
  const rows = new Map<string, unknown>();
  for (const r of [...records].sort((a, b) => a.offset - b.offset)) {
    const key = new TextDecoder().decode(r.key!);
    if (r.value === null) rows.delete(key);
    else rows.set(key, JSON.parse(new TextDecoder().decode(r.value)));
  }
  return rows;
}

describe('TableStore', () => {
  test('puts: the latest value per key wins, in offset order', () => {
    const s = store();
    const unreadable = s.apply(
      0,
      [rec(0, 'a', json({ v: 1 })), rec(1, 'b', json({ v: 2 })), rec(2, 'a', json({ v: 3 }))],
      3,
    );
    expect(unreadable).toEqual([]);
    expect(s.get('a')).toEqual({ v: 3 });
    expect(s.get('b')).toEqual({ v: 2 });
    expect(s.get('c')).toBeUndefined();
    expect(s.size).toBe(2);
    expect(s.position(0)).toBe(3);
  });

  test('tombstones delete the key; a later put brings it back', () => {
    const s = store();
    s.apply(0, [rec(0, 'a', json(1)), rec(1, 'b', json(2)), rec(2, 'a', null)], 3);
    expect(s.get('a')).toBeUndefined();
    expect(s.size).toBe(1);
    s.apply(0, [rec(3, 'a', json(4)), rec(4, 'b', null), rec(5, 'missing', null)], 6);
    expect(s.get('a')).toBe(4);
    expect(s.get('b')).toBeUndefined();
    expect(s.size).toBe(1);
  });

  test('many chunks of random puts and deletes equal a recomputation; records below the position are not applied again', () => {
    let seed = 7;
    const random = (n: number): number => {
      seed = (seed * 1103515245 + 12345) % 2 ** 31;
      return seed % n;
    };
    const records: TableRecord[] = [];
    for (let offset = 0; offset < 2000; offset++) {
      const key = `k${random(50)}`;
      records.push(rec(offset, key, random(5) === 0 ? null : json({ offset, n: random(1000) })));
    }
    const s = store();
    let at = 0;
    while (at < records.length) {
      const size = 1 + random(300);
      // Every chunk overlaps the previous one (a compressed batch returned again): those are skipped.
      const from = Math.max(0, at - random(20));
      s.apply(0, records.slice(from, at + size), Math.min(records.length, at + size));
      at += size;
    }
    const expected = reference(records);
    expect(s.size).toBe(expected.size);
    for (const [key, value] of expected) expect(s.get(key)).toEqual(value);
    expect(s.position(0)).toBe(2000);
  });

  test('positions are per partition, and move past offsets without records (compaction, markers)', () => {
    const s = store();
    s.apply(0, [rec(0, 'a', json(1))], 5);
    s.apply(1, [rec(3, 'b', json(2))], 4);
    expect(s.position(0)).toBe(5);
    expect(s.position(1)).toBe(4);
    expect(s.position(2)).toBe(0);
    s.apply(0, [rec(4, 'a', json(99)), rec(5, 'c', json(3))], 6);
    expect(s.get('a')).toBe(1); // offset 4 is below partition 0's position
    expect(s.get('c')).toBe(3);
  });

  test('records it cannot read are returned, counted and not applied; the rest of the chunk is', () => {
    const s = store();
    s.apply(0, [rec(0, 'a', json({ ok: 1 }))], 1);
    const bad = s.apply(
      0,
      [
        rec(1, 'a', '{not json'),
        rec(2, null, json(1)),
        { offset: 3, key: enc.encode('b'), value: new Uint8Array([0xff, 0xfe]) },
        rec(4, 'c', json(3)),
      ],
      5,
    );
    expect(bad.map((u) => [u.record.offset, u.partition])).toEqual([
      [1, 0],
      [2, 0],
      [3, 0],
    ]);
    expect(bad[0]!.reason).toMatch(/^table record: value is not valid JSON/);
    expect(bad[1]!.reason).toBe('table record has no key');
    expect(bad[2]!.reason).toBe('table record: value is not valid UTF-8');
    expect(s.get('a')).toEqual({ ok: 1 }); // the unreadable update did not replace the row
    expect(s.get('b')).toBeUndefined();
    expect(s.get('c')).toBe(3);
    expect(s.unreadable).toBe(3);
    expect(s.position(0)).toBe(5);
  });

  test('string and bytes formats; bytes are copied out of the record', () => {
    const text = store('string');
    text.apply(0, [rec(0, 'a', '{not json at all')], 1);
    expect(text.get('a')).toBe('{not json at all');
    const raw = store('bytes');
    const value = new Uint8Array([1, 2, 3]);
    raw.apply(0, [{ offset: 0, key: enc.encode('a'), value }], 1);
    value[0] = 9;
    expect([...(raw.get('a') as Buffer)]).toEqual([1, 2, 3]);
  });

  test('misses are counted; clear forgets rows and positions but not the counts', () => {
    const s = store();
    s.apply(0, [rec(0, 'a', json(1)), rec(1, null, json(1))], 2);
    s.missed();
    s.missed();
    expect(s.misses).toBe(2);
    s.clear();
    expect(s.size).toBe(0);
    expect(s.position(0)).toBe(0);
    expect(s.misses).toBe(2);
    expect(s.unreadable).toBe(1);
  });
});
