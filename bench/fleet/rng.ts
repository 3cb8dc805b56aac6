/** Seeded randomness for the fleet benchmark: the same seed gives the same fleet on every machine. */

/** A uniform [0, 1) generator (mulberry32: tiny, fast, good enough for simulation inputs). */
export type Rng = () => number;

/** mulberry32 seeded with a 32-bit integer. */
export function mulberry32(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Standard normal by Box-Muller (one of the pair is discarded: simplicity over speed). */
export function normal(r: Rng): number {
  const u = Math.max(r(), 1e-12);
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r());
}

/** Log-normal with the given median and shape, clipped to [min, max]. */
export function logNormal(r: Rng, median: number, sigma: number, min: number, max: number): number {
  return Math.min(max, Math.max(min, median * Math.exp(sigma * normal(r))));
}

/** An integer in [lo, hi]. */
export function intIn(r: Rng, lo: number, hi: number): number {
  return lo + Math.floor(r() * (hi - lo + 1));
}

/** Pick by weight. */
export function weighted<T>(r: Rng, items: ReadonlyArray<readonly [T, number]>): T {
  const total = items.reduce((s, [, w]) => s + w, 0);
  let x = r() * total;
  for (const [v, w] of items) {
    x -= w;
    if (x < 0) return v;
  }
  return items[items.length - 1]![0];
}

/** Fisher-Yates shuffle of a copy. */
export function shuffled<T>(r: Rng, xs: readonly T[]): T[] {
  const a = [...xs];
  for (let i = a.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [a[i], a[j]] = [a[j]!, a[i]!];
  }
  return a;
}
