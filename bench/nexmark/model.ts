/**
 * The Nexmark generator model: persons, auctions and bids of an online auction system.
 *
 * A port of the nexmark/nexmark suite's generator (github.com/nexmark/nexmark, commit 6b3646c, 2025-12-26),
 * `nexmark-flink/src/main/java/com/github/nexmark/flink/`: `generator/GeneratorConfig.java`,
 * `generator/NexmarkGenerator.java`, `generator/model/{Person,Auction,Bid,Price,Strings,Long}Generator.java`
 * (the last three, and the static tables, in strings.ts), with the defaults of `NexmarkConfiguration.java` and
 * the source's `firstEventId = firstEventNumber = 1` (`source/NexmarkTableSourceFactory.java`). Same
 * proportions (1 person : 3 auctions : 46 bids per 50 events), ids (from 1000; persons and auctions by event
 * id), hot sellers, auctions and bidders (1 − 1/ratio of auctions/bids go to the first seller/auction/bidder
 * of the last group of 100), 10 + 5 categories, six states, ten cities, prices `round(10^(6u) · 100)`,
 * auction lengths, channels and URLs, `extra` padding to the average sizes (person 200, auction 500, bid 100
 * bytes), event time `baseTime + n · 10^6/rate µs`, and out-of-order groups (`outOfOrderGroupSize`, 1 = in
 * order, the default). Upstream's quirk is kept: a bid's bidder is offset by `FIRST_PERSON_ID` twice
 * (`BidGenerator.nextBid`), so bidders are person ids + 1000.
 *
 * Where it differs:
 * - deterministic from `seed`: upstream's three `SplittableRandom`s are unseeded; here the event random is
 *   `SplittableRandom(seed)`, the bid channel/URL tables' `seed + 1` and the 1 MiB extra string's `seed + 2`
 *   (random.ts reproduces the JDK's generator bit for bit, so the upstream classes given those seeds produce
 *   these events: `upstream/check.sh` compares them, identical over the first 1 000 000 at the defaults);
 * - `baseTime` is given (upstream: the wall clock when the source starts); times are epoch milliseconds;
 * - one generator (upstream splits the id space over the source's parallel instances, each on its own
 *   timeline); no rate shape or wall-clock pacing (upstream's datagen runs at maximum speed too);
 * - `Math.pow` is V8's, which may differ from the JVM's in the last bit on rare inputs (a price off by a cent).
 */
import { SplittableRandom } from './random.ts';
import {
  buildExactString,
  CHANNELS_NUMBER,
  HOT_CHANNELS,
  nextLong,
  nextPrice,
  nextString,
  type Tables,
  tablesFor,
} from './strings.ts';

export interface Person {
  id: number;
  name: string;
  emailAddress: string;
  creditCard: string;
  city: string;
  state: string;
  dateTime: number;
  extra: string;
}

export interface Auction {
  id: number;
  itemName: string;
  description: string;
  initialBid: number;
  reserve: number;
  dateTime: number;
  expires: number;
  seller: number;
  category: number;
  extra: string;
}

export interface Bid {
  auction: number;
  bidder: number;
  price: number;
  channel: string;
  url: string;
  dateTime: number;
  extra: string;
}

export type NexmarkEvent =
  { type: 'person'; person: Person } | { type: 'auction'; auction: Auction } | { type: 'bid'; bid: Bid };

/** `NexmarkConfiguration`'s generator settings (upstream defaults), plus the seed and the base time. */
export interface NexmarkConfig {
  seed: number;
  /** Event time of event number 0, epoch ms. */
  baseTime: number;
  /** Events per second of event time (`first-event.rate`). */
  firstEventRate: number;
  numEventGenerators: number;
  personProportion: number;
  auctionProportion: number;
  bidProportion: number;
  avgPersonByteSize: number;
  avgAuctionByteSize: number;
  avgBidByteSize: number;
  hotAuctionRatio: number;
  hotSellersRatio: number;
  hotBiddersRatio: number;
  numInFlightAuctions: number;
  numActivePeople: number;
  outOfOrderGroupSize: number;
  firstEventId: number;
  firstEventNumber: number;
}

