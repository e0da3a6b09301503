/**
 * Seeded randomness for the sizing simulator: the same seed gives the same
 * arrivals, holds and launch times, so candidate settings are compared on the
 * same traffic (common random numbers) and a run can be repeated exactly.
 */

/** A uniform generator on [0, 1) (mulberry32: 32-bit state, fast, good enough for queueing experiments). */
export function uniform(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export type Distribution = "exp" | "fixed";

/** Draws with the given mean: exponential (memoryless), or always the mean. */
export function sampler(random: () => number, mean: number, distribution: Distribution): () => number {
  if (distribution === "fixed" || mean === 0) return () => mean;
  // 1 − u is in (0, 1], so the logarithm is finite.
  return () => -Math.log(1 - random()) * mean;
}
