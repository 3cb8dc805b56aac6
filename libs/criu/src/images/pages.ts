/**
 * The memory of a dumped process: pagemap-<pid>.img says which virtual pages were dumped and where;
 * pages-<id>.img holds the present ones back to back, in pagemap order (CRIU's criu/pagemap.c:
 * `skip_pagemap_pages` advances the file offset only for PE_PRESENT runs). Pages in a parent
 * (pre-dump chain) or left for lazy restore are not in this file.
 */
import { CriuImageError } from '../errors.js';
import { readImage, u64 } from './image-file.js';

export const PAGE_SIZE = 4096;
const PE_PARENT = 1;
const PE_LAZY = 2;
const PE_PRESENT = 4;

/** One pagemap entry: `pages` pages from `vaddr`; `offset` in the pages file when they are in it. */
export interface PageRun {
  vaddr: number;
  pages: number;
  where: 'pages' | 'parent' | 'lazy';
  offset?: number;
}

export interface Pagemap {
  /** pages-<pagesId>.img holds the present runs. */
  pagesFile: string;
  runs: PageRun[];
  /** Bytes the pages file must have: the present runs' pages. */
  presentBytes: number;
}

/**
 * Reads a bounded range of a pages file; undefined when it is not available (not fetched, or too short).
 * Async: the orchestrator's source reads over SSH; the tests' reads from memory.
 */
export interface PageSource {
  read(file: string, offset: number, length: number): Promise<Uint8Array | undefined>;
}

/** A PageSource over whole files already in memory (fixtures, an unpacked export). */
export function filesPageSource(files: Readonly<Record<string, Uint8Array>>): PageSource {
  return {
    read: (file, offset, length) => {
      const buf = files[file];
      return Promise.resolve(buf && offset + length <= buf.length ? buf.subarray(offset, offset + length) : undefined);
    },
  };
}

/** Parses and checks a pagemap: page-aligned, ascending, non-overlapping runs (as CRIU writes them). */
export function readPagemap(name: string, buf: Uint8Array): Pagemap {
  const [head, ...entries] = readImage(name, buf, 'pagemap');
  if (!head || head.pages_id === undefined) {
    throw new CriuImageError(`${name} has no pagemap_head: it cannot say which pages file holds its pages`, {
      file: name,
    });
  }
  const runs: PageRun[] = [];
  let offset = 0;
  let end = 0;
  for (const [i, e] of entries.entries()) {
    const vaddr = u64(e.vaddr, `${name} entry ${i + 1} vaddr`);
    const pages = e.nr_pages !== undefined ? u64(e.nr_pages, `${name} nr_pages`) : Number(e.compat_nr_pages ?? 0);
    // Images from before `flags` existed say in_parent or nothing (present); CRIU reads them the same way.
    const flags = e.flags !== undefined ? Number(e.flags) : e.in_parent ? PE_PARENT : PE_PRESENT;
    if (vaddr % PAGE_SIZE !== 0 || pages <= 0 || vaddr < end || vaddr + pages * PAGE_SIZE > 2 ** 53) {
      throw new CriuImageError(
        `${name} entry ${i + 1} (vaddr 0x${vaddr.toString(16)}, ${pages} pages) is not page-aligned, empty or overlaps the previous one; the pagemap is corrupt`,
        { file: name, entry: i + 1 },
      );
    }
    end = vaddr + pages * PAGE_SIZE;
    if (flags & PE_PRESENT) {
      runs.push({ vaddr, pages, where: 'pages', offset });
      offset += pages * PAGE_SIZE;
    } else {
      runs.push({ vaddr, pages, where: flags & PE_LAZY ? 'lazy' : 'parent' });
    }
  }
  return { pagesFile: `pages-${Number(head.pages_id)}.img`, runs, presentBytes: offset };
}

/** Where [vaddr, vaddr+length) lies in the pages file, as ranges; undefined when some of it is not there. */
export function pageRanges(
  map: Pagemap,
  vaddr: number,
  length: number,
): { offset: number; length: number }[] | undefined {
  const out: { offset: number; length: number }[] = [];
  let at = vaddr;
  const stop = vaddr + length;
  for (const run of map.runs) {
    const runEnd = run.vaddr + run.pages * PAGE_SIZE;
    if (runEnd <= at) continue;
    if (run.vaddr > at || run.offset === undefined) return undefined;
    const take = Math.min(stop, runEnd) - at;
    out.push({ offset: run.offset + (at - run.vaddr), length: take });
    at += take;
    if (at >= stop) return out;
  }
  return at >= stop ? out : undefined;
}

/** The dumped bytes at [vaddr, vaddr+length), or undefined when they are not all in the pages file. */
export async function readMemory(
  map: Pagemap,
  source: PageSource,
  vaddr: number,
  length: number,
): Promise<Uint8Array | undefined> {
  const ranges = pageRanges(map, vaddr, length);
  if (!ranges) return undefined;
  const out = new Uint8Array(length);
  let at = 0;
  for (const r of ranges) {
    const part = await source.read(map.pagesFile, r.offset, r.length);
    if (!part || part.length !== r.length) return undefined;
    out.set(part, at);
    at += r.length;
  }
  return out;
}

/** Present runs merged where they are contiguous both in memory and in the pages file. */
export function contiguousRuns(map: Pagemap): { vaddr: number; offset: number; bytes: number }[] {
  const out: { vaddr: number; offset: number; bytes: number }[] = [];
  for (const run of map.runs) {
    if (run.offset === undefined) continue;
    const last = out.at(-1);
    const bytes = run.pages * PAGE_SIZE;
    if (last && last.vaddr + last.bytes === run.vaddr && last.offset + last.bytes === run.offset) last.bytes += bytes;
    else out.push({ vaddr: run.vaddr, offset: run.offset, bytes });
  }
  return out;
}
