/** Median (the lower middle for an even count): robust to the odd slow run on a shared machine. */
export function median(xs: readonly number[]): number {
  return [...xs].sort((a, b) => a - b)[Math.floor((xs.length - 1) / 2)]!;
}
