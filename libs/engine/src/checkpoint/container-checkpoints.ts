import { DomainError, leavesRunning, type PhaseRecord } from '@spotlift/domain';
import type { WorkloadRepository } from '@spotlift/store';
import type { Clock } from '../clock.js';
import { ContainerRollback } from '../container-recovery.js';
import { type EngineConfig, MigrationStepError } from '../engine.types.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import type { PodmanOps } from '../node-ops/podman/podman-ops.js';
import { parsePodmanRestoreStats, statsOf } from '../podman/stats.js';
import { checkDestinationState } from '../steps/preflight-checks.js';
import { refuseStaleRun, saveWorkloadFields } from '../workload-writes.js';
import { CHECKSUMS, checkStorage, checkStoredImages, sealStoredImages } from './checkpoint-checks.js';
import { opensslSeal } from './checkpoint-crypto.js';
import { type CheckpointSession, committed, ran } from './checkpoint-session.js';
import { EncryptedSteps } from './encrypted-steps.js';

/** CheckpointFlow's session, as far as a container's steps use it. */
export type ContainerSession = CheckpointSession;

/** The files of a container's checkpoint in its `imageDir` on the storage node. */
export const CONTAINER_ARCHIVE = 'checkpoint.tar';
export const CONTAINER_IMAGE = 'image.tar';

const refuse = (why: string): never => {
  throw new MigrationStepError('preflight', why, true);
};

/**
 * Checkpoints to a storage node of a Podman container (kind `podman`), by the process checkpoints' rules
 * (CheckpointFlow): the same storage layout, checksum list, states and commit points, with Podman's commands.
 *
 * Taking: the container's image (`podman image save`, before any freeze) and then `checkpoint --export`
 * (`--leave-running` for a forensic or guard copy) stream into `imageDir` on the storage node; both are checked
 * present, checksummed and synced; only then is the source's (checkpointed, exited) container removed by id
 * (the commit point). A failure before it restores the source from the checkpoint Podman kept (ContainerRollback)
 * and removes the partial files.
 *
 * Restoring: the stored archive (and the image, when the destination lacks it) streamed to the destination,
 * `restore --import`, verified running by Podman there. A failed restore removes its container (by id, once no
 * Podman command of it runs) and leaves the checkpoint stored. A forensic checkpoint's restore is a clone.
 */
export class ContainerCheckpoints {
  private readonly encrypted: EncryptedSteps;

  constructor(
    private readonly ops: NodeOps,
    private readonly podman: PodmanOps,
    private readonly workloads: WorkloadRepository,
    private readonly clock: Clock,
    private readonly config: EngineConfig,
  ) {
    this.encrypted = new EncryptedSteps(ops, config);
  }