export const DEFAULT_CONFIG: Readonly<NexmarkConfig> = Object.freeze({
  seed: 42,
  baseTime: Date.UTC(2024, 0, 1),
  firstEventRate: 10_000,
  numEventGenerators: 1,
  personProportion: 1,
  auctionProportion: 3,
  bidProportion: 46,
  avgPersonByteSize: 200,
  avgAuctionByteSize: 500,
  avgBidByteSize: 100,
  hotAuctionRatio: 2,
  hotSellersRatio: 4,
  hotBiddersRatio: 4,
  numInFlightAuctions: 100,
  numActivePeople: 1000,
  outOfOrderGroupSize: 1,
  firstEventId: 1,
  firstEventNumber: 1,
});

export const FIRST_AUCTION_ID = 1000;
export const FIRST_PERSON_ID = 1000;
export const FIRST_CATEGORY_ID = 10;
const NUM_CATEGORIES = 5;
const AUCTION_ID_LEAD = 10;
const PERSON_ID_LEAD = 10;
const HOT_SELLER_RATIO = 100;
const HOT_AUCTION_RATIO = 100;
const HOT_BIDDER_RATIO = 100;
const HOT_CHANNELS_RATIO = 2;
export const US_STATES = ['AZ', 'CA', 'ID', 'OR', 'WA', 'WY'];
const US_CITIES = 'Phoenix,Los Angeles,San Francisco,Boise,Portland,Bend,Redmond,Seattle,Kent,Cheyenne'.split(',');
const FIRST_NAMES = 'Peter,Paul,Luke,John,Saul,Vicky,Kate,Julie,Sarah,Deiter,Walter'.split(',');
const LAST_NAMES = 'Shultz,Abrams,Spencer,White,Bartels,Walton,Smith,Jones,Noris'.split(',');
/** Java's `(long) x / y` for non-negative operands. */
const div = (x: number, y: number): number => Math.floor(x / y);

export class NexmarkGenerator {
  readonly config: Readonly<NexmarkConfig>;
  readonly #random: SplittableRandom;
  readonly #tables: Tables;
  readonly #total: number;
  readonly #interEventDelayUs: number;
  #count = 0;

  constructor(config: Partial<NexmarkConfig> = {}) {
    this.config = Object.freeze({ ...DEFAULT_CONFIG, ...config });
    this.#random = new SplittableRandom(this.config.seed);
    this.#tables = tablesFor(this.config.seed);
    const c = this.config;
    this.#total = c.personProportion + c.auctionProportion + c.bidProportion;
    this.#interEventDelayUs = (1_000_000 / c.firstEventRate) * c.numEventGenerators;
  }

  /** Events generated so far. */
  get eventsCountSoFar(): number {
    return this.#count;
  }

