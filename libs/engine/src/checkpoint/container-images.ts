import { createHash } from 'node:crypto';
import { type CheckpointRecord, DomainError, type NodeRecord } from '@spotlift/domain';
import { CriuImageError } from '@spotlift/criu';
import { TarGuard, TarRefused } from '@spotlift/transport';
import type { NodeOps } from '../node-ops/node-ops.js';
import { CheckpointArchiveMembers, containerMetadata, type ContainerCheckpointMetadata } from './container-archive.js';
import { CONTAINER_ARCHIVE } from './container-checkpoints.js';
import { openEncryptedUnpack } from './encrypted-container-images.js';
import { StoredImages } from './stored-images.js';

export { CONTAINER_ARCHIVE } from './container-checkpoints.js';

/** Where a container checkpoint's picked members are unpacked, inside its imageDir (removed with it). */
export const UNPACKED_DIR = 'unpacked';
const SUM_FILE = 'archive.sha256';
/** Unpacking reads the whole archive once on the storage node's disk. */
const UNPACK_TIMEOUT_MS = 10 * 60_000;

export interface ContainerImages {
  /** CRIU's images, under `unpacked/checkpoint/`: what StoredImages reads for a process checkpoint. */
  images: StoredImages;
  metadata: ContainerCheckpointMetadata;
  /** Whether this call unpacked the archive (else an earlier unpack of the same archive was reused). */
  unpacked: boolean;
  /** Bytes of the archive that passed the guard (0 when reused). */
  archiveBytes: number;
}

/**
 * A container checkpoint's CRIU images and metadata, for inspect and search. The images are members of
 * Podman's `checkpoint.tar` on the storage node; they are unpacked next to it once, after the whole archive
 * passed through the orchestrator's TarGuard (checkpoint/container-archive.ts picks what may be unpacked) and
 * its sha256 matched the one taken when it was stored. The storage node then unpacks that same file by member
 * names: between the check and the unpack only the storage node could change it, and a storage node that lies
 * harms nothing but its own disk. Later calls reuse the unpacked directory while its recorded sum matches.
 * An encrypted one (its storage node has no key) is unpacked by the orchestrator instead, each picked member
 * stored back encrypted (encrypted-container-images.ts); `master` opens its data key.
 */
export async function openContainerImages(
  ops: NodeOps,
  storage: NodeRecord,
  cp: CheckpointRecord,
  master?: Uint8Array,
): Promise<ContainerImages> {
  if (!cp.sha256) throw new CriuImageError(`checkpoint '${cp.id}' recorded no sha256 of its archive`);
  const dir = `${cp.imageDir}/${UNPACKED_DIR}`;
  if (cp.encryption) {
    const { dataKey, sums, unpacked, archiveBytes } = await openEncryptedUnpack(ops, storage, cp, master, UNPACKED_DIR);
    const keyed = (at: string, s: Map<string, string>) =>
      StoredImages.encryptedDir(ops, storage, at, dataKey, s, cp.encryption!);
    return {
      images: keyed(`${dir}/checkpoint`, sums.images),
      metadata: await metadataOf(keyed(dir, sums.top)),
      unpacked,
      archiveBytes,
    };
  }
  let top = new StoredImages(ops, storage, dir);
  let archiveBytes = 0;
  const reused = await sumOf(top).then((sum) => sum === cp.sha256);
  if (!reused) {
    const size = (await new StoredImages(ops, storage, cp.imageDir).list()).get(CONTAINER_ARCHIVE);
    if (size === undefined)
      throw new CriuImageError(`${CONTAINER_ARCHIVE} is not in ${cp.imageDir} on '${storage.id}'`);
    const members = new CheckpointArchiveMembers();
    archiveBytes = await readThroughGuard(ops, storage, cp, size, members);
    const res = await ops.extractArchiveMembers(
      storage,
      cp.imageDir,
      { name: CONTAINER_ARCHIVE, sha256: cp.sha256 },
      UNPACKED_DIR,
      members.result(),
      UNPACK_TIMEOUT_MS,
    );
    if (res.code !== 0) {
      throw new DomainError(
        'images_unavailable',
        `unpacking ${CONTAINER_ARCHIVE} on '${storage.id}' failed (exit ${res.code}): ${res.stderr.trim().slice(0, 300)}`,
        { node: storage.id },
        true,
      );
    }
    top = new StoredImages(ops, storage, dir);
  }
  return {
    images: new StoredImages(ops, storage, `${dir}/checkpoint`),
    metadata: await metadataOf(top),
    unpacked: !reused,
    archiveBytes,
  };
}

/** What config.dump and spec.dump (at the unpack's top) say. */
async function metadataOf(top: StoredImages): Promise<ContainerCheckpointMetadata> {
  const sizes = await top.list();
  const dumps = await top.read(sizes.has('spec.dump') ? ['config.dump', 'spec.dump'] : ['config.dump']);
  const text = (b?: Uint8Array) => (b ? Buffer.from(b).toString('utf8') : undefined);
  return containerMetadata(text(dumps['config.dump'])!, text(dumps['spec.dump']));
}

/** The sum an earlier unpack recorded, if there is one. */
async function sumOf(top: StoredImages): Promise<string | undefined> {
  try {
    if (!(await top.list()).has(SUM_FILE)) return undefined;
    return Buffer.from((await top.read([SUM_FILE]))[SUM_FILE]!)
      .toString('utf8')
      .trim();
  } catch (error) {
    if (error instanceof DomainError) return undefined; // not unpacked yet
    throw error;
  }
}

/** The archive from the storage node through the guard, hashed, at most its listed size; the bytes go nowhere. */
async function readThroughGuard(
  ops: NodeOps,
  storage: NodeRecord,
  cp: CheckpointRecord,
  size: number,
  members: CheckpointArchiveMembers,
): Promise<number> {
  const guard = new TarGuard({ roots: [], judge: members.judge });
  const hash = createHash('sha256');
  let bytes = 0;
  const proc = await ops.sendImageFile(storage, cp.imageDir, CONTAINER_ARCHIVE);
  try {
    for await (const chunk of proc.stdout as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (bytes > size)
        throw new CriuImageError(`${CONTAINER_ARCHIVE} on '${storage.id}' sent more than its ${size} bytes`);
      hash.update(chunk);
      guard.write(chunk);
      if (guard.refused) throw guard.refused;
    }
    guard.end();
  } catch (error) {
    proc.stdout.destroy();
    if (error instanceof TarRefused) {
      throw new CriuImageError(`${CONTAINER_ARCHIVE} of checkpoint '${cp.id}' is not unpacked: ${error.message}`);
    }
    throw error;
  }
  const done = await proc.done;
  if (done.code !== 0) {
    throw new DomainError(
      'images_unavailable',
      `reading ${CONTAINER_ARCHIVE} on '${storage.id}' failed (exit ${done.code}): ${done.stderr.trim().slice(0, 200)}`,
      { node: storage.id },
      true,
    );
  }
  const sha256 = hash.digest('hex');
  if (sha256 !== cp.sha256) {
    throw new CriuImageError(
      `${CONTAINER_ARCHIVE} on '${storage.id}' no longer matches the sha256 recorded when it was stored (${sha256} != ${cp.sha256})`,
    );
  }
  return bytes;
}
