/**
 * Seeded, counter-based random numbers: every draw is a pure function of (seed, stream, keys), never of how
 * many draws came before. So the Gumbel noise for (step 3, position 17, token 42) is the same whichever rows a
 * cache policy happens to compute and in whatever order; a cached run can reproduce the uncached run exactly,
 * and the logits head and the top-k stats head see the same noise for the same token.
 */

/** Independent families of draws; a new use of randomness gets its own stream. */
export const RandomStream = {
  /** Gumbel noise for temperature sampling, keyed by (step, position, token). */
  gumbel: 1,
  /** The per-position priority of the `random` algorithm and of greedy's random order, keyed by position. */
  order: 2,
} as const;
export type RandomStreamId = (typeof RandomStream)[keyof typeof RandomStream];

/** murmur3's 32-bit finaliser: a bijection with full avalanche. */
function mix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

function combine(h: number, key: number): number {
  return mix32(h ^ mix32((key + 0x9e3779b9) | 0));
}

const TWO_POW_20 = 2 ** 20;
const TWO_POW_52 = 2 ** 52;

export class KeyedRandom {
  private readonly seedHash: number;

  /** @param seed a non-negative safe integer */
  constructor(seed: number) {
    if (!Number.isSafeInteger(seed) || seed < 0) throw new RangeError(`seed must be a non-negative safe integer, got ${seed}`);
    this.seedHash = combine(mix32(seed >>> 0), Math.floor(seed / 2 ** 32));
  }

  /** A 32-bit key for (stream, a, b); pass it to `uniformAt` for the draws under it. */
  key(stream: RandomStreamId, a = 0, b = 0): number {
    return combine(combine(combine(this.seedHash, stream), a), b);
  }

  /**
   * The uniform draw number `index` under `key`, in the open interval (0, 1) with 52 random bits (n + 0.5) / 2^52,
   * exact in a double and never 0 or 1: Gumbel noise needs double resolution (LLaDA draws it in float64 on
   * purpose, arXiv 2409.02908).
   */
  uniformAt(key: number, index: number): number {
    const hi = mix32(key ^ Math.imul(index, 0x9e3779b1));
    const lo = mix32(hi ^ 0x632be5ab ^ index);
    return (hi * TWO_POW_20 + (lo >>> 12) + 0.5) / TWO_POW_52;
  }

  /** Standard Gumbel noise -log(-log u) for draw `index` under `key`. */
  gumbelAt(key: number, index: number): number {
    return -Math.log(-Math.log(this.uniformAt(key, index)));
  }
}