  async takeSteps(s: ContainerSession): Promise<void> {
    const { cp, ctx, phases, view } = s;
    const { source, destination: storage } = ctx;
    const id = containerOf(s);
    const forensic = leavesRunning(cp);
    // Encrypted: the orchestrator encrypts the archive as it relays it (Podman writes it; no node gets the key).
    const dataKey = this.encrypted.dataKey(cp);
    await phases.run(view, 'preflight', (phase) => this.takePreflight(s, id, phase));
    const checkpoint = await phases.run(view, 'prepare', async (phase) => {
      await Promise.all([this.ops.makeDir(source, ctx.sourceDir), this.ops.makeDir(storage, cp.imageDir)]);
      const c = cp.container!;
      // The image goes with the checkpoint: a restore must not depend on the source node (or a registry).
      const img = await this.podman
        .storeImage(source, c.image.name || c.image.id, storage, `${cp.imageDir}/${CONTAINER_IMAGE}`)
        .catch((e: Error) => {
          throw new MigrationStepError('prepare', `storing image ${c.image.name} failed: ${e.message}`, true);
        });
      c.imageBytes = img.bytes;
      const armed = await this.podman.armCheckpoint(
        source,
        ctx.sourceDir,
        id,
        storage,
        `${cp.imageDir}/${CONTAINER_ARCHIVE}`,
        this.config.criuTimeoutMs,
        forensic ? 'leave-running' : 'final',
        undefined,
        dataKey ? opensslSeal(dataKey) : undefined,
      );
      phase.detail = `image ${c.image.name} stored on ${storage.id} (${img.bytes} bytes, sha256 verified)`;
      return armed;
    });
    try {
      // A forensic copy is never 'migrating': Podman's --leave-running resumes the container after the dump.
      if (!forensic) await s.steps.markMigrating(ctx);
      await phases.run(view, 'dump', async (phase) => {
        let failure: Error | undefined;
        const sent = await checkpoint.start().catch((e: Error) => {
          failure = e;
          return undefined;
        });
        const outcome = await this.podman.checkpointOutcome(source, ctx.sourceDir);
        if (!sent) {
          const log = outcome.log.trim() ? `; podman's log: ${outcome.log.trim().slice(-600)}` : '';
          throw new MigrationStepError('dump', `checkpoint of the container failed: ${failure!.message}${log}`, false);
        }
        cp.bytes.images = sent.bytes;
        cp.sha256 = sent.sha256;
        // The image stays in clear (what a registry serves); the archive (memory, files) is the ciphertext summed.
        if (dataKey) cp.encryption!.sums = `${sent.sha256}  ${CONTAINER_ARCHIVE}`;
        if (outcome.stats) {
          const st = statsOf(outcome.stats, id);
          cp.criu.dump = { ...st.criu, pagesLazy: 0 };
          cp.bytes.pages = st.criu.pagesWritten * 4096;
          Object.assign(cp.container!, {
            checkpointMs: Math.round(outcome.stats.podmanUs / 1000),
            frozenMs: Math.round(st.criu.frozenTimeUs / 1000),
          });
        } else cp.notes = [...(cp.notes ?? []), outcome.statsProblem ?? 'no checkpoint stats'];
        if (outcome.startNs !== undefined) cp.frozenAt = new Date(Number(outcome.startNs / 1_000_000n)).toISOString();
        phase.detail = `podman container checkpoint --export${forensic ? ' --leave-running' : ''} streamed to ${storage.id}${dataKey ? ', encrypted by the orchestrator' : ''}: ${sent.bytes} bytes, sha256 verified`;
      });
      await phases.run(view, 'verify', async (phase) => {
        cp.bytes.stored = await sealStoredImages(this.ops, storage, cp.imageDir, [CONTAINER_ARCHIVE, CONTAINER_IMAGE]);
        phase.detail = `${CONTAINER_ARCHIVE} and ${CONTAINER_IMAGE} in ${cp.imageDir} on ${storage.id} (${cp.bytes.stored} bytes), ${CHECKSUMS} written, synced`;
      });
      await this.commitTake(s);
    } finally {
      await checkpoint.cancel().catch(() => undefined);
    }
  }

  /** The container runs on its node, and the storage node has room for its memory (the archive's bulk). */
  private async takePreflight(s: ContainerSession, id: string, phase: PhaseRecord): Promise<void> {
    const { cp, ctx } = s;
    const { source, destination: storage, workload } = ctx;
    const c = await this.podman.inspect(source, id);
    if (!c) refuse(`container ${id.slice(0, 12)} is gone from ${source.id}`);
    if (!c!.running || c!.mainPid === undefined)
      refuse(`container ${id.slice(0, 12)} is ${c!.rawState} on ${source.id}`);
    const tree = await this.ops.inspectTree(source, c!.mainPid!);
    const rss = tree?.rssBytes ?? workload.rssBytes ?? 0;
    const root = cp.imageDir.split('/').slice(0, -2).join('/') || '/';
    await checkStorage(this.ops, storage, root, rss, this.config.memoryHeadroom);
    if (workload.pid !== c!.mainPid) {
      // Restarted by Podman since it was registered: stored now, or the commit's stale-run check would read the
      // difference as a move by another worker (as in ContainerStopAndCopy's preflight).
      workload.pid = c!.mainPid!;
      await saveWorkloadFields(this.workloads, workload, ['pid']);
    }
    if (tree) Object.assign(workload, { tree: tree.pids, rssBytes: tree.rssBytes });
    cp.kind = 'podman';
    cp.container = {
      id: c!.id,
      name: c!.name,
      image: { name: c!.image.name, id: c!.image.id },
      volumes: c!.volumes.map((v) => v.name),
      ports: c!.ports.map((p) => p.hostPort),
    };
    Object.assign(cp, { rssBytes: rss, ...(tree ? { tree: tree.pids } : {}) });
    phase.detail = `container ${c!.name} (${id.slice(0, 12)}) running as pid ${c!.mainPid}, ${Math.round(rss / 2 ** 20)} MiB resident; ${storage.id} has room under ${root}`;
  }

