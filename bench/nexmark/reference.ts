/**
 * The Nexmark queries recomputed in plain TypeScript from the generated events (no Sluice code: only the
 * model's types), as the results a query's output topic must hold — Kafka key and value, in the shapes
 * of the Sluice jobs — and the comparison of an output with them (`Checker`: missing, extra, differing).
 *
 * Event-time semantics: the stream time at the end is the largest event time (the end-of-input bids); a
 * window or session is emitted when it closed, `end + lateness <= that time`; no event is late (the jobs'
 * lateness covers the model's out-of-orderness).
 */
import type { Auction, Bid, NexmarkEvent, Person } from './model.ts';

export const QUERIES = ['q0', 'q1', 'q2', 'q3', 'q5', 'q7', 'q11'] as const;
export type Query = (typeof QUERIES)[number];

/** One result: the Kafka key and the value of an output record. */
export interface Result {
  key: string | null;
  value: unknown;
}

const SECOND = 1000;
const Q5_SIZE = 10 * SECOND;
const Q5_SLIDE = 2 * SECOND;
const Q7_SIZE = 10 * SECOND;
const Q11_GAP = 10 * SECOND;

interface SelectedBid {
  auction: number;
  bidder: number;
  price: number;
  dateTime: number;
  extra: string;
}

const select = (b: Bid): SelectedBid => ({
  auction: b.auction,
  bidder: b.bidder,
  price: b.price,
  dateTime: b.dateTime,
  extra: b.extra,
});

/** `price * 0.908` as the exact 3-decimal number (the suite's DECIMAL), by decimal digits. */
export function euro(price: number): number {
  const thousandths = price * 908;
  return Number(`${Math.trunc(thousandths / 1000)}.${String(thousandths % 1000).padStart(3, '0')}`);
}

/**
 * What names a result, per query: an output record and an expected result with the same id are the same
 * result (equal or differing); several may share one (bids of one auction, bidder and millisecond).
 */
export function idOf(query: Query, key: string | null, value: unknown): string {
  const v = (value ?? {}) as Record<string, unknown>;
  switch (query) {
    case 'q0':
    case 'q1':
      return `${String(v['auction'])}/${String(v['bidder'])}/${String(v['dateTime'])}`;
    case 'q2':
      return `${String(v['auction'])}/${String(v['price'])}`;
    case 'q3':
      return String(v['id']);
    case 'q5':
    case 'q7':
      return String(v['windowStart']);
    case 'q11':
      return `${key}/${String(v['windowStart'])}`;
  }
}

/** Feeds on the events in order; `results(query)` is then what the query must output. */
export class Reference {
  readonly latenessMs: number;
  #streamTime = -Infinity;
  readonly #bids: SelectedBid[] = [];
  readonly #q1: Result[] = [];
  readonly #q2: Result[] = [];
  readonly #persons = new Map<number, Person>();
  readonly #category10: Auction[] = [];
  readonly #q5 = new Map<number, Map<number, number>>();
  readonly #q7 = new Map<number, { price: number; bids: SelectedBid[] }>();
  /** Prices of the bids exactly at a q7 window's end (the suite's BETWEEN includes them), by window start. */
  readonly #q7Edge = new Map<number, number[]>();
  readonly #q11 = new Map<number, number[]>();
  readonly #queries: ReadonlySet<Query>;

  constructor(options: { latenessMs: number; queries?: readonly Query[] }) {
    this.latenessMs = options.latenessMs;
    this.#queries = new Set(options.queries ?? QUERIES);
  }

