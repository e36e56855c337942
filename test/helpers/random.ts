// Seeded randomness for simulations: xorshift32 (tiny, the same sequence on every platform), and
// the seed every seeded test prints (LUNLINK_SEED=<seed> replays it).
export function generator(seed: number): () => number {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x >>>= 0;
    x ^= x >>> 17;
    x ^= x << 5;
    x >>>= 0;
    return x / 4294967296;
  };
}

/** The seeds a simulation test runs: LUNLINK_SEED alone, or a fresh one plus fixed ones. */
export function simulationSeeds(): number[] {
  return process.env.LUNLINK_SEED !== undefined ? [Number(process.env.LUNLINK_SEED)] : [Date.now() % 2 ** 31, 1, 2, 3];
}
