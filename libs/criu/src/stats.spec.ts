import { readFileSync } from 'node:fs';
import type { DumpStats, RestoreStats } from '@spotlift/domain';
import { CriuImageError } from './errors.js';
import {
  encodeStatsImage,
  IMG_SERVICE_MAGIC,
  parseDumpStats,
  parseRestoreStats,
  parseStatsImage,
  STATS_MAGIC,
} from './stats.js';

const fixtures = new URL('../test/fixtures/', import.meta.url);
const image = (name: string): Buffer => readFileSync(new URL(`images/${name}`, fixtures));
const text = (name: string): string => readFileSync(new URL(name, fixtures), 'utf8');

/** Header + payload, for hand-made images. */
function withHeader(payload: Uint8Array, m0 = IMG_SERVICE_MAGIC, m1 = STATS_MAGIC, size = payload.length): Uint8Array {
  const out = new Uint8Array(12 + payload.length);
  const view = new DataView(out.buffer);
  view.setUint32(0, m0, true);
  view.setUint32(4, m1, true);
  view.setUint32(8, size, true);
  out.set(payload, 12);
  return out;
}

function imageError(fn: () => unknown): CriuImageError {
  try {
    fn();
  } catch (err) {
    expect(err).toBeInstanceOf(CriuImageError);
    expect((err as CriuImageError).code).toBe('criu_bad_image');
    return err as CriuImageError;
  }
  throw new Error('expected a CriuImageError');
}

// Real images from CRIU 4.2.1 (test/fixtures/README.md says how each was captured).
const golden: [string, DumpStats, RestoreStats][] = [
  [
    'local',
    {
      freezingTimeUs: 582,
      frozenTimeUs: 42_533,
      memdumpTimeUs: 33_546,
      memwriteTimeUs: 31_043,
      pagesScanned: 2818,
      pagesSkippedParent: 0,
      pagesWritten: 2749,
      irmapResolveUs: 0,
      pagesLazy: 0,
      pagePipes: 8,
      pagePipeBufs: 8,
      shpagesScanned: 0,
      shpagesSkippedParent: 0,
      shpagesWritten: 0,
    },
    { pagesCompared: 0, pagesSkippedCow: 0, forkingTimeUs: 2, restoreTimeUs: 18_405, pagesRestored: 2749 },
  ],
  [
    'page-server',
    {
      freezingTimeUs: 273,
      frozenTimeUs: 247_309,
      memdumpTimeUs: 22_008,
      memwriteTimeUs: 16_457,
      pagesScanned: 2818,
      pagesSkippedParent: 0,
      pagesWritten: 2749,
      irmapResolveUs: 0,
      pagesLazy: 0,
      pagePipes: 8,
      pagePipeBufs: 8,
      shpagesScanned: 0,
      shpagesSkippedParent: 0,
      shpagesWritten: 0,
    },
    { pagesCompared: 0, pagesSkippedCow: 0, forkingTimeUs: 4, restoreTimeUs: 14_584, pagesRestored: 2749 },
  ],
  [
    // CRIU 4.2.1 after a successful post-copy dump: counters 0 and frozen_time = wall clock µs mod 2^32.
    'lazy',
    {
      freezingTimeUs: 0,
      frozenTimeUs: 2_655_108_442,
      memdumpTimeUs: 0,
      memwriteTimeUs: 0,
      pagesScanned: 0,
      pagesSkippedParent: 0,
      pagesWritten: 0,
      irmapResolveUs: 0,
      pagesLazy: 0,
      pagePipes: 0,
      pagePipeBufs: 0,
      shpagesScanned: 0,
      shpagesSkippedParent: 0,
      shpagesWritten: 0,
    },
    { pagesCompared: 0, pagesSkippedCow: 0, forkingTimeUs: 4, restoreTimeUs: 14_823, pagesRestored: 309 },
  ],
];