  add(e: NexmarkEvent): void {
    if (e.type === 'person') {
      if (this.#queries.has('q3')) this.#persons.set(e.person.id, e.person);
      return;
    }
    if (e.type === 'auction') {
      if (this.#queries.has('q3') && e.auction.category === 10) this.#category10.push(e.auction);
      return;
    }
    const b = e.bid;
    const q = this.#queries;
    this.#streamTime = Math.max(this.#streamTime, b.dateTime);
    if (q.has('q0')) this.#bids.push(select(b));
    if (q.has('q1')) this.#q1.push({ key: null, value: { ...select(b), price: euro(b.price) } });
    if (q.has('q2') && b.auction % 123 === 0) {
      this.#q2.push({ key: null, value: { auction: b.auction, price: b.price } });
    }
    if (q.has('q5')) {
      // Every window [s, s + 10 s) with s a multiple of 2 s that holds dateTime.
      const first = Math.floor((b.dateTime - Q5_SIZE) / Q5_SLIDE + 1) * Q5_SLIDE;
      for (let s = first; s <= b.dateTime; s += Q5_SLIDE) {
        let counts = this.#q5.get(s);
        if (!counts) this.#q5.set(s, (counts = new Map()));
        counts.set(b.auction, (counts.get(b.auction) ?? 0) + 1);
      }
    }
    if (q.has('q7')) {
      const s = b.dateTime - (((b.dateTime % Q7_SIZE) + Q7_SIZE) % Q7_SIZE);
      const w = this.#q7.get(s);
      if (!w || b.price > w.price) this.#q7.set(s, { price: b.price, bids: [select(b)] });
      else if (b.price === w.price) w.bids.push(select(b));
      if (s === b.dateTime) {
        const prices = this.#q7Edge.get(s - Q7_SIZE);
        if (prices) prices.push(b.price);
        else this.#q7Edge.set(s - Q7_SIZE, [b.price]);
      }
    }
    if (q.has('q11')) {
      const times = this.#q11.get(b.bidder);
      if (times) times.push(b.dateTime);
      else this.#q11.set(b.bidder, [b.dateTime]);
    }
  }

  #closed(end: number): boolean {
    return end + this.latenessMs <= this.#streamTime;
  }

  results(query: Query): Result[] {
    switch (query) {
      case 'q0':
        return this.#bids.map((b) => ({ key: null, value: b }));
      case 'q1':
        return this.#q1;
      case 'q2':
        return this.#q2;
      case 'q3':
        return this.#q3();
      case 'q5':
        return this.#hotItems();
      case 'q7':
        return this.#highestBids();
      case 'q11':
        return this.#sessions('split');
    }
  }

  #q3(): Result[] {
    const out: Result[] = [];
    for (const a of this.#category10) {
      const p = this.#persons.get(a.seller);
      if (p && ['OR', 'ID', 'CA'].includes(p.state)) {
        out.push({ key: String(a.seller), value: { name: p.name, city: p.city, state: p.state, id: a.id } });
      }
    }
    return out;
  }

  #hotItems(): Result[] {
    const out: Result[] = [];
    for (const [s, counts] of this.#q5) {
      if (!this.#closed(s + Q5_SIZE)) continue;
      const num = Math.max(...counts.values());
      const auctions = [...counts.keys()].filter((a) => counts.get(a) === num).sort((x, y) => x - y);
      out.push(windowResult(s, s + Q5_SIZE, { num, auctions }));
    }
    return out;
  }

  #highestBids(): Result[] {
    const out: Result[] = [];
    for (const [s, w] of this.#q7) {
      if (!this.#closed(s + Q7_SIZE)) continue;
      const bids = [...w.bids].sort(
        (a, b) =>
          a.dateTime - b.dateTime || a.auction - b.auction || a.bidder - b.bidder || (a.extra < b.extra ? -1 : 1),
      );
      out.push(windowResult(s, s + Q7_SIZE, { price: w.price, bids }));
    }
    return out;
  }

