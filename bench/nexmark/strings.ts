/**
 * The Nexmark model's strings, prices and the tables upstream builds once per JVM: ports of
 * `StringsGenerator`, `PriceGenerator`, `LongGenerator` and the static tables of `PersonGenerator` and
 * `BidGenerator` (nexmark/nexmark commit 6b3646c; see model.ts), seeded where upstream is not.
 */
import { SplittableRandom } from './random.ts';

export const CHANNELS_NUMBER = 10_000;
export const HOT_CHANNELS = ['Google', 'Facebook', 'Baidu', 'Apple'];
const MIN_STRING_LENGTH = 3;
const EXTRA_STRING_LENGTH = 1024 * 1024;

/** `LongGenerator.nextLong`: uniform in [0, n). */
export function nextLong(random: SplittableRandom, n: number): number {
  if (n < 0x7fffffff) return random.nextBoundedInt(n);
  const r = random.nextLong() % BigInt(n);
  return Number(r < 0n ? -r : r);
}

/** `PriceGenerator.nextPrice`, in cents. */
export const nextPrice = (random: SplittableRandom): number => Math.round(Math.pow(10, random.nextDouble() * 6) * 100);

/** `StringsGenerator.nextString`: 3 to maxLength − 1 letters, about 1 in 13 `special`, trimmed. */
export function nextString(random: SplittableRandom, maxLength: number, special = ' '): string {
  let len = MIN_STRING_LENGTH + random.nextBoundedInt(maxLength - MIN_STRING_LENGTH);
  let s = '';
  while (len-- > 0) {
    s += random.nextBoundedInt(13) === 0 ? special : String.fromCharCode(97 + random.nextBoundedInt(26));
  }
  return special === ' ' ? s.trim() : s;
}

/** `StringsGenerator`'s long exact string: Java's `'a' + rnd % 26`, negative remainders included. */
export function buildExactString(random: SplittableRandom, length: number): string {
  const codes = new Uint16Array(length);
  let rnd = 0;
  let n = 0;
  for (let i = 0; i < length; i++) {
    if (n === 0) {
      rnd = random.nextInt();
      n = 6;
    }
    codes[i] = 97 + (rnd % 26);
    rnd = Math.trunc(rnd / 26);
    n--;
  }
  let s = '';
  for (let i = 0; i < length; i += 8192) s += String.fromCharCode(...codes.subarray(i, i + 8192));
  return s;
}

/** The tables upstream builds once per JVM from unseeded randoms (here: from the seed). */
export interface Tables {
  extraString: string;
  hotUrls: string[];
  channelUrls: Array<[string, string]>;
  creditCards: string[];
}

const tablesBySeed = new Map<number, Tables>();

export function tablesFor(seed: number): Tables {
  let tables = tablesBySeed.get(seed);
  if (tables) return tables;
  const extraString = buildExactString(new SplittableRandom(seed + 2), EXTRA_STRING_LENGTH);
  const bidRandom = new SplittableRandom(seed + 1);
  const baseUrl = (): string =>
    `https://www.nexmark.com/${nextString(bidRandom, 5, '_')}/${nextString(bidRandom, 5, '_')}/` +
    `${nextString(bidRandom, 5, '_')}/item.htm?query=1`;
  const hotUrls = [baseUrl(), baseUrl(), baseUrl(), baseUrl()];
  const channelUrls: Array<[string, string]> = [];
  for (let i = 0; i < CHANNELS_NUMBER; i++) {
    let url = baseUrl();
    // Java: Math.abs(Integer.reverse(i)), which leaves Integer.MIN_VALUE negative.
    if (bidRandom.nextBoundedInt(10) > 0) url += `&channel_id=${Math.abs(reverseBits(i)) | 0}`;
    channelUrls.push([`channel-${i}`, url]);
  }
  const creditCards = Array.from({ length: 10_000 }, (_, i) => String(i).padStart(4, '0'));
  tables = { extraString, hotUrls, channelUrls, creditCards };
  tablesBySeed.set(seed, tables);
  return tables;
}

/** `Integer.reverse`: the 32 bits of i in reverse order, as a signed int. */
function reverseBits(i: number): number {
  let r = 0;
  for (let b = 0; b < 32; b++) r = (r << 1) | ((i >>> b) & 1);
  return r | 0;
}
