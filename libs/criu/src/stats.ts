/**
 * Parses CRIU's `stats-dump` and `stats-restore` service images into spotlift's DumpStats / RestoreStats.
 * CRIU writes them only after a successful dump or restore, into the work dir (`-W`, else `-D`); they
 * are never sent through a page-server.
 */
import protobuf from 'protobufjs';
import type { DumpStats, RestoreStats } from '@spotlift/domain';
import { CriuImageError } from './errors.js';

/** First u32 of service images (stats, irmap-cache). */
export const IMG_SERVICE_MAGIC = 0x55105940;
/** Second u32 of `stats-dump` and `stats-restore`. */
export const STATS_MAGIC = 0x57093306;
/** First u32 of ordinary images (core, mm, pagemap, cpuinfo, ...): a common mistake to pass one here. */
const IMG_COMMON_MAGIC = 0x54564319;
const INVENTORY_MAGIC = 0x58313116;
const IRMAP_CACHE_MAGIC = 0x57004059;
/** magic, magic, u32 payload size. */
const HEADER_BYTES = 12;

/** CRIU's images/stats.proto, verbatim (migration-engines.md b.3). */
export const STATS_PROTO = `
message dump_stats_entry {
  required uint32 freezing_time          = 1;   // µs
  required uint32 frozen_time            = 2;   // µs
  required uint32 memdump_time           = 3;   // µs
  required uint32 memwrite_time          = 4;   // µs
  required uint64 pages_scanned          = 5;
  required uint64 pages_skipped_parent   = 6;
  required uint64 pages_written          = 7;
  optional uint32 irmap_resolve          = 8;   // µs
  required uint64 pages_lazy             = 9;
  optional uint64 page_pipes             = 10;
  optional uint64 page_pipe_bufs         = 11;
  optional uint64 shpages_scanned        = 12;
  optional uint64 shpages_skipped_parent = 13;
  optional uint64 shpages_written        = 14;
}
message restore_stats_entry {
  required uint64 pages_compared    = 1;
  required uint64 pages_skipped_cow = 2;
  required uint32 forking_time      = 3;   // µs
  required uint32 restore_time      = 4;   // µs
  optional uint64 pages_restored    = 5;
}
message stats_entry {
  optional dump_stats_entry    dump    = 1;
  optional restore_stats_entry restore = 2;
}
`;

// keepCase: the field names stay CRIU's own (pages_written), which is what the error messages quote.
const statsEntryType = protobuf.parse(STATS_PROTO, { keepCase: true }).root.lookupType('stats_entry');

/** Plain view of a decoded stats_entry: uint64 as decimal strings until range-checked. */
type RawEntry = { dump?: Record<string, string | number>; restore?: Record<string, string | number> };

/** Both halves of a stats image; CRIU fills exactly one of them. */
export interface StatsImage {
  dump?: DumpStats;
  restore?: RestoreStats;
}

function hex(n: number): string {
  return `0x${n.toString(16).padStart(8, '0')}`;
}

function describeMagic(m0: number, m1: number): string {
  if (m0 === IMG_COMMON_MAGIC) return 'an ordinary CRIU image (core-*.img, pagemap-*.img, cpuinfo.img, ...)';
  if (m0 === INVENTORY_MAGIC) return 'inventory.img';
  if (m0 === IMG_SERVICE_MAGIC && m1 === IRMAP_CACHE_MAGIC) return 'an irmap-cache image';
  if (m0 === 0x464c457f) return 'an ELF binary';
  const bytes = [m0 & 0xff, (m0 >>> 8) & 0xff, (m0 >>> 16) & 0xff, (m0 >>> 24) & 0xff];
  if (bytes.every((b) => b === 0x09 || b === 0x0a || (b >= 0x20 && b < 0x7f)))
    return 'text, e.g. a log or --display-stats output';
  return 'no CRIU image kind known to spotlift';
}

