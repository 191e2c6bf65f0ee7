/**
 * A deterministic, realistic clickstream for the examples, the demo, tests and benchmarks: page views
 * `{ page, user, ts }` keyed by user, pages and users Zipf-skewed, with a configurable mix of
 * out-of-order, late and malformed records — the inputs a stream processor has to get right.
 *
 * `generateClickstream()` is pure (seeded PRNG, event time derived from the index), so a test can
 * recompute exactly what was produced; `flushRecords()` then close every window of it.
 * `runGenerator()` produces live traffic with `ts = now`.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import { Kafka, Partitioners, logLevel, type Message, type Producer } from 'kafkajs';

export type RecordKind = 'ok' | 'out-of-order' | 'late' | 'malformed';

export interface PageView {
  page: string;
  user: string;
  ts: number;
}

export interface GeneratedRecord {
  /** The Kafka key: the user. */
  key: string;
  /** The Kafka value: the event as JSON, or (kind `malformed`) a string that is not valid JSON. */
  value: string;
  /** The event in `value`; absent for malformed records. */
  event?: PageView;
  kind: RecordKind;
}

/** How records are generated; shared by the finite and the live generator. */
export interface ClickstreamMix {
  /** PRNG seed. @defaultValue 1 */
  seed?: number;
  /** Distinct users (about 1 in 25 is a bot, named `bot-…`). @defaultValue 500 */
  users?: number;
  /** Distinct pages. @defaultValue 40 */
  pages?: number;
  /** Share of records displaced back in event time by 1..maxDisorderMs. @defaultValue 0.05 */
  outOfOrderFraction?: number;
  /** Largest out-of-order displacement; keep it below the job's allowed lateness. @defaultValue 3000 */
  maxDisorderMs?: number;
  /** Share of records 60–120 s behind the largest event time so far. @defaultValue 0.002 */
  lateFraction?: number;
  /** Share of records whose value is not valid JSON. @defaultValue 0.001 */
  malformedFraction?: number;
}

export interface ClickstreamOptions extends ClickstreamMix {
  count: number;
  /** Event time of the first record (epoch ms); fixed by default so that output is reproducible. */
  startTime?: number;
  /** Event-time density: record i has base time `startTime + i * 1000 / eventsPerSecond`. @defaultValue 1000 */
  eventsPerSecond?: number;
}

export const DEFAULT_START_TIME = Date.UTC(2024, 0, 1);
const LATE_MIN_MS = 60_000;
const LATE_MAX_MS = 120_000;

/** mulberry32: a small, fast 32-bit PRNG; good enough for test data and fully reproducible. */
export function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Draws ranks 0..n-1 with probability proportional to 1 / (rank + 1)^exponent. */
function zipfSampler(n: number, exponent: number, random: () => number): () => number {
  const cdf = new Float64Array(n);
  let total = 0;
  for (let i = 0; i < n; i++) {
    total += 1 / Math.pow(i + 1, exponent);
    cdf[i] = total;
  }
  return () => {
    const x = random() * total;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if ((cdf[mid] ?? total) > x) hi = mid;
      else lo = mid + 1;
    }
    return lo;
  };
}

const COMMON_PAGES = ['/', '/home', '/products', '/search', '/cart', '/checkout', '/login', '/account', '/help'];

/** Page names by popularity rank: the site's common pages, then product and blog pages. */
export function pageNames(count: number): string[] {
  const names = COMMON_PAGES.slice(0, count);
  for (let i = 0; names.length < count; i++) {
    names.push(i % 4 === 3 ? `/blog/Post-${(i - 3) / 4 + 1}` : `/products/SKU-${1000 + i}`);
  }
  return names;
}

/** User names by activity rank; heavy hitters include bots, as on a real site. */
export function userNames(count: number): string[] {
  return Array.from({ length: count }, (_, i) => (i % 25 === 2 ? `bot-${i}` : `user-${i}`));
}

function fraction(name: string, value: number | undefined, fallback: number): number {
  const f = value ?? fallback;
  if (!(f >= 0 && f <= 1)) throw new RangeError(`${name} must be within [0, 1], got ${f}`);
  return f;
}

/** Turns a base event time into a record of the configured mix; keeps the largest event time so far. */
export class ClickstreamModel {
  readonly #random: () => number;
  readonly #page: () => number;
  readonly #user: () => number;
  readonly #pages: string[];
  readonly #users: string[];
  readonly #thresholds: { malformed: number; late: number; outOfOrder: number };
  readonly #maxDisorderMs: number;
  #maxTs = -Infinity;

