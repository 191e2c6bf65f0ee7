/**
 * `java.util.SplittableRandom` (JDK 17 and later), bit for bit, for the Nexmark generator model: the seed
 * advances by the golden gamma, `nextInt()` is `mix32`, `nextInt(bound)` the JDK's rejection loop,
 * `nextLong()` is `mix64` and `nextDouble()` its top 53 bits. 64-bit arithmetic is done on two
 * unsigned 32-bit halves (BigInt would be about 20 times slower on a million events).
 * `split()` is not ported: the model never splits.
 */

// Scratch result of the 64-bit helpers below (the generator calls them millions of times).
let rHi = 0;
let rLo = 0;
// Bound once: a global lookup per call is slow where the global object is a sandbox's (Jest's vm context).
const imul = Math.imul;

/** (aHi:aLo × bHi:bLo) mod 2^64 into rHi:rLo. */
function mul64(aHi: number, aLo: number, bHi: number, bLo: number): void {
  const a0 = aLo & 0xffff;
  const a1 = aLo >>> 16;
  const b0 = bLo & 0xffff;
  const b1 = bLo >>> 16;
  const p00 = a0 * b0;
  const p01 = a0 * b1;
  const p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  rLo = (((mid & 0xffff) << 16) | (p00 & 0xffff)) >>> 0;
  const carry = a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16);
  rHi = (carry + imul(aLo, bHi) + imul(aHi, bLo)) >>> 0;
}

/** z ^ (z >>> k) for 0 < k < 32, into rHi:rLo. */
function xorShift(hi: number, lo: number, k: number): void {
  rLo = (lo ^ ((lo >>> k) | (hi << (32 - k)))) >>> 0;
  rHi = (hi ^ (hi >>> k)) >>> 0;
}

/** `SplittableRandom.mix64`, into rHi:rLo. */
function mix64(hi: number, lo: number): void {
  xorShift(hi, lo, 30);
  mul64(rHi, rLo, 0xbf58476d, 0x1ce4e5b9);
  xorShift(rHi, rLo, 27);
  mul64(rHi, rLo, 0x94d049bb, 0x133111eb);
  // z ^ (z >>> 31)
  xorShift(rHi, rLo, 31);
}

/** `SplittableRandom.mix32`: a signed 32-bit integer. */
function mix32(hi: number, lo: number): number {
  // z ^ (z >>> 33): the low half takes hi >>> 1, the high half is unchanged.
  mul64(hi, (lo ^ (hi >>> 1)) >>> 0, 0x62a9d9ed, 0x799705f5);
  xorShift(rHi, rLo, 28);
  mul64(rHi, rLo, 0xcb24d0a5, 0xc88c35b3);
  return rHi | 0;
}

const GAMMA_HI = 0x9e3779b9;
const GAMMA_LO = 0x7f4a7c15;

export class SplittableRandom {
  #hi: number;
  #lo: number;

  /** `new SplittableRandom(seed)`: a 64-bit seed (a number is taken as a signed long). */
  constructor(seed: number | bigint) {
    const s = BigInt.asUintN(64, BigInt(seed));
    this.#hi = Number(s >> 32n);
    this.#lo = Number(s & 0xffffffffn);
  }

  #nextSeed(): void {
    const lo = this.#lo + GAMMA_LO;
    this.#lo = lo >>> 0;
    this.#hi = (this.#hi + GAMMA_HI + (lo > 0xffffffff ? 1 : 0)) >>> 0;
  }

  /** `nextInt()`: a signed 32-bit integer. */
  nextInt(): number {
    this.#nextSeed();
    return mix32(this.#hi, this.#lo);
  }

  /** `nextInt(bound)`: uniform in [0, bound), bound a positive 32-bit integer. */
  nextBoundedInt(bound: number): number {
    if (!(bound > 0) || bound > 0x7fffffff) throw new RangeError(`bound must be in [1, 2^31): ${bound}`);
    let r = this.nextInt();
    const m = bound - 1;
    if ((bound & m) === 0) return r & m;
    // Java: for (int u = r >>> 1; u + m - (r = u % bound) < 0; u = nextInt() >>> 1); (int overflow)
    for (let u = r >>> 1; ((u + m - (r = u % bound)) | 0) < 0; u = this.nextInt() >>> 1);
    return r;
  }

  /** `nextLong()` as a BigInt (signed). */
  nextLong(): bigint {
    this.#nextSeed();
    mix64(this.#hi, this.#lo);
    return BigInt.asIntN(64, (BigInt(rHi) << 32n) | BigInt(rLo));
  }

  /** `nextDouble()`: uniform in [0, 1) with 53 random bits. */
  nextDouble(): number {
    this.#nextSeed();
    mix64(this.#hi, this.#lo);
    // (z >>> 11) * 2^-53, z = rHi:rLo
    return (rHi * 2097152 + (rLo >>> 11)) * 2 ** -53;
  }
}