function toSafeNumber(value: string | number | undefined, field: string, name: string): number {
  if (value === undefined) {
    throw new CriuImageError(`${name}: required field '${field}' is missing`, { field });
  }
  const big = BigInt(value);
  if (big > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CriuImageError(
      `${name}: field '${field}' is ${big.toString()}, beyond what spotlift can count exactly (2^53-1)`,
      {
        field,
        value: big.toString(),
      },
    );
  }
  return Number(big);
}

function decode(buf: Uint8Array, name: string): RawEntry {
  if (!(buf instanceof Uint8Array)) {
    throw new CriuImageError(`${name}: expected the file's bytes (a Uint8Array or Buffer), got ${typeof buf}`);
  }
  if (buf.length === 0) {
    throw new CriuImageError(
      `${name} is empty (0 bytes): CRIU writes stats only when a dump or restore succeeds; check the command's exit code and log, and that the whole file was copied`,
    );
  }
  if (buf.length < HEADER_BYTES) {
    throw new CriuImageError(
      `${name} is truncated: ${buf.length} bytes, shorter than the 12-byte header (two magics and a size); copy the file again`,
      { length: buf.length },
    );
  }
  const view = new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
  const m0 = view.getUint32(0, true);
  const m1 = view.getUint32(4, true);
  if (m0 !== IMG_SERVICE_MAGIC || m1 !== STATS_MAGIC) {
    throw new CriuImageError(
      `${name} is not a CRIU stats image: magics ${hex(m0)} ${hex(m1)}, expected ${hex(IMG_SERVICE_MAGIC)} ${hex(STATS_MAGIC)} (this looks like ${describeMagic(m0, m1)}); read stats-dump or stats-restore from CRIU's work dir`,
      { magic0: hex(m0), magic1: hex(m1) },
    );
  }
  const size = view.getUint32(8, true);
  const available = buf.length - HEADER_BYTES;
  if (size > available) {
    throw new CriuImageError(
      `${name} is truncated: its header announces a ${size}-byte entry but only ${available} bytes follow; the file was cut short (copied while being written?)`,
      { size, available },
    );
  }
  if (size < available) {
    throw new CriuImageError(
      `${name} has ${available - size} unexpected bytes after its ${size}-byte entry; a stats image holds exactly one entry, so the file is corrupt`,
      { size, available },
    );
  }
  try {
    const message = statsEntryType.decode(buf.subarray(HEADER_BYTES, HEADER_BYTES + size));
    // longs: String keeps uint64 exact until toSafeNumber has checked the range.
    const raw: RawEntry = statsEntryType.toObject(message, { longs: String, defaults: false });
    return raw;
  } catch (err) {
    const why = err instanceof Error ? err.message : String(err);
    const missing = /missing required '([^']+)'/.exec(why);
    if (missing) {
      throw new CriuImageError(
        `${name}: required field '${missing[1] ?? '?'}' is missing from the stats entry; the file is corrupt or not from CRIU`,
        {
          field: missing[1],
        },
      );
    }
    throw new CriuImageError(`${name}: the stats entry is not valid protobuf (${why}); the file is corrupt`, {
      cause: why,
    });
  }
}

/** DumpStats key, stats.proto field, required by the proto. One table for decoding and encoding. */
const DUMP_FIELDS: readonly [keyof DumpStats, string, boolean][] = [
  ['freezingTimeUs', 'freezing_time', true],
  ['frozenTimeUs', 'frozen_time', true],
  ['memdumpTimeUs', 'memdump_time', true],
  ['memwriteTimeUs', 'memwrite_time', true],
  ['pagesScanned', 'pages_scanned', true],
  ['pagesSkippedParent', 'pages_skipped_parent', true],
  ['pagesWritten', 'pages_written', true],
  ['irmapResolveUs', 'irmap_resolve', false],
  ['pagesLazy', 'pages_lazy', true],
  ['pagePipes', 'page_pipes', false],
  ['pagePipeBufs', 'page_pipe_bufs', false],
  ['shpagesScanned', 'shpages_scanned', false],
  ['shpagesSkippedParent', 'shpages_skipped_parent', false],
  ['shpagesWritten', 'shpages_written', false],
];

