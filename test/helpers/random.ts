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

/** The seed of a seeded test file (fast-check properties): LUNLINK_SEED, or a fresh one per run. */
export const SEED = Number(process.env.LUNLINK_SEED ?? Date.now() % 2 ** 31);

/** The seeds a simulation test runs: LUNLINK_SEED alone, or a fresh one plus fixed ones. */
export function simulationSeeds(): number[] {
  return process.env.LUNLINK_SEED !== undefined ? [Number(process.env.LUNLINK_SEED)] : [Date.now() % 2 ** 31, 1, 2, 3];
}

/** Prints the seed a test ran with and how to replay it. */
export function logSeed(t: { log(...values: unknown[]): void }, kind: "fast-check" | "simulation" = "fast-check", seed = SEED): void {
  t.log(`${kind} seed ${seed} (replay: LUNLINK_SEED=${seed})`);
}
