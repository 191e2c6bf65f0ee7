/**
 * The reference recomputation (bench/nexmark/reference.ts) on hand-made events with results worked out
 * by hand — ties, window edges, sessions exactly a gap apart, joins that miss — and its checker naming
 * missing, extra and differing results.
 */
import { describe, expect, test } from '@jest/globals';
import { type Auction, type Bid, type NexmarkEvent, type Person } from '../../../bench/nexmark/model.ts';
import { Checker, euro, Reference } from '../../../bench/nexmark/reference.ts';

const bid = (dateTime: number, auction: number, price = 100, bidder = 1): NexmarkEvent => ({
  type: 'bid',
  bid: { auction, bidder, price, channel: 'Google', url: 'u', dateTime, extra: '' } satisfies Bid,
});
const person = (id: number, state: string): NexmarkEvent => ({
  type: 'person',
  person: {
    id,
    name: `p${id}`,
    emailAddress: '',
    creditCard: '',
    city: 'Bend',
    state,
    dateTime: 0,
    extra: '',
  } satisfies Person,
});
const auction = (id: number, seller: number, category: number): NexmarkEvent => ({
  type: 'auction',
  auction: {
    id,
    itemName: '',
    description: '',
    initialBid: 1,
    reserve: 1,
    dateTime: 0,
    expires: 1,
    seller,
    category,
    extra: '',
  } satisfies Auction,
});
const END = 100_000;

function referenceOf(events: NexmarkEvent[], latenessMs = 0): Reference {
  const reference = new Reference({ latenessMs });
  for (const e of [...events, bid(END, -1)]) reference.add(e);
  return reference;
}

const windowed = (r: Reference, query: 'q5' | 'q7') =>
  r.results(query).map((x) => x.value as { windowStart: number; windowEnd: number; value: unknown });

describe('the reference', () => {
  test('q1 converts to euro exactly, as a 3-decimal number', () => {
    expect([euro(1), euro(37), euro(123), euro(1000), euro(0)]).toEqual([0.908, 33.596, 111.684, 908, 0]);
    expect(JSON.stringify(euro(123))).toBe('111.684');
    expect(JSON.stringify(0.908 * 37)).toBe('33.596000000000004'); // why the query does not multiply by 0.908
  });

  test('q2 keeps auction ids that are multiples of 123, end bids excluded', () => {
    const r = referenceOf([bid(0, 1230), bid(1, 1231), bid(2, 0)]);
    expect(r.results('q2').map((x) => x.value)).toEqual([
      { auction: 1230, price: 100 },
      { auction: 0, price: 100 },
    ]);
  });

  test('q5: every 2 s window of 10 s, the most bid auctions with ties; windows of the end bids never close', () => {
    const r = referenceOf([bid(0, 1), bid(500, 1), bid(1000, 2), bid(2500, 2), bid(12_500, 3)]);
    const results = windowed(r, 'q5');
    const byStart = new Map(results.map((w) => [w.windowStart, w.value]));
    expect([...byStart.keys()].sort((a, b) => a - b)).toEqual([
      -8000, -6000, -4000, -2000, 0, 2000, 4000, 6000, 8000, 10_000, 12_000,
    ]);
    expect(byStart.get(-8000)).toEqual({ num: 2, auctions: [1] }); // [-8 s, 2 s): 0, 500 (1) and 1000 (2)
    expect(byStart.get(0)).toEqual({ num: 2, auctions: [1, 2] });
    expect(byStart.get(2000)).toEqual({ num: 1, auctions: [2] });
    expect(byStart.get(12_000)).toEqual({ num: 1, auctions: [3] });
    expect(results.every((w) => w.windowEnd === w.windowStart + 10_000)).toBe(true);
  });

  test('q7: the highest price per 10 s window and every bid at it, in time order', () => {
    const r = referenceOf([bid(1000, 5, 7, 2), bid(0, 4, 5), bid(500, 6, 7, 3), bid(2500, 7, 3), bid(12_500, 8, 9)]);
    expect(windowed(r, 'q7')).toEqual([
      {
        key: 'all',
        windowStart: 0,
        windowEnd: 10_000,
        value: {
          price: 7,
          bids: [
            { auction: 6, bidder: 3, price: 7, dateTime: 500, extra: '' },
            { auction: 5, bidder: 2, price: 7, dateTime: 1000, extra: '' },
          ],
        },
      },
      {
        key: 'all',
        windowStart: 10_000,
        windowEnd: 20_000,
        value: { price: 9, bids: [{ auction: 8, bidder: 1, price: 9, dateTime: 12_500, extra: '' }] },
      },
    ]);
    // The suite's inclusive BETWEEN would also join a bid at exactly 10 000 at price 7 to the first window.
    expect(referenceOf([bid(500, 1, 7), bid(10_000, 2, 7)]).deviations().q7InclusiveEnd).toBe(1);
  });

  test('q11: a session ends 10 s after its last bid; bids exactly 10 s apart are two sessions (Flink: one)', () => {
    const r = referenceOf([bid(0, 1, 1, 1), bid(1000, 1, 1, 2), bid(5000, 1, 1, 1), bid(15_000, 1, 1, 1)]);
    expect(r.results('q11')).toEqual([
      { key: '1', value: { key: '1', windowStart: 0, windowEnd: 15_000, value: 2 } },
      { key: '1', value: { key: '1', windowStart: 15_000, windowEnd: 25_000, value: 1 } },
      { key: '2', value: { key: '2', windowStart: 1000, windowEnd: 11_000, value: 1 } },
    ]);
    expect(r.deviations().q11TouchingSessions).toBe(1);
  });

  test('windows and sessions that have not closed by the end (lateness counted) are not results', () => {
    const r = referenceOf([bid(0, 1), bid(80_000, 2, 100, 2)], 15_000);
    // [80 s, 90 s) closes at 105 s > 100 s; the session of bidder 2 ends at 90 s and closes at 105 s too.
    expect(windowed(r, 'q7').map((w) => w.windowStart)).toEqual([0]);
    expect(r.results('q11').map((x) => x.key)).toEqual(['1']);
  });

  test('q3: category 10 auctions of sellers in OR, ID or CA, with the seller as key', () => {
    const r = referenceOf([
      person(1001, 'OR'),
      person(1002, 'AZ'),
      auction(1, 1001, 10),
      auction(2, 1001, 11),
      auction(3, 1002, 10),
      auction(4, 1005, 10),
      person(1003, 'CA'),
      auction(5, 1003, 10),
    ]);
    expect(r.results('q3')).toEqual([
      { key: '1001', value: { name: 'p1001', city: 'Bend', state: 'OR', id: 1 } },
      { key: '1003', value: { name: 'p1003', city: 'Bend', state: 'CA', id: 5 } },
    ]);
  });
});