  /**
   * The commit point of taking: the archive is stored and sealed, so the source's checkpointed container (and
   * its named volumes, inside the archive) are removed by id. A forensic copy removes nothing.
   */
  async commitTake(s: ContainerSession): Promise<void> {
    const { cp, ctx, phases, view } = s;
    const { source, workload } = ctx;
    const id = containerOf(s);
    await phases.run(view, 'commit', async (phase) => {
      if (leavesRunning(cp)) {
        cp.storedAt = this.clock.now().toISOString();
        phase.detail = `forensic copy stored in ${cp.imageDir} on ${ctx.destination.id}; container ${id.slice(0, 12)} runs on, on ${source.id}`;
        return;
      }
      await refuseStaleRun(this.workloads, ctx, 'commits nothing (nothing removed)');
      if (!(await this.podman.remove(source, id))) {
        throw new Error(`the source's container ${id.slice(0, 12)} on ${source.id} could not be removed`);
      }
      const volumes = cp.container?.volumes ?? [];
      if (!(await this.podman.removeVolumes(source, volumes))) {
        cp.notes = [...(cp.notes ?? []), `volume(s) ${volumes.join(', ')} could not be removed on ${source.id}`];
      }
      workload.state = 'checkpointed';
      workload.updatedAt = this.clock.now().toISOString();
      await saveWorkloadFields(this.workloads, workload, ['state', 'updatedAt']);
      cp.storedAt = this.clock.now().toISOString();
      phase.detail = `container ${id.slice(0, 12)} removed on ${source.id}; the workload is stored in ${cp.imageDir} on ${ctx.destination.id}`;
    });
  }

  /**
   * A failure before the archive was stored for good. Once a checkpoint may have stopped the container, the
   * source is brought back (ContainerRollback: still running -> nothing; checkpointed -> restored from the
   * checkpoint Podman kept), but only after no Podman command of this take runs there. The partial files go.
   * Returns false when the container turned out gone (it runs nowhere). A failed commit is not undone: it throws.
   */
  async undoTake(s: ContainerSession, error: Error): Promise<boolean> {
    const { cp, ctx } = s;
    if (ran(s, 'commit') && !committed(s)) throw error;
    if (committed(s)) {
      cp.notes = [...(cp.notes ?? []), `after the commit point: ${error.message}`];
      return true;
    }
    // A node that did not answer before anything was frozen: the job's retry takes it again.
    if (error instanceof DomainError && error.retryable && !ran(s, 'dump')) throw error;
    cp.error = error.message;
    let alive = true;
    if (ran(s, 'dump')) {
      const idleMs = this.config.criuIdleTimeoutMs ?? 300_000;
      if (!(await this.podman.waitIdle(ctx.source, ctx.sourceDir, idleMs))) {
        throw new Error(`a Podman checkpoint of this take still runs on ${ctx.source.id}; nothing was decided`);
      }
      alive = await new ContainerRollback(this.podman, s.phases, this.workloads, this.config).run(ctx);
      if (!alive)
        cp.error = `workload gone: its container left ${ctx.source.id} during the checkpoint; it runs nowhere (${error.message})`;
    } else if (ctx.workload.state === 'migrating') {
      ctx.workload.state = 'running';
      await saveWorkloadFields(this.workloads, ctx.workload, ['state']);
    }
    // A partial archive is no checkpoint: nothing may later restore it next to the running source.
    await this.ops.removeDir(ctx.destination, cp.imageDir);
    return alive;
  }