  constructor(mix: ClickstreamMix = {}) {
    this.#random = mulberry32(mix.seed ?? 1);
    this.#pages = pageNames(Math.max(1, mix.pages ?? 40));
    this.#users = userNames(Math.max(1, mix.users ?? 500));
    this.#page = zipfSampler(this.#pages.length, 1.1, this.#random);
    this.#user = zipfSampler(this.#users.length, 0.8, this.#random);
    const malformed = fraction('malformedFraction', mix.malformedFraction, 0.001);
    const late = malformed + fraction('lateFraction', mix.lateFraction, 0.002);
    const outOfOrder = late + fraction('outOfOrderFraction', mix.outOfOrderFraction, 0.05);
    if (outOfOrder > 1) throw new RangeError('the out-of-order, late and malformed fractions add up to more than 1');
    this.#thresholds = { malformed, late, outOfOrder };
    this.#maxDisorderMs = Math.max(1, mix.maxDisorderMs ?? 3000);
  }

  next(baseTs: number): GeneratedRecord {
    const r = this.#random();
    const page = this.#pages[this.#page()] ?? '/';
    const user = this.#users[this.#user()] ?? 'user-0';
    if (r < this.#thresholds.malformed) {
      return { key: user, value: this.#malformed({ page, user, ts: baseTs }), kind: 'malformed' };
    }
    let kind: RecordKind = 'ok';
    let ts = baseTs;
    if (r < this.#thresholds.late) {
      kind = 'late';
      const reference = Number.isFinite(this.#maxTs) ? this.#maxTs : baseTs;
      ts = reference - LATE_MIN_MS - Math.floor(this.#random() * (LATE_MAX_MS - LATE_MIN_MS + 1));
    } else if (r < this.#thresholds.outOfOrder) {
      kind = 'out-of-order';
      ts = baseTs - 1 - Math.floor(this.#random() * this.#maxDisorderMs);
    }
    if (kind !== 'late') this.#maxTs = Math.max(this.#maxTs, ts);
    const event = { page, user, ts };
    return { key: user, value: JSON.stringify(event), event, kind };
  }

  /** What broken producers really send; every variant fails `JSON.parse`. */
  #malformed(event: PageView): string {
    const json = JSON.stringify(event);
    switch (Math.floor(this.#random() * 4)) {
      case 0: // truncated: no proper prefix of a JSON object is valid JSON
        return json.slice(0, 1 + Math.floor(this.#random() * (json.length - 1)));
      case 1:
        return `page=${encodeURIComponent(event.page)}&user=${event.user}&ts=${event.ts}`;
      case 2:
        return json.replaceAll('"', "'");
      default:
        return `${json}}`;
    }
  }
}

/** A finite, reproducible clickstream: same options, same records. */
export function* generateClickstream(options: ClickstreamOptions): Iterable<GeneratedRecord> {
  const model = new ClickstreamModel(options);
  const start = options.startTime ?? DEFAULT_START_TIME;
  const perSecond = options.eventsPerSecond ?? 1000;
  if (!(perSecond > 0)) throw new RangeError(`eventsPerSecond must be positive, got ${perSecond}`);
  for (let i = 0; i < options.count; i++) yield model.next(start + Math.floor((i * 1000) / perSecond));
}

// No record timestamp (the producer stamps the send time): generated event times can lie far in the
// past, where the broker's retention and timestamp checks would drop or reject them. Jobs read `ts`.
function toMessage(record: GeneratedRecord): Message {
  return { key: record.key, value: record.value };
}

/** Sends the records in batches of `batchSize` (one produce request each); resolves with the count sent. */
export async function produceClickstream(
  producer: Producer,
  topic: string,
  records: Iterable<GeneratedRecord>,
  options: { batchSize?: number } = {},
): Promise<number> {
  const batchSize = options.batchSize ?? 500;
  let batch: Message[] = [];
  let sent = 0;
  for (const record of records) {
    batch.push(toMessage(record));
    if (batch.length >= batchSize) {
      await producer.send({ topic, messages: batch });
      sent += batch.length;
      batch = [];
    }
  }
  if (batch.length > 0) {
    await producer.send({ topic, messages: batch });
    sent += batch.length;
  }
  return sent;
}

/** The largest event time of `records` (malformed records have none); -Infinity when there is none. */
export function maxEventTime(records: Iterable<GeneratedRecord>): number {
  let max = -Infinity;
  for (const r of records) if (r.event && r.event.ts > max) max = r.event.ts;
  return max;
}

/**
 * Page names whose murmur2 partitions cover every partition of a `partitions`-partition topic keyed
 * by page: kafkajs' DefaultPartitioner is Kafka's default partitioner, which the sink of a `keyBy`
 * job, Kafka Streams' repartition topic and every other system here use.
 */
export function flushPages(partitions: number): string[] {
  const partitioner = Partitioners.DefaultPartitioner();
  const partitionMetadata = Array.from({ length: partitions }, (_, i) => ({ partitionId: i, leader: 0 })) as never;
  const pages = new Map<number, string>();
  for (let i = 0; pages.size < partitions; i++) {
    const page = `/flush-${i}`;
    const target = partitioner({ topic: 'x', partitionMetadata, message: { key: page, value: null } });
    if (!pages.has(target)) pages.set(target, page);
  }
  return [...pages.values()];
}

/** How far ahead of the largest event time the flush records lie: every window closes before it. */
export const FLUSH_AHEAD_MS = 3_600_000;

/**
 * Flush records: one per input partition (partition `i` gets the page `pages[i]`), `FLUSH_AHEAD_MS`
 * after `maxTs` in event time, so that every window of the generated records closes. With
 * {@link flushPages} they also reach every partition of a page-keyed repartition topic.
 */
export function flushRecords(
  maxTs: number,
  pages: readonly string[],
): Array<{ partition: number; key: string; value: string }> {
  return pages.map((page, partition) => ({
    partition,
    key: `flush-${partition}`,
    value: JSON.stringify({ page, user: `flush-${partition}`, ts: maxTs + FLUSH_AHEAD_MS }),
  }));
}

export interface RunGeneratorOptions extends ClickstreamMix {
  brokers: string | readonly string[];
  topic: string;
  ratePerSecond: number;
  /** Stops the generator; it then disconnects and resolves. */
  signal: AbortSignal;
  /** Stop after this many records. */
  limit?: number;
  /** Largest produce request. @defaultValue 1000 */
  batchSize?: number;
  clientId?: string;
  /** Called about once a second with the totals so far. */
  onProgress?: (stats: GeneratorStats) => void;
}

export interface GeneratorStats {
  sent: number;
  byKind: Record<RecordKind, number>;
}

const TICK_MS = 50;

/** Produces live traffic (event time = now, with the configured mix) at `ratePerSecond` until aborted. */
export async function runGenerator(options: RunGeneratorOptions): Promise<GeneratorStats> {
  const { signal, ratePerSecond } = options;
  if (!(ratePerSecond > 0)) throw new RangeError(`ratePerSecond must be positive, got ${ratePerSecond}`);
  const brokers = typeof options.brokers === 'string' ? options.brokers.split(',') : [...options.brokers];
  const kafka = new Kafka({ clientId: options.clientId ?? 'sluice-clickstream', brokers, logLevel: logLevel.NOTHING });
  const producer = kafka.producer({ createPartitioner: Partitioners.DefaultPartitioner });
  const model = new ClickstreamModel(options);
  const limit = options.limit ?? Infinity;
  const batchSize = options.batchSize ?? 1000;
  const stats: GeneratorStats = { sent: 0, byKind: { ok: 0, 'out-of-order': 0, late: 0, malformed: 0 } };
  await producer.connect();
  try {
    // A token bucket holding at most one second of traffic: after a stall (slow broker, GC) the
    // generator catches up by at most that much instead of sending a burst.
    let tokens = 0;
    let last = Date.now();
    let lastProgress = last;
    while (!signal.aborted && stats.sent < limit) {
      const now = Date.now();
      tokens = Math.min(tokens + ((now - last) * ratePerSecond) / 1000, ratePerSecond);
      last = now;
      let due = Math.min(Math.floor(tokens), limit - stats.sent);
      tokens -= due;
      while (due > 0 && !signal.aborted) {
        const messages: Message[] = [];
        for (let n = Math.min(batchSize, due); n > 0; n--) {
          const record = model.next(Date.now());
          stats.byKind[record.kind]++;
          messages.push(toMessage(record));
        }
        await producer.send({ topic: options.topic, messages });
        stats.sent += messages.length;
        due -= messages.length;
      }
      if (options.onProgress && now - lastProgress >= 1000) {
        lastProgress = now;
        options.onProgress(stats);
      }
      await sleep(TICK_MS, undefined, { signal }).catch(() => undefined);
    }
  } finally {
    await producer.disconnect();
  }
  return stats;
}
