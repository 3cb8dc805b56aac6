/** Formatting for human reasons. Binary units, because memory sizes come from the kernel in KiB pages. */

const MIB = 1024 * 1024;
const GIB = 1024 * MIB;

/** `1.5 GiB`, `300 MiB`. */
export function fmtBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return String(bytes);
  if (Math.abs(bytes) >= GIB) return `${(bytes / GIB).toFixed(1)} GiB`;
  return `${Math.round(bytes / MIB)} MiB`;
}

/** `1164 MiB/s`, `3.3 GiB/s`. */
export function fmtRate(bytesPerSec: number): string {
  return `${fmtBytes(bytesPerSec)}/s`;
}

/** `2.40 s`, `85 ms`. */
export function fmtSeconds(seconds: number): string {
  if (!Number.isFinite(seconds)) return String(seconds);
  if (Math.abs(seconds) < 1) return `${Math.round(seconds * 1000)} ms`;
  return `${seconds.toFixed(2)} s`;
}

export const BYTES = { MIB, GIB } as const;