  async restoreSteps(s: ContainerSession): Promise<void> {
    const { cp, ctx, phases, view } = s;
    const { source: storage, destination } = ctx;
    const request = cp.restore!;
    const id = containerOf(s);
    // An encrypted archive is copied into a directory of its own, checked against its recorded sum and
    // decrypted there (decryptImages refuses any file the sums do not list).
    const sealed = cp.encryption ? `${ctx.destinationDir}/sealed` : undefined;
    const archive = `${sealed ?? ctx.destinationDir}/${CONTAINER_ARCHIVE}`;
    let dataKey: string | undefined;
    await phases.run(view, 'preflight', (phase) => {
      // First: a key that cannot open the checkpoint fails before anything runs on any node.
      dataKey = this.encrypted.restoreKey(cp);
      return this.restorePreflight(s, id, phase);
    });
    await phases.run(view, 'transfer', async (phase) => {
      await this.ops.makeDir(destination, ctx.destinationDir);
      const c = cp.container!;
      const notes: string[] = [];
      try {
        if (sealed) await this.ops.makeDir(destination, sealed);
        if (!(await this.podman.hasImage(destination, c.image.id))) {
          const img = await this.podman.loadStoredImage(
            storage,
            `${cp.imageDir}/${CONTAINER_IMAGE}`,
            destination,
            ctx.destinationDir,
          );
          request.imageSentBytes = img.bytes;
          notes.push(`image ${c.image.name} loaded from the checkpoint (${img.bytes} bytes)`);
        } else notes.push(`${destination.id} has image ${c.image.name}`);
        const r = await this.podman.copyStoredArchive(
          storage,
          `${cp.imageDir}/${CONTAINER_ARCHIVE}`,
          destination,
          archive,
        );
        request.imageBytes = r.bytes;
        notes.unshift(`${r.bytes} bytes of archive from ${storage.id}, sha256 verified on ${destination.id}`);
      } catch (e) {
        throw new MigrationStepError('transfer', (e as Error).message, true);
      }
      if (dataKey) {
        await this.encrypted.decryptOnDestination(s, dataKey, sealed);
        notes.push(`checked against the sum recorded at the take and decrypted on ${destination.id}`);
      }
      phase.detail = notes.join('; ');
    });
    await phases.run(view, 'restore', async (phase) => {
      const armed = await this.podman.armRestoreImport(destination, archive, this.config.criuTimeoutMs);
      const res = await armed.fire();
      if (res.code !== 0 || res.endNs === undefined) {
        throw new MigrationStepError(
          'restore',
          `podman container restore --import on ${destination.id} failed (${res.code}): ${res.stderr.trim().slice(-600)}`,
          false,
        );
      }
      request.resumedAt = new Date(Number(res.endNs / 1_000_000n)).toISOString();
      try {
        const stats = parsePodmanRestoreStats(res.stdout.replace(/^SPOTLIFT_TIMES .*$/m, ''));
        request.criu = statsOf(stats, id).criu;
      } catch (error) {
        cp.notes = [...(cp.notes ?? []), `restore stats unreadable: ${(error as Error).message}`];
      }
      phase.detail = `podman container restore --import on ${destination.id}`;
    });
    await phases.run(view, 'verify', async (phase) => {
      const c = await this.podman.inspect(destination, id);
      if (!c?.running || c.mainPid === undefined) {
        throw new MigrationStepError(
          'verify',
          `the restored container ${id.slice(0, 12)} does not run on ${destination.id} (${c ? c.rawState : 'unknown to Podman'})`,
          false,
        );
      }
      request.restoredPid = c.mainPid;
      phase.detail = `container ${id.slice(0, 12)} runs as pid ${c.mainPid} on ${destination.id}`;
    });
    await this.commitRestore(s);
  }

  /**
   * Exactly one running copy: a storage checkpoint is restored only while its workload runs nowhere, a forensic
   * one (a clone) never next to its original; the destination must not know the container's id or name, nor
   * have its ports or volumes taken; then the runtime, the memory and the stored files' checksums.
   */
  private async restorePreflight(s: ContainerSession, id: string, phase: PhaseRecord): Promise<void> {
    const { cp, ctx } = s;
    const { source: storage, destination, workload } = ctx;
    const c = cp.container!;
    checkDestinationState(destination);
    if (!leavesRunning(cp) && workload.state !== 'checkpointed') {
      refuse(`workload '${workload.id}' is ${workload.state} on '${workload.nodeId}': restoring it would run it twice`);
    }
    if (leavesRunning(cp) && destination.id === workload.nodeId) {
      refuse(`the original of this forensic copy runs on ${destination.id}: a clone goes to another node`);
    }
    const [runtime, sameId, sameName, ports, volumes, free] = await Promise.all([
      this.podman.runtimeProblem(destination),
      this.podman.inspect(destination, id),
      this.podman.inspect(destination, c.name),
      this.podman.portsInUse(destination, c.ports),
      this.podman.volumesPresent(destination, c.volumes),
      this.ops.memAvailableBytes(destination, 15_000),
    ]);
    if (runtime) refuse(`the destination cannot restore containers: ${runtime}`);
    if (sameId) refuse(`${destination.id} already has container ${id.slice(0, 12)} (${sameId.state})`);
    if (sameName) refuse(`the name ${c.name} is taken on ${destination.id} (container ${sameName.id.slice(0, 12)})`);
    if (ports.length) refuse(`published port(s) ${ports.join(', ')} are in use on ${destination.id}`);
    if (volumes.length) refuse(`${destination.id} already has volume(s) ${volumes.join(', ')}`);
    const need = Math.ceil((cp.rssBytes ?? 0) * (1 + this.config.memoryHeadroom));
    if (free === undefined) refuse(`${destination.id} did not say how much memory it has free`);
    if (free! < need) refuse(`${destination.id} has ${free} bytes of memory free, the container needs ${need}`);
    await checkStoredImages(this.ops, storage, cp.imageDir);
    phase.detail = `${destination.id} runs runc with criu, name, ports and volumes free, ${free} bytes free; the files on ${storage.id} match ${CHECKSUMS}`;
  }