  /**
   * q11's sessions per bidder. `split` (Sluice, Spark): two bids exactly the gap apart are two sessions;
   * `merge` (Flink: its session windows merge when they touch) makes them one.
   */
  #sessions(touching: 'split' | 'merge'): Result[] {
    const out: Result[] = [];
    for (const [bidder, unsorted] of this.#q11) {
      const times = [...unsorted].sort((x, y) => x - y);
      let start = times[0]!;
      let n = 0;
      for (let i = 0; i < times.length; i++) {
        n++;
        const next = times[i + 1];
        const gap = next === undefined ? Infinity : next - times[i]!;
        if (gap > Q11_GAP || (gap === Q11_GAP && touching === 'split')) {
          const end = times[i]! + Q11_GAP;
          if (this.#closed(end)) {
            const key = String(bidder);
            out.push({ key, value: { key, windowStart: start, windowEnd: end, value: n } });
          }
          if (next !== undefined) start = next;
          n = 0;
        }
      }
    }
    return out;
  }

  /** Where the suite's own semantics would give other results than the jobs' (see the queries' comments). */
  deviations(): { q7InclusiveEnd: number | null; q11TouchingSessions: number | null } {
    if (!this.#queries.has('q7') && !this.#queries.has('q11'))
      return { q7InclusiveEnd: null, q11TouchingSessions: null };
    let q7InclusiveEnd = 0;
    for (const [s, prices] of this.#q7Edge) {
      const w = this.#q7.get(s);
      if (w && this.#closed(s + Q7_SIZE)) q7InclusiveEnd += prices.filter((p) => p === w.price).length;
    }
    const q11TouchingSessions = this.#sessions('split').length - this.#sessions('merge').length;
    return {
      q7InclusiveEnd: this.#queries.has('q7') ? q7InclusiveEnd : null,
      q11TouchingSessions: this.#queries.has('q11') ? q11TouchingSessions : null,
    };
  }
}

function windowResult(start: number, end: number, value: unknown): Result {
  return { key: 'all', value: { key: 'all', windowStart: start, windowEnd: end, value } };
}

/** JSON with object keys sorted, so that equal values compare equal whatever their key order. */
export function canonical(value: unknown): string {
  return JSON.stringify(value, (_k, v: unknown) =>
    v !== null && typeof v === 'object' && !Array.isArray(v)
      ? Object.fromEntries(Object.entries(v as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : 1)))
      : v,
  );
}

export interface Comparison {
  matched: number;
  missing: string[];
  extra: string[];
  differing: Array<{ id: string; expected: string; actual: string }>;
}

/**
 * Checks an output against the expected results as it is read: `offer` each output record, `complete` once
 * every expected result was seen, `comparison()` names what is missing, extra (or twice) and differing.
 */
export class Checker {
  readonly query: Query;
  readonly expected: number;
  /** id → canonical `{key, value}` strings not yet seen. */
  readonly #remaining = new Map<string, string[]>();
  readonly #unexpected: Array<{ id: string; actual: string }> = [];
  #left: number;
  #offered = 0;

  constructor(query: Query, expected: Iterable<Result>) {
    this.query = query;
    let n = 0;
    for (const r of expected) {
      const id = idOf(query, r.key, r.value);
      const s = canonical({ key: r.key, value: r.value });
      const list = this.#remaining.get(id);
      if (list) list.push(s);
      else this.#remaining.set(id, [s]);
      n++;
    }
    this.expected = n;
    this.#left = n;
  }

  get complete(): boolean {
    return this.#left === 0;
  }

  get offered(): number {
    return this.#offered;
  }

  offer(key: string | null, value: unknown): void {
    this.#offered++;
    const id = idOf(this.query, key, value);
    const s = canonical({ key, value });
    const list = this.#remaining.get(id);
    const at = list ? list.indexOf(s) : -1;
    if (list && at >= 0) {
      list[at] = list[list.length - 1]!;
      list.pop();
      if (list.length === 0) this.#remaining.delete(id);
      this.#left--;
    } else this.#unexpected.push({ id, actual: s });
  }

  comparison(): Comparison {
    const left = new Map([...this.#remaining].map(([id, list]) => [id, [...list]]));
    const extra: string[] = [];
    const differing: Comparison['differing'] = [];
    for (const u of this.#unexpected) {
      const expected = left.get(u.id)?.pop();
      if (expected === undefined) extra.push(u.actual);
      else differing.push({ id: u.id, expected, actual: u.actual });
    }
    return { matched: this.expected - this.#left, missing: [...left.values()].flat(), extra, differing };
  }

  /** `exact`, or how many results are missing, extra and differing, with examples. */
  summary(): string {
    const c = this.comparison();
    if (c.missing.length === 0 && c.extra.length === 0 && c.differing.length === 0) return 'exact';
    const cut = (s: string): string => (s.length > 160 ? `${s.slice(0, 160)}…` : s);
    const parts: string[] = [];
    if (c.missing.length > 0) parts.push(`${c.missing.length} missing (e.g. ${cut(c.missing[0]!)})`);
    if (c.extra.length > 0) parts.push(`${c.extra.length} extra (e.g. ${cut(c.extra[0]!)})`);
    if (c.differing.length > 0) {
      const d = c.differing[0]!;
      parts.push(`${c.differing.length} differing (e.g. ${d.id}: expected ${cut(d.expected)}, got ${cut(d.actual)})`);
    }
    return `${parts.join('; ')} of ${this.expected} expected`;
  }
}
