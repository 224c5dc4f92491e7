// Seeded pseudo-random numbers, so that dataset splits and training-time
// augmentation are reproducible from one integer seed on every machine.

/** A source of uniform numbers in [0, 1). */
export type Rng = () => number;

/**
 * mulberry32: tiny, fast and statistically adequate for shuffling and
 * augmentation (not for cryptography). Same seed, same sequence, everywhere.
 */
export function createRng(seed: number): Rng {
  let state = mixSeed(seed) >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Derives an independent seed for a sub-stream (one per class, one per
 * epoch...) so that streams of neighbouring seeds do not overlap.
 */
export function deriveSeed(seed: number, ...parts: number[]): number {
  let h = mixSeed(seed);
  for (const part of parts) h = mixSeed(h ^ Math.imul(mixSeed(part), 0x9e3779b1));
  return h >>> 0;
}

/** In-place Fisher–Yates shuffle driven by `rng`. */
export function shuffleInPlace<T>(items: T[], rng: Rng): T[] {
  for (let i = items.length - 1; i > 0; i--) {
    const j = Math.floor(rng() * (i + 1));
    const tmp = items[i]!;
    items[i] = items[j]!;
    items[j] = tmp;
  }
  return items;
}

/** Uniform number in [low, high). */
export function uniform(rng: Rng, low: number, high: number): number {
  return low + (high - low) * rng();
}

/** Uniform integer in [low, highExclusive). */
export function randomInt(rng: Rng, low: number, highExclusive: number): number {
  return low + Math.floor(rng() * (highExclusive - low));
}

// murmur3 finaliser: spreads seeds like 0, 1, 2 far apart. Accepts any
// finite number; non-integers and large values are folded to 32 bits.
function mixSeed(seed: number): number {
  let h = (Math.trunc(seed) ^ Math.trunc(seed / 4294967296)) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}