describe('the checker', () => {
  const expected = [
    { key: 'all', value: { key: 'all', windowStart: 0, windowEnd: 10_000, value: { num: 2, auctions: [1] } } },
    { key: 'all', value: { key: 'all', windowStart: 2000, windowEnd: 12_000, value: { num: 1, auctions: [2] } } },
    { key: 'all', value: { key: 'all', windowStart: 4000, windowEnd: 14_000, value: { num: 1, auctions: [3] } } },
  ];

  test('exact whatever the order of keys in an object and of the records', () => {
    const checker = new Checker('q5', expected);
    for (const r of [...expected].reverse()) {
      const { key, windowStart, windowEnd, value } = r.value;
      checker.offer(r.key, { value, windowEnd, windowStart, key });
      expect(checker.complete).toBe(r === expected[0]);
    }
    expect(checker.summary()).toBe('exact');
  });

  test('names missing, extra, twice-emitted and differing results', () => {
    const checker = new Checker('q5', expected);
    checker.offer('all', expected[0]!.value);
    checker.offer('all', expected[0]!.value); // emitted twice
    checker.offer('all', { ...expected[1]!.value, value: { num: 1, auctions: [7] } }); // differs
    checker.offer('all', { ...expected[1]!.value, windowStart: 6000 }); // not expected
    const c = checker.comparison();
    expect(checker.complete).toBe(false);
    expect(c.matched).toBe(1);
    expect(c.missing).toHaveLength(1);
    expect(c.missing[0]).toContain('"windowStart":4000');
    expect(c.extra).toHaveLength(2);
    expect(c.differing).toEqual([
      { id: '2000', expected: expect.stringContaining('[2]'), actual: expect.stringContaining('[7]') },
    ]);
    expect(checker.summary()).toMatch(
      /^1 missing \(e\.g\. .*\); 2 extra .*; 1 differing \(e\.g\. 2000: expected .* of 3 expected$/,
    );
  });
});