describe('stats images captured from CRIU 4.2.1', () => {
  it.each(golden)('%s: stats-dump', (dir, dump) => {
    expect(parseDumpStats(image(`${dir}/stats-dump`))).toEqual(dump);
    expect(parseStatsImage(image(`${dir}/stats-dump`))).toEqual({ dump });
  });

  it.each(golden)('%s: stats-restore', (dir, _dump, restore) => {
    expect(parseRestoreStats(image(`${dir}/stats-restore`))).toEqual(restore);
    expect(parseStatsImage(image(`${dir}/stats-restore`))).toEqual({ restore });
  });

  it.each(golden)('%s: re-encoding gives back the bytes CRIU wrote', (dir, dump, restore) => {
    expect(Buffer.from(encodeStatsImage({ dump }))).toEqual(image(`${dir}/stats-dump`));
    expect(Buffer.from(encodeStatsImage({ restore }))).toEqual(image(`${dir}/stats-restore`));
  });

  it('agrees with what --display-stats printed for the same run', () => {
    // "Frozen time: 247309 us", "Memory pages written: 2749 (0xabd)": CRIU's own labels for each field.
    const shown = (file: string, label: string): number => {
      const m = new RegExp(`^${label}: (\\d+)`, 'm').exec(text(file));
      if (!m?.[1]) throw new Error(`no '${label}' in ${file}`);
      return Number(m[1]);
    };
    const dump = parseDumpStats(image('page-server/stats-dump'));
    const d = 'outputs/display-stats-dump.txt';
    expect(dump.freezingTimeUs).toBe(shown(d, 'Freezing time'));
    expect(dump.frozenTimeUs).toBe(shown(d, 'Frozen time'));
    expect(dump.memdumpTimeUs).toBe(shown(d, 'Memory dump time'));
    expect(dump.memwriteTimeUs).toBe(shown(d, 'Memory write time'));
    expect(dump.irmapResolveUs).toBe(shown(d, 'IRMAP resolve time'));
    expect(dump.pagesScanned).toBe(shown(d, 'Memory pages scanned'));
    expect(dump.pagesSkippedParent).toBe(shown(d, 'Memory pages skipped from parent'));
    expect(dump.pagesWritten).toBe(shown(d, 'Memory pages written'));
    expect(dump.pagesLazy).toBe(shown(d, 'Lazy memory pages'));
    const restore = parseRestoreStats(image('page-server/stats-restore'));
    const r = 'outputs/display-stats-restore.txt';
    expect(restore.pagesCompared).toBe(shown(r, 'Pages compared'));
    expect(restore.pagesSkippedCow).toBe(shown(r, 'Pages skipped COW'));
    expect(restore.pagesRestored).toBe(shown(r, 'Pages restored'));
    expect(restore.restoreTimeUs).toBe(shown(r, 'Restore time'));
    expect(restore.forkingTimeUs).toBe(shown(r, 'Forking time'));
  });
});

