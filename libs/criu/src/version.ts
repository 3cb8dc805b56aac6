/**
 * CRIU versions: parsing `criu --version` and comparing versions, e.g. to refuse nodes whose CRIU is too
 * old for the kernel (anything before 4.2 fails on kernels >= 6.13) or older than the source's.
 */
import { CriuArgError, CriuOutputError } from './errors.js';

/** A parsed CRIU version such as 4.2.1. */
export interface CriuVersion {
  /** As printed, e.g. `4.2.1`. */
  version: string;
  major: number;
  minor: number;
  /** 0 when the version has two parts (`4.2`). */
  sublevel: number;
  /** Anything after the numbers (`-rc1`), rare in CRIU releases. */
  extra?: string;
  /** Git description, printed by builds from a git tree (`GitID: v4.2-5-gabc`); absent for release tarballs. */
  gitId?: string;
}

const VERSION_RE = /^(\d{1,4})\.(\d{1,4})(?:\.(\d{1,4}))?([-+~][0-9A-Za-z.+~-]*)?$/;

function fromString(text: string): CriuVersion | undefined {
  const m = VERSION_RE.exec(text.trim());
  if (!m) return undefined;
  const v: CriuVersion = {
    version: text.trim(),
    major: Number(m[1]),
    minor: Number(m[2]),
    sublevel: m[3] === undefined ? 0 : Number(m[3]),
  };
  if (m[4]) v.extra = m[4];
  return v;
}

/**
 * Parses the output of `criu --version`: `Version: 4.2.1`, then optionally `GitID: ...`.
 * @throws CriuOutputError when no `Version:` line with a version number is found.
 */
export function parseCriuVersion(output: string): CriuVersion {
  if (typeof output !== 'string') throw new CriuOutputError('criu --version output must be text');
  const line = /^\s*Version:\s*(\S+)\s*$/m.exec(output);
  const parsed = line?.[1] === undefined ? undefined : fromString(line[1]);
  if (!parsed) {
    const shown = output.trim().slice(0, 200) || '(empty)';
    throw new CriuOutputError(
      `'criu --version' printed no 'Version: X.Y[.Z]' line; is the criu on this node CRIU at all? Output: ${shown}`,
      {
        output: shown,
      },
    );
  }
  const git = /^\s*GitID:\s*(\S+)\s*$/m.exec(output);
  if (git?.[1]) parsed.gitId = git[1];
  return parsed;
}

function toVersion(v: string | CriuVersion, what: string): CriuVersion {
  if (typeof v === 'object' && v !== null) return v;
  const parsed = typeof v === 'string' ? fromString(v) : undefined;
  if (!parsed)
    throw new CriuArgError(`${what} is not a CRIU version like '4.2' or '4.2.1': ${String(v)}`, { [what]: v });
  return parsed;
}

/**
 * Orders two CRIU versions: -1 if `a` is older, 1 if newer, 0 if equal. `4.2` equals `4.2.0`; a version
 * with a suffix (`4.2-rc1`) sorts before the same numbers without one.
 */
export function compareCriuVersions(a: string | CriuVersion, b: string | CriuVersion): -1 | 0 | 1 {
  const x = toVersion(a, 'a');
  const y = toVersion(b, 'b');
  for (const [p, q] of [
    [x.major, y.major],
    [x.minor, y.minor],
    [x.sublevel, y.sublevel],
  ] as const) {
    if (p !== q) return p < q ? -1 : 1;
  }
  if (x.extra === y.extra) return 0;
  if (x.extra === undefined) return 1;
  if (y.extra === undefined) return -1;
  return x.extra < y.extra ? -1 : 1;
}

/** True when `v` is `min` or newer, e.g. `isCriuVersionAtLeast('4.2.1', '4.2')`. */
export function isCriuVersionAtLeast(v: string | CriuVersion, min: string | CriuVersion): boolean {
  return compareCriuVersions(v, min) >= 0;
}
