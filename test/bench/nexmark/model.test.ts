/**
 * The Nexmark generator model (bench/nexmark/model.ts): the same events as the upstream Java classes
 * given the same seeds (digests from bench/nexmark/upstream/check.sh), the JDK's SplittableRandom bit
 * for bit, and the model's properties — proportions, determinism, ids and the relations between them,
 * hot items, event-time spacing, out-of-order groups, sizes.
 */
import { createHash } from 'node:crypto';
import { describe, expect, test } from '@jest/globals';
import {
  type Auction,
  type Bid,
  generateEvents,
  maxOutOfOrdernessMs,
  type NexmarkConfig,
  type NexmarkEvent,
  type Person,
  timeOf,
  US_STATES,
} from '../../../bench/nexmark/model.ts';
import { SplittableRandom } from '../../../bench/nexmark/random.ts';

const BASE = Date.UTC(2024, 0, 1);

function digest(count: number, config: Partial<NexmarkConfig>): string {
  const lines: string[] = [];
  for (const e of generateEvents(count, { baseTime: BASE, ...config })) lines.push(JSON.stringify(e));
  return createHash('sha256')
    .update(`${lines.join('\n')}\n`)
    .digest('hex');
}

function split(events: Iterable<NexmarkEvent>): { persons: Person[]; auctions: Auction[]; bids: Bid[] } {
  const out = { persons: [] as Person[], auctions: [] as Auction[], bids: [] as Bid[] };
  for (const e of events) {
    if (e.type === 'person') out.persons.push(e.person);
    else if (e.type === 'auction') out.auctions.push(e.auction);
    else out.bids.push(e.bid);
  }
  return out;
}

describe('as upstream', () => {
  test('SplittableRandom gives the JDK 17 values', () => {
    // new SplittableRandom(42): nextInt() ×5, nextInt(100) ×5, nextLong(), nextDouble(); (-7): nextInt(13) ×5
    const r = new SplittableRandom(42);
    expect(Array.from({ length: 5 }, () => r.nextInt())).toEqual([
      -491277234, 909395113, -1877322334, -1024560952, -1540993733,
    ]);
    expect(Array.from({ length: 5 }, () => r.nextBoundedInt(100))).toEqual([71, 56, 19, 28, 6]);
    expect(Array.from({ length: 5 }, () => r.nextBoundedInt(1 << 20))).toEqual([
      979955, 526910, 215622, 320653, 786144,
    ]);
    expect(Array.from({ length: 5 }, () => r.nextBoundedInt(1048576 - 70))).toEqual([
      61457, 881160, 871253, 942994, 348334,
    ]);
    expect(r.nextLong()).toBe(-787210419263134744n);
    r.nextLong();
    r.nextLong();
    r.nextLong();
    r.nextLong();
    expect(r.nextDouble()).toBe(0.27756737998567216);
    const s = new SplittableRandom(-7);
    expect(Array.from({ length: 5 }, () => s.nextBoundedInt(13))).toEqual([9, 3, 4, 6, 11]);
  });

  test('the first 20 000 events are those of the upstream generator with the same seeds', () => {
    expect(digest(20_000, {})).toBe('475b786238a41c2a98d50d117632318e3b1583c642d08450608fd4c33f588702');
    expect(digest(20_000, { seed: 5, firstEventRate: 1000, outOfOrderGroupSize: 7 })).toBe(
      '690709664f742d24ccc52e628e85a554e4e4ef6a7aa5c157c501c71ded2ad8ca',
    );
  });
});