const RESTORE_FIELDS: readonly [keyof RestoreStats, string, boolean][] = [
  ['pagesCompared', 'pages_compared', true],
  ['pagesSkippedCow', 'pages_skipped_cow', true],
  ['forkingTimeUs', 'forking_time', true],
  ['restoreTimeUs', 'restore_time', true],
  ['pagesRestored', 'pages_restored', false],
];

function mapFields<T>(
  raw: Record<string, string | number>,
  fields: readonly [keyof T, string, boolean][],
  name: string,
): T {
  const out: Partial<Record<keyof T, number>> = {};
  for (const [key, field, required] of fields) {
    // protobufjs already rejects a missing required field; checked again so the mapping cannot drift.
    if (raw[field] === undefined && !required) continue;
    out[key] = toSafeNumber(raw[field], field, name);
  }
  return out as T;
}

const mapDump = (raw: Record<string, string | number>, name: string): DumpStats =>
  mapFields<DumpStats>(raw, DUMP_FIELDS, name);
const mapRestore = (raw: Record<string, string | number>, name: string): RestoreStats =>
  mapFields<RestoreStats>(raw, RESTORE_FIELDS, name);

/** Decodes either kind of stats image; use when the caller does not know which file it holds. */
export function parseStatsImage(buf: Uint8Array): StatsImage {
  const name = 'stats image';
  const raw = decode(buf, name);
  const out: StatsImage = {};
  if (raw.dump) out.dump = mapDump(raw.dump, name);
  if (raw.restore) out.restore = mapRestore(raw.restore, name);
  if (!out.dump && !out.restore) {
    throw new CriuImageError(`${name} holds neither dump nor restore statistics; the file is corrupt or not from CRIU`);
  }
  return out;
}

/**
 * Parses a `stats-dump` image (written by `criu dump` and `criu pre-dump`).
 * After a `dump --lazy-pages` CRIU 4.2.1 writes all page counters as 0 and a meaningless `frozen_time`
 * (the wall clock in µs modulo 2^32): the numbers parse, but post-copy downtime must be measured elsewhere.
 */
export function parseDumpStats(buf: Uint8Array): DumpStats {
  const name = 'stats-dump';
  const raw = decode(buf, name);
  if (!raw.dump) {
    const hint = raw.restore ? 'it holds restore statistics: this is a stats-restore file' : 'it holds no statistics';
    throw new CriuImageError(`${name}: expected dump statistics but ${hint}`);
  }
  return mapDump(raw.dump, name);
}

/** Parses a `stats-restore` image (written by `criu restore`). */
export function parseRestoreStats(buf: Uint8Array): RestoreStats {
  const name = 'stats-restore';
  const raw = decode(buf, name);
  if (!raw.restore) {
    const hint = raw.dump ? 'it holds dump statistics: this is a stats-dump file' : 'it holds no statistics';
    throw new CriuImageError(`${name}: expected restore statistics but ${hint}`);
  }
  return mapRestore(raw.restore, name);
}

/**
 * Builds a stats image the way CRIU lays it out. Meant for tests and fakes (a scripted CRIU runner that
 * must hand back a plausible stats-dump); the parser above is what production code uses.
 */
export function encodeStatsImage(stats: StatsImage): Uint8Array {
  const toProto = <T>(o: T, fields: readonly [keyof T, string, boolean][]): Record<string, unknown> =>
    Object.fromEntries(fields.filter(([key]) => o[key] !== undefined).map(([key, field]) => [field, o[key]]));
  const entry: Record<string, unknown> = {};
  if (stats.dump) entry.dump = toProto(stats.dump, DUMP_FIELDS);
  if (stats.restore) entry.restore = toProto(stats.restore, RESTORE_FIELDS);
  const payload = statsEntryType.encode(statsEntryType.fromObject(entry)).finish();
  const out = new Uint8Array(HEADER_BYTES + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, IMG_SERVICE_MAGIC, true);
  view.setUint32(4, STATS_MAGIC, true);
  view.setUint32(8, payload.length, true);
  out.set(payload, HEADER_BYTES);
  return out;
}