  /** The restored container runs verified: the workload lives there now (a forensic copy's: a clone). */
  async commitRestore(s: ContainerSession): Promise<void> {
    const { cp, ctx, phases, view } = s;
    const { workload, destination } = ctx;
    await phases.run(view, 'commit', async (phase) => {
      const pid = cp.restore?.restoredPid;
      if (!pid) throw new Error('no restored pid was recorded');
      // A guard checkpoint restored for its lost (fenced) node is the workload again, not a clone.
      if (leavesRunning(cp) && !cp.restore?.takeover) {
        cp.restore!.clone = true;
        phase.detail = `clone of a forensic copy runs as pid ${pid} on ${destination.id}; workload '${workload.id}' itself is unchanged (on ${workload.nodeId})`;
        return;
      }
      const tree = await this.ops.inspectTree(destination, pid).catch(() => undefined);
      Object.assign(workload, {
        nodeId: destination.id,
        pid,
        state: 'running',
        updatedAt: this.clock.now().toISOString(),
        ...(tree ? { tree: tree.pids, rssBytes: tree.rssBytes } : {}),
      });
      await saveWorkloadFields(this.workloads, workload, ['nodeId', 'pid', 'state', 'updatedAt', 'tree', 'rssBytes']);
      phase.detail = `container runs as pid ${pid} on ${destination.id}`;
    });
  }

  /**
   * Before the restore's commit point: once no Podman command of this restore runs there, the destination's
   * container (by id: preflight saw none) and the volumes it created are removed, so the archive stays the only
   * copy. When that cannot be proven this throws and the checkpoint stays 'restoring' for the next attempt.
   */
  async undoRestore(s: ContainerSession, error: Error): Promise<void> {
    const { cp, ctx } = s;
    const request = cp.restore!;
    if (ran(s, 'commit')) throw error;
    request.error = error.message;
    if (!ran(s, 'restore')) return;
    const id = containerOf(s);
    const idleMs = this.config.criuIdleTimeoutMs ?? 300_000;
    if (!(await this.podman.waitIdle(ctx.destination, ctx.destinationDir, idleMs))) {
      throw new Error(`a Podman restore of this checkpoint still runs on ${ctx.destination.id}`);
    }
    if (!(await this.podman.remove(ctx.destination, id))) {
      throw new Error(`the restored container ${id.slice(0, 12)} on ${ctx.destination.id} could not be removed`);
    }
    const volumes = cp.container?.volumes ?? [];
    if (!(await this.podman.removeVolumes(ctx.destination, volumes))) {
      cp.notes = [...(cp.notes ?? []), `volume(s) ${volumes.join(', ')} could not be removed on ${ctx.destination.id}`];
    }
    request.error = `${error.message}; no container ${id.slice(0, 12)} left on ${ctx.destination.id}`;
    delete request.restoredPid;
  }
}

/** The container's id: from the checkpoint once taken, else from the workload record. */
function containerOf(s: ContainerSession): string {
  const id = s.cp.container?.id ?? s.ctx.workload.container;
  if (!id) throw new MigrationStepError('preflight', `workload '${s.ctx.workload.id}' names no container`, true);
  return id;
}
