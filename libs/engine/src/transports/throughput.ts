import type { MigrationRecord } from '@spotlift/domain';

/**
 * Measured throughput of a finished transfer. Pages: CRIU's own memwrite time (writing pages to the
 * page-server through the transport, encryption included), or the whole dump when the stats lack it.
 * Images: the tar stream's duration. Undefined when nothing was measured.
 */
export function measureThroughput(
  migration: MigrationRecord,
  times: { dumpMs?: number; imagesMs?: number },
): NonNullable<MigrationRecord['throughput']> {
  const memwriteMs = (migration.criu.dump?.memwriteTimeUs ?? 0) / 1000;
  const pagesMs = memwriteMs > 0 ? memwriteMs : times.dumpMs;
  const rate = (bytes: number, ms: number | undefined) =>
    ms && ms > 0 && bytes > 0 ? Math.round(bytes / (ms / 1000)) : undefined;
  const pages = rate(migration.bytes.pages, pagesMs);
  const images = rate(migration.bytes.images, times.imagesMs);
  return {
    ...(pages !== undefined ? { pagesBytesPerSec: pages } : {}),
    ...(images !== undefined ? { imagesBytesPerSec: images } : {}),
  };
}