describe('properties', () => {
  const events = [...generateEvents(50_000, { baseTime: BASE })];
  const { persons, auctions, bids } = split(events);

  test('1 person, 3 auctions and 46 bids in every 50 events', () => {
    expect([persons.length, auctions.length, bids.length]).toEqual([1000, 3000, 46_000]);
    for (let i = 0; i < events.length; i += 50) {
      const window = split(events.slice(i, i + 50));
      expect([window.persons.length, window.auctions.length, window.bids.length]).toEqual([1, 3, 46]);
    }
  });

  test('deterministic from the seed', () => {
    expect(digest(20_000, { seed: 7 })).toBe(digest(20_000, { seed: 7 }));
    expect(digest(5000, { seed: 7 })).not.toBe(digest(5000, { seed: 8 }));
  });

  test('ids: persons and auctions numbered from 1001 in order; sellers, auctions bid on and bidders near them', () => {
    expect(persons.map((p) => p.id)).toEqual(persons.map((_, i) => 1001 + i));
    expect(auctions.map((a) => a.id)).toEqual(auctions.map((_, i) => 1001 + i));
    let lastPerson = 1000;
    let lastAuction = 1000;
    const outside: string[] = [];
    const within = (what: string, id: number, low: number, high: number): void => {
      if (id < low || id > high) outside.push(`${what} ${id} not in [${low}, ${high}]`);
    };
    for (const e of events) {
      if (e.type === 'person') lastPerson = e.person.id;
      else if (e.type === 'auction') {
        lastAuction = e.auction.id;
        // An active person (the last 1000) or up to 10 ahead; person 1000 itself is never generated.
        within('seller', e.auction.seller, Math.max(1000, lastPerson - 1000), lastPerson + 10);
      } else {
        // One of the last 100 auctions in flight, or up to 10 ahead.
        within('auction', e.bid.auction, Math.max(1000, lastAuction - 100), lastAuction + 10);
        // Upstream adds FIRST_PERSON_ID twice: bidders are person ids + 1000.
        within('bidder - 1000', e.bid.bidder - 1000, Math.max(1000, lastPerson - 1000), lastPerson + 10);
      }
    }
    expect(outside).toEqual([]);
  });

  test('hot sellers, auctions and bidders: the first of the last group of 100, 3/4, 1/2 and 3/4 of the time', () => {
    let lastPerson = 1000;
    let lastAuction = 1000;
    let hotSellers = 0;
    let hotAuctions = 0;
    let hotBidders = 0;
    for (const e of events) {
      if (e.type === 'person') lastPerson = e.person.id;
      else if (e.type === 'auction') {
        lastAuction = e.auction.id;
        if (e.auction.seller === Math.floor((lastPerson - 1000) / 100) * 100 + 1000) hotSellers++;
      } else {
        if (e.bid.auction === Math.floor((lastAuction - 1000) / 100) * 100 + 1000) hotAuctions++;
        if (e.bid.bidder === Math.floor((lastPerson - 1000) / 100) * 100 + 1 + 2000) hotBidders++;
      }
    }
    // Hot by choice, plus the few random choices that hit the hot id.
    expect(hotSellers / auctions.length).toBeCloseTo(0.75, 1);
    expect(hotAuctions / bids.length).toBeCloseTo(0.5, 1);
    expect(hotBidders / bids.length).toBeCloseTo(0.75, 1);
  });

  test('values: categories 10–14, six states, prices 1 $ to 1 000 000 $, auctions expire after they start', () => {
    expect(new Set(auctions.map((a) => a.category))).toEqual(new Set([10, 11, 12, 13, 14]));
    expect(new Set(persons.map((p) => p.state))).toEqual(new Set(US_STATES));
    expect(bids.filter((b) => !(b.price >= 100 && b.price <= 100_000_000))).toEqual([]);
    expect(auctions.filter((a) => a.reserve < a.initialBid || a.expires <= a.dateTime)).toEqual([]);
    expect(new Set(bids.map((b) => b.channel)).has('Google')).toBe(true);
  });

  test('event time: n · 1000/rate ms after the base time, in order; extra pads to the average sizes', () => {
    expect(events.filter((e, i) => timeOf(e) !== BASE + Math.floor((i + 1) / 10))).toEqual([]);
    const lengths = (xs: Array<{ extra: string }>) => xs.map((x) => x.extra.length);
    // Bid: 100 − 32 bytes, ± 20 %; person: 200 bytes on average.
    expect(Math.min(...lengths(bids))).toBeGreaterThanOrEqual(54);
    expect(Math.max(...lengths(bids))).toBeLessThanOrEqual(81);
    const personSize = persons.map(
      (p) => 8 + p.name.length + p.emailAddress.length + p.creditCard.length + p.city.length + p.state.length,
    );
    const avg = persons.reduce((n, p, i) => n + personSize[i]! + p.extra.length, 0) / persons.length;
    expect(avg).toBeGreaterThan(190);
    expect(avg).toBeLessThan(210);
  });

  test('out-of-order groups: events jitter within their group, never more than maxOutOfOrdernessMs', () => {
    const config = { baseTime: BASE, firstEventRate: 1000, outOfOrderGroupSize: 20 };
    const bound = maxOutOfOrdernessMs(config);
    expect(maxOutOfOrdernessMs({})).toBe(0);
    let max = -Infinity;
    let worst = 0;
    for (const e of generateEvents(20_000, config)) {
      const t = timeOf(e);
      worst = Math.max(worst, max - t);
      max = Math.max(max, t);
    }
    expect(worst).toBeGreaterThan(0);
    expect(worst).toBeLessThanOrEqual(bound);
  });
});