  /** `GeneratorConfig.timestampForEvent`. */
  timestampForEvent(eventNumber: number): number {
    return this.config.baseTime + div(Math.trunc(eventNumber * this.#interEventDelayUs), 1000);
  }

  /** `nextAdjustedEventNumber`: the event number with the out-of-order group's jitter. */
  #adjustedEventNumber(numEvents: number): number {
    const n = this.config.outOfOrderGroupSize;
    const eventNumber = this.config.firstEventNumber + numEvents;
    return div(eventNumber, n) * n + ((eventNumber * 953) % n);
  }

  /** The next event, with its (adjusted) event time in `dateTime`. */
  next(): NexmarkEvent {
    const c = this.config;
    const adjusted = this.#adjustedEventNumber(this.#count);
    const timestamp = this.timestampForEvent(adjusted);
    const eventId = c.firstEventId + adjusted;
    const rem = eventId % this.#total;
    let event: NexmarkEvent;
    if (rem < c.personProportion) event = { type: 'person', person: this.#person(eventId, timestamp) };
    else if (rem < c.personProportion + c.auctionProportion)
      event = { type: 'auction', auction: this.#auction(this.#count, eventId, timestamp) };
    else event = { type: 'bid', bid: this.#bid(eventId, timestamp) };
    this.#count++;
    return event;
  }

  /** `PersonGenerator.lastBase0PersonId`. */
  lastBase0PersonId(eventId: number): number {
    const epoch = div(eventId, this.#total);
    let offset = eventId % this.#total;
    if (offset >= this.config.personProportion) offset = this.config.personProportion - 1;
    return epoch * this.config.personProportion + offset;
  }

  /** `AuctionGenerator.lastBase0AuctionId`. */
  lastBase0AuctionId(eventId: number): number {
    const { personProportion: p, auctionProportion: a } = this.config;
    let epoch = div(eventId, this.#total);
    let offset = eventId % this.#total;
    if (offset < p) {
      epoch--;
      offset = a - 1;
    } else if (offset >= p + a) offset = a - 1;
    else offset -= p;
    return epoch * a + offset;
  }

  #nextBase0PersonId(eventId: number): number {
    const numPeople = this.lastBase0PersonId(eventId) + 1;
    const activePeople = Math.min(numPeople, this.config.numActivePeople);
    return numPeople - activePeople + nextLong(this.#random, activePeople + PERSON_ID_LEAD);
  }

  #nextBase0AuctionId(eventId: number): number {
    const maxAuction = this.lastBase0AuctionId(eventId);
    const minAuction = Math.max(maxAuction - this.config.numInFlightAuctions, 0);
    return minAuction + nextLong(this.#random, maxAuction - minAuction + 1 + AUCTION_ID_LEAD);
  }

  /** `StringsGenerator.nextExtra`: padding so that the event's size is on average `average`. */
  #nextExtra(currentSize: number, average: number): string {
    if (currentSize > average) return '';
    const desired = average - currentSize;
    const delta = Math.round(desired * 0.2);
    const size = desired - delta + (delta === 0 ? 0 : this.#random.nextBoundedInt(2 * delta));
    const extra = this.#tables.extraString;
    if (size >= extra.length / 2) return buildExactString(this.#random, size);
    const offset = this.#random.nextBoundedInt(extra.length - size);
    return extra.substring(offset, offset + size);
  }

  #person(eventId: number, timestamp: number): Person {
    const r = this.#random;
    const id = this.lastBase0PersonId(eventId) + FIRST_PERSON_ID;
    const name = `${FIRST_NAMES[r.nextBoundedInt(FIRST_NAMES.length)]} ${LAST_NAMES[r.nextBoundedInt(LAST_NAMES.length)]}`;
    const emailAddress = `${nextString(r, 7)}@${nextString(r, 5)}.com`;
    const cards = this.#tables.creditCards;
    const creditCard = [0, 1, 2, 3].map(() => cards[r.nextBoundedInt(cards.length)]).join(' ');
    const city = US_CITIES[r.nextBoundedInt(US_CITIES.length)]!;
    const state = US_STATES[r.nextBoundedInt(US_STATES.length)]!;
    const size = 8 + name.length + emailAddress.length + creditCard.length + city.length + state.length;
    const extra = this.#nextExtra(size, this.config.avgPersonByteSize);
    return { id, name, emailAddress, creditCard, city, state, dateTime: timestamp, extra };
  }

  #auction(eventsCountSoFar: number, eventId: number, timestamp: number): Auction {
    const r = this.#random;
    const c = this.config;
    const id = this.lastBase0AuctionId(eventId) + FIRST_AUCTION_ID;
    const seller =
      (r.nextBoundedInt(c.hotSellersRatio) > 0
        ? div(this.lastBase0PersonId(eventId), HOT_SELLER_RATIO) * HOT_SELLER_RATIO
        : this.#nextBase0PersonId(eventId)) + FIRST_PERSON_ID;
    const category = FIRST_CATEGORY_ID + r.nextBoundedInt(NUM_CATEGORIES);
    const initialBid = nextPrice(r);
    // nextAuctionLengthMs: on average until the auction numInFlightAuctions ahead is generated.
    const numEventsForAuctions = div(c.numInFlightAuctions * this.#total, c.auctionProportion);
    const futureAuction = this.timestampForEvent(this.#adjustedEventNumber(eventsCountSoFar) + numEventsForAuctions);
    const expires = timestamp + 1 + nextLong(r, Math.max((futureAuction - timestamp) * 2, 1));
    const itemName = nextString(r, 20);
    const description = nextString(r, 100);
    const reserve = initialBid + nextPrice(r);
    const extra = this.#nextExtra(8 + itemName.length + description.length + 40, c.avgAuctionByteSize);
    return { id, itemName, description, initialBid, reserve, dateTime: timestamp, expires, seller, category, extra };
  }

  #bid(eventId: number, timestamp: number): Bid {
    const r = this.#random;
    const c = this.config;
    const auction =
      (r.nextBoundedInt(c.hotAuctionRatio) > 0
        ? div(this.lastBase0AuctionId(eventId), HOT_AUCTION_RATIO) * HOT_AUCTION_RATIO
        : this.#nextBase0AuctionId(eventId)) + FIRST_AUCTION_ID;
    let bidder =
      (r.nextBoundedInt(c.hotBiddersRatio) > 0
        ? div(this.lastBase0PersonId(eventId), HOT_BIDDER_RATIO) * HOT_BIDDER_RATIO + 1
        : this.#nextBase0PersonId(eventId)) + FIRST_PERSON_ID;
    const price = nextPrice(r);
    let channel: string;
    let url: string;
    if (r.nextBoundedInt(HOT_CHANNELS_RATIO) > 0) {
      const i = r.nextBoundedInt(HOT_CHANNELS.length);
      channel = HOT_CHANNELS[i]!;
      url = this.#tables.hotUrls[i]!;
    } else {
      [channel, url] = this.#tables.channelUrls[r.nextBoundedInt(CHANNELS_NUMBER)]!;
    }
    bidder += FIRST_PERSON_ID; // upstream adds it twice
    const extra = this.#nextExtra(32, c.avgBidByteSize);
    return { auction, bidder, price, channel, url, dateTime: timestamp, extra };
  }
}

/** The first `count` events of the model with `config`. */
export function* generateEvents(count: number, config: Partial<NexmarkConfig> = {}): Generator<NexmarkEvent> {
  const generator = new NexmarkGenerator(config);
  for (let i = 0; i < count; i++) yield generator.next();
}

/** The event time of an event. */
export function timeOf(e: NexmarkEvent): number {
  return e.type === 'bid' ? e.bid.dateTime : e.type === 'auction' ? e.auction.dateTime : e.person.dateTime;
}

/**
 * The most an event's time can lie behind an earlier event's (out-of-order groups; 0 when in order): the
 * lateness a query needs so that no event is late.
 */
export function maxOutOfOrdernessMs(config: Partial<NexmarkConfig> = {}): number {
  const c = { ...DEFAULT_CONFIG, ...config };
  if (c.outOfOrderGroupSize <= 1) return 0;
  return Math.ceil(((c.outOfOrderGroupSize - 1) * 1000 * c.numEventGenerators) / c.firstEventRate) + 1;
}

/** How far after the last event the end-of-input bids lie: every window and session of the events closes. */
export const END_AHEAD_MS = 3_600_000;

/**
 * End-of-input bids, one per bids partition: auction and bidder −1, `END_AHEAD_MS` after `lastTime`. Their
 * event time closes every window and session of the events before them; their own never close.
 */
export function endBids(lastTime: number, partitions: number): Bid[] {
  return Array.from({ length: partitions }, () => ({
    auction: -1,
    bidder: -1,
    price: 0,
    channel: 'end',
    url: '',
    dateTime: lastTime + END_AHEAD_MS,
    extra: '',
  }));
}
