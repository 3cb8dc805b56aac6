import type { NodeRecord } from '@spotlift/domain';
import * as criu from '../node-ops/process/criu-commands.js';
import { MigrationStepError } from '../engine.types.js';
import type { NodeOps } from '../node-ops/node-ops.js';

/**
 * What a checkpoint checks on the storage node: before the freeze, that CRIU works there (its page-server
 * receives the pages) and that the disk holds the images; after the stream, that the images are complete,
 * with a checksum list written next to them and flushed to disk; before a restore, that they are intact.
 */

const fail = (phase: string, msg: string) => new MigrationStepError(phase, msg, phase === 'preflight');

const UNFIT_STORAGE = new Set(['terminating', 'gone', 'draining', 'unreachable']);

/** The files without which CRIU cannot restore a stop-and-copy dump (pages come from the page-server). */
const REQUIRED = ['inventory.img', 'pstree.img', 'pagemap-*.img', 'pages-*.img'];

/** The checksum list kept with the images (the tar stream's own hash only covers the stream). */
export const CHECKSUMS = 'SHA256SUMS';

export async function checkStorage(
  ops: NodeOps,
  storage: NodeRecord,
  root: string,
  imageBytes: number,
  headroom: number,
): Promise<void> {
  if (UNFIT_STORAGE.has(storage.state)) {
    throw fail('preflight', `storage node ${storage.id} is ${storage.state}; configure a ready one`);
  }
  const check = await ops.memoryAndDisk(storage, root, { criuCheck: true });
  if (!/Looks good/.test(check.stdout + check.stderr)) {
    throw fail(
      'preflight',
      `CRIU does not work on storage node ${storage.id} (its page-server receives the pages): ${(check.stderr || check.stdout).trim().slice(0, 300)}`,
    );
  }
  const disk = Number(/DISK_AVAIL_BYTES (\d+)/.exec(check.stdout)?.[1] ?? NaN);
  if (!Number.isFinite(disk))
    throw fail('preflight', `could not read the free disk space under ${root} on ${storage.id}`);
  const needed = imageBytes * (1 + headroom);
  if (disk < needed) {
    const mib = (b: number) => Math.round(b / 2 ** 20);
    throw fail(
      'preflight',
      `storage node ${storage.id} has ${mib(disk)} MiB free under ${root}, the images need about ${mib(needed)} MiB`,
    );
  }
}

/**
 * Every file CRIU needs (or `required`: a container's archive and image) is there and not empty; then the checksum list is written and everything synced,
 * so a stored checkpoint survives a crash of the storage node. Returns the bytes on disk.
 */
export async function sealStoredImages(
  ops: NodeOps,
  storage: NodeRecord,
  dir: string,
  required: readonly string[] = REQUIRED,
): Promise<number> {
  const res = await ops.sealImages(storage, dir, required, CHECKSUMS);
  const missing = [...res.stdout.matchAll(/^MISSING (\S+)$/gm)].map((m) => m[1]);
  if (missing.length) throw fail('verify', `the images on ${storage.id} lack ${missing.join(', ')} (in ${dir})`);
  const kb = Number(/^STORED_KB (\d+)$/m.exec(res.stdout)?.[1] ?? NaN);
  if (res.code !== 0 || !Number.isFinite(kb)) {
    throw fail('verify', `sealing the images in ${dir} on ${storage.id} failed: ${res.stderr.trim().slice(0, 300)}`);
  }
  return kb * 1024;
}

/** The stored images still match their checksum list (disk rot, a hand that touched them). */
export async function checkStoredImages(ops: NodeOps, storage: NodeRecord, dir: string): Promise<void> {
  const res = await ops.checkImages(storage, dir, CHECKSUMS);
  if (res.code !== 0) {
    throw fail(
      'preflight',
      `the checkpoint images in ${dir} on ${storage.id} are damaged or gone: ${(res.stdout || res.stderr).trim().slice(0, 300)}`,
    );
  }
}

/**
 * CPU compatibility for a restore: the dump's own cpuinfo.img, copied from the storage node, checked on the
 * destination with `criu cpuinfo check --cpu-cap=cpu` (the source may be gone by now).
 */
export async function checkCpuFromImages(
  ops: NodeOps,
  storage: NodeRecord,
  imageDir: string,
  destination: NodeRecord,
  checkDir: string,
): Promise<void> {
  const image = await ops.readFile(storage, `${imageDir}/cpuinfo.img`);
  if (!image?.length) throw fail('preflight', `the checkpoint in ${imageDir} on ${storage.id} has no cpuinfo.img`);
  await ops.makeDir(destination, checkDir);
  await ops.writeFile(destination, `${checkDir}/cpuinfo.img`, image);
  const checked = await ops.cpuinfoCheck(destination, checkDir);
  if (checked.code !== 0) {
    const log = await ops.tail(destination, `${checkDir}/cpuinfo-check.log`, 100);
    throw fail(
      'preflight',
      `the CPU of ${destination.id} is not compatible with the checkpointed workload's: ` +
        criu.explainFailure('cpuinfo check', destination.id, log || checked.stderr, checked.code),
    );
  }
}