describe('bad stats images', () => {
  const dump = image('local/stats-dump');
  const restore = image('local/stats-restore');

  it('empty', () => {
    expect(imageError(() => parseDumpStats(new Uint8Array(0))).message).toMatch(
      /empty \(0 bytes\).*only when a dump or restore succeeds/,
    );
  });

  it('shorter than the header', () => {
    expect(imageError(() => parseDumpStats(dump.subarray(0, 7))).message).toMatch(
      /truncated: 7 bytes, shorter than the 12-byte header/,
    );
  });

  it('payload cut short', () => {
    const e = imageError(() => parseDumpStats(dump.subarray(0, dump.length - 5)));
    expect(e.message).toMatch(/announces a 39-byte entry but only 34 bytes follow/);
    expect(e.meta).toEqual({ size: 39, available: 34 });
  });

  it('size field larger than the buffer', () => {
    expect(
      imageError(() => parseDumpStats(withHeader(new Uint8Array(4), IMG_SERVICE_MAGIC, STATS_MAGIC, 0xffffffff)))
        .message,
    ).toMatch(/announces a 4294967295-byte entry but only 4 bytes follow/);
  });

  it('trailing bytes after the entry', () => {
    const longer = Buffer.concat([dump, Buffer.from([0, 0, 0])]);
    expect(imageError(() => parseDumpStats(longer)).message).toMatch(/3 unexpected bytes after its 39-byte entry/);
  });

  it('an ordinary image instead of a stats image', () => {
    const cpuinfo = withHeader(new Uint8Array([0x0a, 0x00]), 0x54564319, 0x61404013);
    const e = imageError(() => parseDumpStats(cpuinfo));
    expect(e.message).toMatch(/not a CRIU stats image: magics 0x54564319 0x61404013, expected 0x55105940 0x57093306/);
    expect(e.message).toMatch(/ordinary CRIU image/);
  });

  it('an irmap-cache service image', () => {
    expect(
      imageError(() => parseDumpStats(withHeader(new Uint8Array(0), IMG_SERVICE_MAGIC, 0x57004059))).message,
    ).toMatch(/irmap-cache/);
  });

  it('a text file', () => {
    const log = Buffer.from('(00.000000) CRIU run id = 1\n');
    expect(imageError(() => parseDumpStats(log)).message).toMatch(/looks like text/);
  });

  it('wrong second magic only', () => {
    const bad = Buffer.from(dump);
    bad.writeUInt32LE(0x12345678, 4);
    expect(imageError(() => parseDumpStats(bad)).message).toMatch(/magics 0x55105940 0x12345678/);
  });

  it('garbage protobuf: invalid wire type', () => {
    // Field 3 (unknown to stats_entry) with wire type 7, which protobuf does not have.
    expect(imageError(() => parseDumpStats(withHeader(new Uint8Array([0x1f, 0x00])))).message).toMatch(
      /not valid protobuf \(invalid wire type 7/,
    );
  });

  it('garbage protobuf: length beyond the entry', () => {
    expect(imageError(() => parseDumpStats(withHeader(new Uint8Array([0x0a, 0x10, 0x08])))).message).toMatch(
      /not valid protobuf/,
    );
  });

  it('missing a required field', () => {
    const { pagesWritten: _dropped, ...partial } = parseDumpStats(dump);
    const e = imageError(() => parseDumpStats(encodeStatsImage({ dump: partial as DumpStats })));
    expect(e.message).toMatch(/required field 'pages_written' is missing/);
    expect(e.meta).toEqual({ field: 'pages_written' });
  });

  it('missing a required restore field', () => {
    const { restoreTimeUs: _dropped, ...partial } = parseRestoreStats(restore);
    expect(imageError(() => parseRestoreStats(encodeStatsImage({ restore: partial as RestoreStats }))).message).toMatch(
      /required field 'restore_time' is missing/,
    );
  });

  it('dump stats where restore stats were expected', () => {
    expect(imageError(() => parseRestoreStats(dump)).message).toMatch(
      /expected restore statistics but it holds dump statistics: this is a stats-dump file/,
    );
  });

  it('restore stats where dump stats were expected', () => {
    expect(imageError(() => parseDumpStats(restore)).message).toMatch(
      /expected dump statistics but it holds restore statistics/,
    );
  });

  it('an entry with neither half', () => {
    const empty = withHeader(new Uint8Array(0));
    expect(imageError(() => parseDumpStats(empty)).message).toMatch(/holds no statistics/);
    expect(imageError(() => parseStatsImage(empty)).message).toMatch(/neither dump nor restore/);
  });

  it('a uint64 counter beyond 2^53', () => {
    const huge = { ...parseDumpStats(dump), pagesScanned: 2 ** 60 };
    const e = imageError(() => parseDumpStats(encodeStatsImage({ dump: huge })));
    expect(e.message).toMatch(/'pages_scanned' is 1152921504606846976, beyond what spotlift can count exactly/);
  });

  it('not bytes at all', () => {
    expect(imageError(() => parseDumpStats('stats' as unknown as Uint8Array)).message).toMatch(
      /expected the file's bytes/,
    );
  });

  it('accepts a Uint8Array view into a larger buffer', () => {
    const padded = new Uint8Array(dump.length + 8);
    padded.set(dump, 4);
    expect(parseDumpStats(padded.subarray(4, 4 + dump.length))).toEqual(golden[0]![1]);
  });
});
