import type { CheckpointRecord, NodeRecord } from '@spotlift/domain';
import type { CheckpointRepository } from '@spotlift/store';
import type { DirectoryStreamer } from '@spotlift/transport';
import { type MigrationContext, MigrationStepError } from '../engine.types.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import { CHECKPOINT_FILES_TAR } from '../node-ops/file-sync-commands.js';
import { CHECKSUMS } from './checkpoint-checks.js';

/** What a restore copies of a stored image directory: the images, without logs, sums or the declared files. */
export const IMAGE_COPY_EXCLUDES: readonly string[] = ['./*.log', `./${CHECKSUMS}`, `./${CHECKPOINT_FILES_TAR}`];

/**
 * The steps of an incremental guard checkpoint (libs/domain guard-chain.ts plans them): the parent's inventory
 * back to the source before the dump, and at a restore the chain of stored parents, checked whole and copied
 * next to the images where their `parent` links point.
 */
export class GuardChainSteps {
  constructor(
    private readonly checkpoints: CheckpointRepository,
    private readonly ops: NodeOps,
    private readonly streamer: DirectoryStreamer,
  ) {}

  /**
   * The source keeps no images between guard dumps, but CRIU's dump reads the parent's inventory.img where
   * --prev-images-dir points (its pid-reuse check; without it the dump fails, seen in the qemu lab): it comes
   * back from the storage node. The parent's pages are asked of the page-server there.
   */
  async parentInventoryToSource(ctx: MigrationContext, parentId: string): Promise<void> {
    const { source, destination: storage } = ctx;
    const stored = `${ctx.destinationDir.slice(0, ctx.destinationDir.lastIndexOf('/'))}/${parentId}/inventory.img`;
    const inventory = await this.ops.readFile(storage, stored);
    if (!inventory?.length) {
      throw new MigrationStepError('prepare', `the parent's ${stored} is missing on ${storage.id}: chain broken`, true);
    }
    const dir = `${ctx.sourceDir.slice(0, ctx.sourceDir.lastIndexOf('/'))}/${parentId}`;
    await this.ops.makeDir(source, dir);
    await this.ops.writeFile(source, `${dir}/inventory.img`, inventory);
  }

  /**
   * An incremental guard checkpoint's parents, newest first, each stored; a chain with a parent gone or not stored
   * cannot be restored (its pages would be missing) and fails the preflight with nothing run.
   */
  async storedChain(cp: CheckpointRecord): Promise<CheckpointRecord[]> {
    const out: CheckpointRecord[] = [];
    for (let id = cp.guardChain?.parentId; id !== undefined;) {
      const p = await this.checkpoints.get(id);
      if (
        !p ||
        p.workloadId !== cp.workloadId ||
        p.storageNodeId !== cp.storageNodeId ||
        out.some((x) => x.id === id)
      ) {
        throw new Error(`checkpoint '${cp.id}' builds on '${id}', which is not stored with it: its chain is broken`);
      }
      if (p.state === 'failed' || p.state === 'queued' || p.state === 'taking') {
        throw new Error(`checkpoint '${cp.id}' builds on '${id}', which is ${p.state}: its chain is broken`);
      }
      out.push(p);
      id = p.guardChain?.parentId;
    }
    return out;
  }

  /**
   * The parents' images to `<workDir>/<parent id>` on the destination, where the images' `parent` links
   * (`../<id>`) point: CRIU's restore reads each page from the newest image in the chain that has it. Bytes copied.
   */
  async copyChain(
    ancestors: readonly CheckpointRecord[],
    storage: NodeRecord,
    destination: NodeRecord,
    workDir: string,
  ): Promise<number> {
    let bytes = 0;
    for (const a of ancestors) {
      const dir = `${workDir}/${a.id}`;
      await this.ops.makeDir(destination, dir);
      const r = await this.streamer
        .copy(storage, a.imageDir, destination, dir, { exclude: [...IMAGE_COPY_EXCLUDES] })
        .catch((e: Error) => {
          throw new MigrationStepError('transfer', e.message, true);
        });
      bytes += r.bytes;
    }
    return bytes;
  }
}
