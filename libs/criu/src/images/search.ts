/**
 * Memory search over a dump's pages: each hit is placed by the pagemap (process, virtual address,
 * mapping) with bytes around it, like `checkpointctl inspect --ps-tree-cmd` plus grep over the pages.
 * Bounded by the caller's limits: pattern length, hit count, bytes read per step and a deadline.
 */
import { CriuImageError } from '../errors.js';
import type { InspectedProcess } from './inspect.js';
import { contiguousRuns, type PageSource, type Pagemap } from './pages.js';

export const MAX_PATTERN_BYTES = 256;
/** Read this much of a run at a time; consecutive chunks overlap by the pattern's length. */
const CHUNK = 1 << 20;

export interface SearchHit {
  pid: number;
  vaddr: string;
  /** The mapping that holds the address (start-end, perms, file or kind). */
  mapping: string;
  /** `context` bytes before and after the hit (hex), and the same as printable text ('.' otherwise). */
  before: string;
  match: string;
  after: string;
  text: string;
}

export interface SearchResult {
  hits: SearchHit[];
  /** Why the scan stopped early, if it did: the hit limit or the deadline. */
  truncated?: 'hits' | 'time';
  bytesScanned: number;
}

export interface SearchLimits {
  maxHits: number;
  context: number;
  /** Called between chunks; true ends the scan (the caller's clock: this module keeps none). */
  expired: () => boolean;
  /**
   * Each hit as soon as it is found (a streamed answer); awaited, so a slow reader slows the scan down instead
   * of piling hits up. The result still lists every hit.
   */
  onHit?: (hit: SearchHit) => void | Promise<void>;
}

/** The pattern as bytes; a CriuImageError-free validation the REST layer turns into a 400. */
export function patternBytes(pattern: string, encoding: 'utf8' | 'hex'): Uint8Array {
  let bytes: Uint8Array;
  if (encoding === 'hex') {
    if (!/^([0-9a-fA-F]{2})+$/.test(pattern)) throw new RangeError('a hex pattern is an even number of hex digits');
    bytes = Uint8Array.from(pattern.match(/../g)!.map((h) => parseInt(h, 16)));
  } else {
    bytes = new TextEncoder().encode(pattern);
  }
  if (bytes.length === 0) throw new RangeError('the pattern is empty');
  if (bytes.length > MAX_PATTERN_BYTES) {
    throw new RangeError(`the pattern is ${bytes.length} bytes; at most ${MAX_PATTERN_BYTES}`);
  }
  return bytes;
}

const toHex = (b: Uint8Array) => Buffer.from(b).toString('hex');
const printable = (b: Uint8Array) => String.fromCharCode(...[...b].map((c) => (c >= 0x20 && c < 0x7f ? c : 0x2e)));

function indexOf(hay: Uint8Array, needle: Uint8Array, from: number): number {
  return Buffer.from(hay.buffer, hay.byteOffset, hay.byteLength).indexOf(needle, from);
}

/** Scans the dumped pages of each process; `maps` is each pid's pagemap (as readPagemap gives it). */
export async function searchMemory(
  processes: readonly Pick<InspectedProcess, 'pid' | 'mappings'>[],
  maps: ReadonlyMap<number, Pagemap>,
  pages: PageSource,
  pattern: Uint8Array,
  limits: SearchLimits,
): Promise<SearchResult> {
  const hits: SearchHit[] = [];
  let bytesScanned = 0;
  const seen = new Set<string>();
  for (const p of processes) {
    const map = maps.get(p.pid);
    if (!map) continue;
    // Processes sharing one pages file (threads, CLONE_VM) are scanned once.
    if (seen.has(map.pagesFile)) continue;
    seen.add(map.pagesFile);
    for (const run of contiguousRuns(map)) {
      for (let at = 0; at < run.bytes; at += CHUNK) {
        if (limits.expired()) return { hits, truncated: 'time', bytesScanned };
        const len = Math.min(run.bytes - at, CHUNK + pattern.length - 1);
        const chunk = await pages.read(map.pagesFile, run.offset + at, len);
        if (!chunk) throw new CriuImageError(`${map.pagesFile} is shorter than its pagemap says`);
        bytesScanned += Math.min(len, CHUNK);
        for (let i = indexOf(chunk, pattern, 0); i >= 0 && i < CHUNK; i = indexOf(chunk, pattern, i + 1)) {
          const vaddr = run.vaddr + at + i;
          const before = await around(pages, map.pagesFile, run, at + i - limits.context, limits.context);
          const after = await around(pages, map.pagesFile, run, at + i + pattern.length, limits.context);
          const m = p.mappings.find((v) => BigInt(v.start) <= BigInt(vaddr) && BigInt(vaddr) < BigInt(v.end));
          const hit: SearchHit = {
            pid: p.pid,
            vaddr: `0x${vaddr.toString(16)}`,
            mapping: m ? `${m.start}-${m.end} ${m.perms} ${m.file ?? `[${m.kind}]`}` : '?',
            before: toHex(before),
            match: toHex(pattern),
            after: toHex(after),
            text: printable(new Uint8Array([...before, ...pattern, ...after])),
          };
          hits.push(hit);
          await limits.onHit?.(hit);
          if (hits.length >= limits.maxHits) return { hits, truncated: 'hits', bytesScanned };
        }
      }
    }
  }
  return { hits, bytesScanned };
}

/** Up to `length` bytes of a run from `from` (clipped to the run), for a hit's context. */
async function around(
  pages: PageSource,
  file: string,
  run: { offset: number; bytes: number },
  from: number,
  length: number,
): Promise<Uint8Array> {
  const lo = Math.max(0, from);
  const hi = Math.min(run.bytes, from + length);
  if (hi <= lo) return new Uint8Array();
  return (await pages.read(file, run.offset + lo, hi - lo)) ?? new Uint8Array();
}
