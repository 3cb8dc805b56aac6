import type { CheckpointRecord } from '@spotlift/domain';
import { type EngineConfig, type MigrationContext, MigrationStepError } from '../engine.types.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import { CHECKPOINT_FILES_TAR } from '../node-ops/file-sync-commands.js';
import * as criu from '../node-ops/process/criu-commands.js';
import { openDataKey, parseSums } from './checkpoint-crypto.js';
import type { CheckpointSession } from './checkpoint-session.js';

/**
 * The steps an encrypted process checkpoint takes instead of, or on top of, a plain one's (CheckpointFlow): the
 * dump writes its pages on the source (no page-server on the storage node, which would write them in clear), the
 * source encrypts them before the stream, and the restoring node checks the recorded ciphertext sums before it
 * decrypts. The data key goes to those two nodes on SSH stdin only, never to the storage node
 * (checkpoint-crypto.ts holds the key scheme, image-store-commands.ts the node commands).
 */
export class EncryptedSteps {
  constructor(
    private readonly ops: NodeOps,
    private readonly config: EngineConfig,
  ) {}

  /** The checkpoint's data key; undefined when it is stored in clear. Throws CheckpointKeyError when unopenable. */
  dataKey(cp: CheckpointRecord): string | undefined {
    return cp.encryption && openDataKey(this.config.checkpointKey, cp.encryption, `checkpoint '${cp.id}'`);
  }

  /** A restore's key: a checkpoint that cannot be opened, or has no recorded sums, fails before any node acts. */
  restoreKey(cp: CheckpointRecord): string | undefined {
    const dataKey = this.dataKey(cp);
    if (dataKey && !cp.encryption!.sums) {
      throw new Error(`checkpoint '${cp.id}' is encrypted but has no recorded checksums`);
    }
    return dataKey;
  }

  /** The freezing dump with its pages written on the source (an encrypted checkpoint's); node-side times. */
  async dumpLocal(ctx: MigrationContext, leaveRunning: boolean): Promise<{ startNs?: bigint; endNs: bigint }> {
    const { source, workload } = ctx;
    const res = await this.ops.dumpLocal(
      source,
      workload.pid,
      ctx.sourceDir,
      { ghostLimitBytes: this.config.ghostLimitBytes, ...(leaveRunning ? { leaveRunning: true } : {}) },
      this.config.criuTimeoutMs,
    );
    if (res.code !== 0 || res.endNs === undefined) {
      const log = await this.ops.tail(source, `${ctx.sourceDir}/dump.log`, 200);
      throw criu.dumpFailure('dump', source.id, log || res.stderr, res.code);
    }
    return { ...(res.startNs === undefined ? {} : { startNs: res.startNs }), endNs: res.endNs };
  }

  /** Encrypts the dumped images in place on the source; the sums of what will be stored go into the record. */
  async encryptOnSource(s: CheckpointSession, dataKey: string): Promise<void> {
    const { source, sourceDir } = s.ctx;
    const res = await this.ops.encryptImages(source, sourceDir, dataKey);
    const sums = parseSums(res.stdout);
    if (res.code !== 0 || !sums.size) {
      const why = (/^ENCRYPT_FAILED .*$/m.exec(res.stdout)?.[0] ?? res.stderr).trim().slice(0, 300);
      throw new MigrationStepError(
        'transfer',
        `encrypting the images on ${source.id} failed (exit ${res.code}): ${why}`,
        false,
      );
    }
    s.cp.encryption!.sums = [...sums].map(([name, hash]) => `${hash}  ${name}`).join('\n');
  }

  /** The declared-files tar's sum (of the ciphertext the orchestrator wrote to the storage node), with the images'. */
  recordFilesSum(cp: CheckpointRecord, sha256: string): void {
    cp.encryption!.sums = `${cp.encryption!.sums ?? ''}\n${sha256}  ${CHECKPOINT_FILES_TAR}`.trim();
  }

  /**
   * Its declared-files tar is encrypted (its sum recorded with the images'). Checkpoints encrypted before the tar
   * was stored it in clear: they restore it as a plain checkpoint does.
   */
  filesEncrypted(cp: CheckpointRecord): boolean {
    return parseSums(cp.encryption?.sums ?? '').has(CHECKPOINT_FILES_TAR);
  }

  /**
   * The copied images checked against the ciphertext sums the source reported (the storage node cannot change
   * those: they are in the record), then decrypted in place on the destination (`dir`: where they were copied,
   * holding nothing else). A mismatch decrypts nothing.
   */
  async decryptOnDestination(s: CheckpointSession, dataKey: string, dir = s.ctx.destinationDir): Promise<void> {
    const { destination, source: storage } = s.ctx;
    const res = await this.ops.decryptImages(destination, dir, dataKey, s.cp.encryption!.sums!);
    if (res.code === 0) return;
    const detail = (res.stdout || res.stderr).trim().split('\n').slice(0, 6).join('; ').slice(0, 400);
    throw new MigrationStepError(
      'transfer',
      res.code === 5
        ? `the images from ${storage.id} differ from the checksums recorded when checkpoint '${s.cp.id}' was taken (tampered or damaged): ${detail}; nothing was decrypted or restored`
        : `decrypting the images on ${destination.id} failed (exit ${res.code}): ${detail}`,
      true,
    );
  }
}
