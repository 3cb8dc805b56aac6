import {
  DomainError,
  NotFoundError,
  leavesRunning,
  processKey,
  type CheckpointRecord,
  type MigrationRecord,
  type NodeRecord,
  type WorkloadRecord,
} from '@spotlift/domain';
import type { CheckpointRepository, NodeRepository, WorkloadRepository } from '@spotlift/store';
import { type ArmedStream, type DirectoryStreamer, type StreamResult } from '@spotlift/transport';
import type { Clock } from '../clock.js';
import * as criu from '../node-ops/process/criu-commands.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from '../engine.types.js';
import { keepJobLogs } from '../failed-job-logs.js';
import {
  CHECKPOINT_FILES_TAR,
  archivePaths,
  outermostPaths,
  readStoredArchive,
  storeArchive,
  unpackAtRoot,
} from '../node-ops/file-sync-commands.js';
import type { NodeLock, NodeOps } from '../node-ops/node-ops.js';
import { PodmanOps } from '../node-ops/podman/podman-ops.js';
import { PhaseRecorder, closeInterruptedPhases } from '../phase-recorder.js';
import { exitedInsteadOfHeld } from '../recovery.js';
import { setIdentity } from '../process-inspection.js';
import { Rollback } from '../rollback.js';
import {
  checkCriuVersions,
  checkDestinationResources,
  checkDestinationState,
  runningTree,
} from '../steps/preflight-checks.js';
import { saveWorkloadFields } from '../workload-writes.js';
import { MigrationSteps } from '../steps/migration-steps.js';
import { StopAndCopy } from '../strategies/stop-and-copy.js';
import type { PageTransport } from '../transports/page-transport.port.js';
import { PageTransports } from '../transports/page-transports.js';
import { TcpPageTransport } from '../transports/tcp-page-transport.js';
import {
  CHECKSUMS,
  checkCpuFromImages,
  checkStorage,
  checkStoredImages,
  sealStoredImages,
} from './checkpoint-checks.js';
import { CheckpointLog } from './checkpoint-log.js';
import { newDataKey, opensslSeal } from './checkpoint-crypto.js';
import { type CheckpointSession, committed, ran } from './checkpoint-session.js';
import { ContainerCheckpoints } from './container-checkpoints.js';
import { EncryptedSteps } from './encrypted-steps.js';
import { GuardChainSteps, IMAGE_COPY_EXCLUDES } from './guard-chain-steps.js';

// Forensic and guard copies: the workload runs on after the dump (libs/domain checkpoint.ts).
const forensic = (cp: CheckpointRecord) => leavesRunning(cp);
/** A Podman container's checkpoint: its steps are ContainerCheckpoints' (the states and commit points are these). */
const isContainer = (s: CheckpointSession) => s.cp.kind === 'podman' || s.ctx.workload.kind === 'podman';

/**
 * Checkpoints to a storage node, and their restores, with the migration engine's own steps.
 *
 * Taking one is a stop-and-copy whose destination is the storage node and which ends without a restore:
 * the page-server on the storage node receives the pages of `dump --leave-stopped`, the other image files
 * follow as one sha256-checked tar stream into `<checkpoint root>/<workload>/<checkpoint>`, the images are
 * checked complete, checksummed and synced, and only then is the frozen source killed (the commit point).
 * Every failure before it resumes the source (Rollback) and removes the partial images, so the workload
 * runs in one place or is stored in one place, never both.
 *
 * A restore streams the stored images to the destination (checked against their checksums first),
 * `restore -d`, verifies the tree, and records the workload there. A failed restore kills what it
 * restored and leaves the checkpoint stored, to be restored again.
 *
 * A Podman container's checkpoint (kind `podman`) keeps these states, locks, records and end points; its steps
 * (take, commit, undo, restore) are ContainerCheckpoints', with Podman's exported archive in place of CRIU's images.
 */
export class CheckpointFlow {
  private readonly transports: PageTransports;
  private readonly containers: ContainerCheckpoints;
  private readonly encrypted: EncryptedSteps;
  private readonly chains: GuardChainSteps;

  constructor(
    private readonly checkpoints: CheckpointRepository,
    private readonly workloads: WorkloadRepository,
    private readonly nodes: NodeRepository,
    private readonly ops: NodeOps,
    private readonly streamer: DirectoryStreamer,
    private readonly clock: Clock,
    private readonly config: EngineConfig,
    transports: PageTransport[] = [new TcpPageTransport()],
    podman: PodmanOps = new PodmanOps(ops, streamer),
  ) {
    this.transports = new PageTransports(transports);
    this.containers = new ContainerCheckpoints(ops, podman, workloads, clock, config);
    this.encrypted = new EncryptedSteps(ops, config);
    this.chains = new GuardChainSteps(checkpoints, ops, streamer);
  }

  /** Takes the checkpoint; re-runnable: a record left 'taking' by a dead worker is finished or undone first. */
  async take(checkpointId: string): Promise<CheckpointRecord> {
    const cp = await this.load(checkpointId);
    if (cp.state !== 'queued' && cp.state !== 'taking') return cp;
    const [workload, source, storage] = await Promise.all([
      this.workloads.get(cp.workloadId),
      this.nodes.get(cp.sourceNodeId),
      this.nodes.get(cp.storageNodeId),
    ]);
    if (!workload || !source || !storage) {
      return this.end(cp, 'failed', 'the workload, its node or the storage node no longer exists');
    }
    const workDir = `${this.config.imageRoot}/${cp.id}`;
    const s = this.session(cp, 'take', workload, source, storage, `${workDir}/src`, cp.imageDir, cp.id);
    // The node-side lock a migration takes (MigrationEngine.lockSource): one freezer per process on its node,
    // whatever installation or Redis the other one uses. Held by its SSH channel until the take ended.
    const lock = await this.ops.holdLock(source, cp.claimKey ?? processKey(workload));
    if (!lock) {
      const why = `another session holds the node-side lock of workload '${workload.id}' on ${source.id}`;
      if (cp.state === 'taking') throw new Error(`${why}; the take is resumed once it is free`);
      return this.end(cp, 'failed', `${why} (e.g. a migration); nothing was frozen`);
    }
    try {
      // A phase the dead worker left open ends here, as interrupted, whatever the take does next.
      if (cp.state === 'taking') closeInterruptedPhases(s.view, this.clock.now());
      if (cp.state === 'taking' && (await this.resumeTake(s))) return await this.finishTake(s, workDir, lock);
      cp.state = 'taking';
      // Encrypted at rest when the orchestrator holds a key (a container's archive: as the orchestrator relays it).
      if (this.config.checkpointKey && !cp.encryption) {
        cp.encryption = newDataKey(this.config.checkpointKey).encryption;
      }
      await s.phases.save(s.view);
      try {
        await this.takeSteps(s);
      } catch (error) {
        await this.undoTake(s, error as Error);
      }
      return await this.finishTake(s, workDir, lock);
    } finally {
      await lock.release();
    }
  }

  /**
   * Restores the checkpoint's current restore request (`restore.attempt`); a request that is not this
   * attempt's, or a checkpoint no longer 'restoring', is left alone (the job is stale).
   */
  async restore(checkpointId: string, attempt: number): Promise<CheckpointRecord> {
    const cp = await this.load(checkpointId);
    const request = cp.restore;
    if (cp.state !== 'restoring' || request?.attempt !== attempt) return cp;
    const [workload, storage, destination] = await Promise.all([
      this.workloads.get(cp.workloadId),
      this.nodes.get(cp.storageNodeId),
      this.nodes.get(request.destinationNodeId),
    ]);
    if (!workload || !storage || !destination) {
      request.error = 'the workload, the storage node or the destination no longer exists';
      return this.end(cp, 'stored');
    }
    const workDir = `${this.config.imageRoot}/${cp.id}-r${attempt}`;
    const s = this.session(cp, 'restore', workload, storage, destination, cp.imageDir, `${workDir}/dst`, cp.id);
    // A job running this attempt again: its dead worker's open phase ends here, as interrupted.
    closeInterruptedPhases(s.view, this.clock.now());
    try {
      if (ran(s, 'commit')) await this.commitRestore(s);
      else if (ran(s, 'restore')) throw new Error('the worker restoring it stopped during the restore');
      else if (isContainer(s)) await this.containers.restoreSteps(s);
      else await this.restoreSteps(s, workDir);
    } catch (error) {
      if (isContainer(s)) await this.containers.undoRestore(s, error as Error);
      else await this.undoRestore(s, error as Error);
      // restore.log on the destination, before cleanup removes its working directory; kept per attempt.
      const job = { id: `${cp.id}-r${attempt}`, phases: request.phases };
      await keepJobLogs(this.ops, job, request, [{ node: destination, dir: workDir }], this.config.imageRoot);
    }
    await this.cleanup(s, destination, workDir);
    return this.end(cp, committed(s) ? 'restored' : 'stored');
  }

  /** Removes the images from the storage node. False when the node did not confirm it. */
  async removeImages(cp: CheckpointRecord): Promise<boolean> {
    const storage = await this.nodes.get(cp.storageNodeId);
    if (!storage) return false;
    const removed = await this.ops.removeDir(storage, cp.imageDir);
    // The per-workload directory goes too once it holds no other checkpoint (rmdir refuses otherwise).
    const parent = cp.imageDir.slice(0, cp.imageDir.lastIndexOf('/'));
    if (removed && parent) await this.ops.removeEmptyDir(storage, parent);
    return removed;
  }

  private async takeSteps(s: CheckpointSession): Promise<void> {
    if (isContainer(s)) return this.containers.takeSteps(s);
    const { cp, ctx, phases, view, steps } = s;
    const { source, destination: storage, workload } = ctx;
    await phases.run(view, 'preflight', async (phase) => {
      const tree = await runningTree(this.ops, ctx);
      const root = cp.imageDir.split('/').slice(0, -2).join('/') || '/';
      await checkStorage(this.ops, storage, root, tree.rssBytes, this.config.memoryHeadroom);
      Object.assign(cp, { tree: tree.pids, rssBytes: tree.rssBytes, criuVersion: source.probe?.criuVersion });
      Object.assign(workload, { tree: tree.pids, rssBytes: tree.rssBytes });
      phase.detail = `${tree.pids.length} process(es), ${Math.round(tree.rssBytes / 2 ** 20)} MiB resident; ${storage.id} has room under ${root}`;
    });
    const strategy = new StopAndCopy({
      ops: this.ops,
      phases,
      config: this.config,
      steps,
      streamer: this.streamer,
      transports: this.transports,
    });
    // Encrypted: the pages are written on the source and encrypted there before anything goes to the storage
    // node, so no page-server (which would write them in clear there); the data key only travels to the source.
    const dataKey = this.encrypted.dataKey(cp);
    // An incremental guard dump (libs/domain guard-chain.ts): the storage node's page-server links this one's
    // images to the parent's, next to them, and the dump sends only the pages dirtied since the parent's.
    // Encrypted pages are sealed on the source (no page-server): such a dump is always full.
    if (cp.encryption && cp.guardChain?.parentId) cp.guardChain = { depth: 1, trackMem: false };
    const chain = cp.guardChain;
    const parent = chain?.parentId !== undefined ? `../${chain.parentId}` : undefined;
    const { channel, transfer } = await phases.run(view, 'prepare', async () => {
      // CRIU's dump reads the parent's inventory.img (GuardChainSteps); its pages come from the page-server.
      if (parent) await this.chains.parentInventoryToSource(ctx, chain!.parentId!);
      const channel = dataKey ? undefined : await strategy.prepare(ctx, parent);
      if (dataKey) await steps.makeDirs(ctx);
      // A dump writes no cpuinfo.img; the restore, on a node not known yet, checks its CPU against this one.
      const cpu = await this.ops.cpuinfoDump(source, ctx.sourceDir);
      if (cpu.code !== 0) {
        await channel?.close();
        const log = await this.ops.tail(source, `${ctx.sourceDir}/cpuinfo-dump.log`, 100);
        throw new MigrationStepError(
          'prepare',
          criu.explainFailure('cpuinfo dump', source.id, log || cpu.stderr, cpu.code),
          true,
        );
      }
      const transfer = await this.streamer.arm(source, ctx.sourceDir, storage, ctx.destinationDir, {
        exclude: ['./*.log'],
      });
      const files = await this.armFiles(s, dataKey);
      return { channel, transfer: { images: transfer, files } };
    });
    try {
      // A forensic copy leaves the workload where it runs: it is never 'migrating', and CRIU resumes it
      // as soon as its memory is dumped (--leave-running); the freeze is the dump's frozen time only.
      if (!forensic(cp)) await steps.markMigrating(ctx);
      const dumped = await phases.run(view, 'dump', () =>
        channel
          ? strategy.dump(
              ctx,
              channel,
              forensic(cp)
                ? {
                    leaveRunning: true,
                    ...(chain?.trackMem ? { trackMem: true } : {}),
                    ...(parent ? { prev: parent } : {}),
                  }
                : parent
                  ? // A short notice's last checkpoint on the guard chain (guard-restore.ts): CRIU takes a page
                    // from the parent only under --track-mem (its page_in_parent), so both go together.
                    { trackMem: true, prev: parent }
                  : {},
            )
          : this.encrypted.dumpLocal(ctx, forensic(cp)),
      );
      Object.assign(cp, {
        transport: view.transport,
        ...(view.transportRoute ? { transportRoute: view.transportRoute } : {}),
      });
      await phases.run(view, 'transfer', async (phase) => {
        if (dataKey) await this.encrypted.encryptOnSource(s, dataKey);
        // The declared files, copied once the workload is frozen (nothing changes them any more).
        const [r, files] = await Promise.all([transfer.images.start(), transfer.files?.start()]).catch((e: Error) => {
          throw new MigrationStepError('transfer', e.message, false);
        });
        Object.assign(cp.bytes, { images: r.bytes, ...(files ? { files: files.bytes } : {}) });
        cp.sha256 = r.sha256;
        if (dataKey && files) this.encrypted.recordFilesSum(cp, files.sha256);
        phase.detail = `${r.bytes} bytes of image files${dataKey ? ' (encrypted on the source)' : ''}${files ? ` and ${files.bytes} bytes of declared files (${cp.paths!.join(', ')}${dataKey ? ', encrypted by the orchestrator' : ''})` : ''}, sha256 verified on ${storage.id}`;
      });
      await phases.run(view, 'verify', async (phase) => {
        cp.bytes.stored = await sealStoredImages(this.ops, storage, cp.imageDir);
        phase.detail = `images complete in ${cp.imageDir} on ${storage.id} (${cp.bytes.stored} bytes), ${CHECKSUMS} written, synced`;
      });
      await this.commitTake(s);
      await this.recordDumpStats(s, dumped.endNs);
    } finally {
      await Promise.allSettled([transfer.images.cancel(), transfer.files?.cancel()]);
      await channel?.close();
    }
  }

  /**
   * The workload's declared paths as one tar file next to the images; nothing when it declared none. Encrypted
   * checkpoints: the orchestrator encrypts the tar after its guard judged it (the storage node gets ciphertext,
   * no node gets the key for it); its sum joins the images' in the record.
   */
  private async armFiles(s: CheckpointSession, dataKey: string | undefined): Promise<ArmedStream | undefined> {
    const paths = outermostPaths(s.ctx.workload.paths ?? []);
    if (!paths.length) return undefined;
    s.cp.paths = paths;
    return this.streamer.armPipe(s.ctx.source, archivePaths(paths), s.ctx.destination, {
      dir: s.cp.imageDir,
      unpack: storeArchive(),
      what: 'declared files',
      // checked on the way in too: a hostile source fails its checkpoint, not a later restore
      guard: { roots: paths },
      ...(dataKey ? { seal: opensslSeal(dataKey) } : {}),
    });
  }

  /**
   * The declared files from `dir` on `from` back to their paths on the destination, through the orchestrator's
   * guard: from the storage node, or for encrypted ones from the destination's own copy, checked and decrypted.
   */
  private async restoreFiles(s: CheckpointSession, from: NodeRecord, dir: string): Promise<StreamResult> {
    const paths = s.cp.paths!;
    const armed = await this.streamer.armPipe(from, readStoredArchive(dir), s.ctx.destination, {
      dir: s.ctx.destinationDir,
      // the storage node is a node too: the stored tar is checked again on its way out
      unpack: unpackAtRoot(paths),
      what: 'declared files',
      guard: { roots: paths },
    });
    return armed.start();
  }

  /**
   * The commit point of taking: the images are stored and verified, so the frozen source is killed.
   * A forensic copy kills nothing: the workload ran on (CRIU resumed it after the dump) and stays the workload.
   */
  private async commitTake(s: CheckpointSession): Promise<void> {
    if (isContainer(s)) return this.containers.commitTake(s);
    const { cp, ctx, phases, view } = s;
    const { source, workload } = ctx;
    if (forensic(cp)) {
      await phases.run(view, 'commit', (phase) => {
        cp.storedAt = this.clock.now().toISOString();
        phase.detail = `forensic copy stored in ${cp.imageDir} on ${ctx.destination.id}; pid ${workload.pid} runs on, on ${source.id}`;
        return Promise.resolve();
      });
      return;
    }
    await phases.run(view, 'commit', async (phase) => {
      const state = await this.ops.killTree(source, workload.pid);
      if (state !== 'gone')
        throw new Error(`the frozen source pid ${workload.pid} on ${source.id} did not die (state ${state})`);
      workload.state = 'checkpointed';
      workload.updatedAt = this.clock.now().toISOString();
      await saveWorkloadFields(this.workloads, workload, ['state', 'updatedAt']);
      cp.storedAt = this.clock.now().toISOString();
      phase.detail = `source pid ${workload.pid} killed on ${source.id}; the workload is stored in ${cp.imageDir} on ${ctx.destination.id}`;
    });
  }

  /**
   * A record left 'taking' by a dead worker. Past the commit point: finish the commit (true). Possibly frozen
   * (a dump started): undo, as any failure before the commit point (true). Otherwise nothing was frozen:
   * stop a page-server left waiting and start over (false).
   */
  private async resumeTake(s: CheckpointSession): Promise<boolean> {
    const note = `taken over from a worker that stopped during '${s.view.phases.at(-1)?.name ?? 'start'}'`;
    s.cp.notes = [...(s.cp.notes ?? []), note];
    if (ran(s, 'commit')) {
      try {
        await this.commitTake(s);
      } catch (error) {
        await this.undoTake(s, error as Error);
      }
      return true;
    }
    if (ran(s, 'dump')) {
      await this.undoTake(s, new Error(note));
      return true;
    }
    await this.ops.waitCriuIdle(s.ctx.destination, s.ctx.destinationDir, 1_000).catch(() => undefined);
    return false;
  }

  /**
   * A failure before the images were stored for good: the source is resumed (Rollback proves no CRIU runs
   * under it first), the partial images are removed, and the checkpoint failed. A failed commit is not
   * undone (the images are complete): it throws, and the job's next attempt kills the source again.
   */
  private async undoTake(s: CheckpointSession, error: Error): Promise<void> {
    if (isContainer(s)) {
      await this.containers.undoTake(s, error);
      return;
    }
    const { cp, ctx } = s;
    if (ran(s, 'commit') && !committed(s)) throw error;
    if (committed(s)) {
      cp.notes = [...(cp.notes ?? []), `after the commit point: ${error.message}`];
      return;
    }
    if (error instanceof DomainError && error.retryable && !ran(s, 'dump')) throw error;
    const frozen = error instanceof MigrationStepError ? !error.beforeFreeze : ran(s, 'dump');
    cp.error = error.message;
    if (frozen) {
      // Throws when the source cannot be proven safe to resume: the record stays 'taking' for a retry.
      const alive = await new Rollback(this.ops, s.phases, this.workloads, this.config).run(ctx);
      if (!alive)
        cp.error = `workload gone: pid ${ctx.workload.pid} on ${ctx.source.id} exited during the checkpoint; it runs nowhere (${error.message})`;
    } else {
      if (ran(s, 'prepare'))
        await this.ops.waitCriuIdle(ctx.destination, ctx.destinationDir, 1_000).catch(() => undefined);
      // A tree CRIU could not seize because it was exiting is gone, not held by another tracer (as a migration).
      const gone = await exitedInsteadOfHeld(this.ops, ctx, error);
      if (ctx.workload.state === 'migrating' || gone) {
        ctx.workload.state = gone ? 'gone' : 'running';
        await saveWorkloadFields(this.workloads, ctx.workload, ['state']);
      }
      if (gone)
        cp.error = `workload gone: pid ${ctx.workload.pid} on ${ctx.source.id} exited before the checkpoint could take it; nothing was stored and it runs nowhere (${error.message})`;
    }
    // dump.log (source) and page-server.log (storage node) go with the directories removed here and at cleanup.
    await keepJobLogs(
      this.ops,
      s.view,
      cp,
      [
        { node: ctx.source, dir: `${this.config.imageRoot}/${cp.id}` },
        { node: ctx.destination, dir: cp.imageDir },
      ],
      this.config.imageRoot,
    );
    // Partial images are no checkpoint: nothing may later restore them next to the resumed source.
    await this.ops.removeDir(ctx.destination, cp.imageDir);
  }

  private async finishTake(s: CheckpointSession, workDir: string, lock: NodeLock): Promise<CheckpointRecord> {
    await this.cleanup(s, s.ctx.source, workDir);
    // Free before the record says the take ended: the guard pass starts the workload's next take as soon as this
    // one reads stored, and found the lock still held in the qemu lab ("another session holds ...": failed).
    await lock.release();
    return this.end(s.cp, committed(s) ? 'stored' : 'failed');
  }

  private async restoreSteps(s: CheckpointSession, workDir: string): Promise<void> {
    const { cp, ctx, phases, view, steps } = s;
    const { source: storage, destination } = ctx;
    const request = cp.restore!;
    let dataKey: string | undefined;
    let ancestors: CheckpointRecord[] = [];
    await phases.run(view, 'preflight', async (phase) => {
      // First: a key that cannot open the checkpoint fails before anything runs on any node.
      dataKey = this.encrypted.restoreKey(cp);
      // A guard-restore's rollback goes back to its source under notice (CheckpointsService.restore decided it).
      if (!request.rollback) checkDestinationState(destination);
      // The images were written by the source's CRIU; the destination's must not be older.
      checkCriuVersions(
        { ...destination, id: cp.sourceNodeId, probe: { ...destination.probe!, criuVersion: cp.criuVersion ?? '' } },
        destination,
      );
      const criuCheck = await checkDestinationResources(
        this.ops,
        ctx,
        { pids: cp.tree ?? [], rssBytes: cp.rssBytes ?? 0 },
        this.config,
        this.clock.now(),
      );
      ancestors = await this.chains.storedChain(cp);
      for (const a of [cp, ...ancestors]) await checkStoredImages(this.ops, storage, a.imageDir);
      await checkCpuFromImages(this.ops, storage, cp.imageDir, destination, `${workDir}/cpuinfo`);
      phase.detail = `${criuCheck}; the images on ${storage.id} match ${CHECKSUMS}`;
    });
    await phases.run(view, 'transfer', async (phase) => {
      await this.ops.makeDir(destination, ctx.destinationDir);
      // An incremental guard checkpoint's parents go next to its images, where its `parent` links point.
      const chainBytes = await this.chains.copyChain(ancestors, storage, destination, workDir);
      // Declared files encrypted with the images travel with them, to be checked and decrypted there first.
      const sealedFiles = cp.paths?.length && this.encrypted.filesEncrypted(cp);
      const broke = (e: Error) => {
        throw new MigrationStepError('transfer', e.message, true);
      };
      const [r, plainFiles] = await Promise.all([
        this.streamer.copy(storage, cp.imageDir, destination, ctx.destinationDir, {
          exclude: sealedFiles
            ? IMAGE_COPY_EXCLUDES.filter((x) => x !== `./${CHECKPOINT_FILES_TAR}`)
            : [...IMAGE_COPY_EXCLUDES],
        }),
        // The declared files go back to their paths on the destination before the tree that opens them.
        cp.paths?.length && !sealedFiles ? this.restoreFiles(s, storage, cp.imageDir) : undefined,
      ]).catch(broke);
      request.imageBytes = r.bytes + chainBytes;
      if (dataKey) await this.encrypted.decryptOnDestination(s, dataKey);
      const files = sealedFiles ? await this.restoreFiles(s, destination, ctx.destinationDir).catch(broke) : plainFiles;
      phase.detail = `${r.bytes} bytes of images${files ? ` and ${cp.paths!.join(', ')} (${files.bytes} bytes)` : ''} from ${storage.id}, sha256 verified on ${destination.id}${dataKey ? ', checked against the sums recorded at the take and decrypted there' : ''}`;
    });
    const resumedNs = await phases.run(view, 'restore', () => steps.restore(ctx));
    request.resumedAt = new Date(Number(resumedNs / 1_000_000n)).toISOString();
    await phases.run(view, 'verify', () => steps.verify(ctx, cp.tree?.length ?? 1));
    await this.commitRestore(s);
    const stats = await this.readStats(destination, `${ctx.destinationDir}/stats-restore`, criu.parseRestore, cp);
    if (stats) request.criu = stats;
  }

  /**
   * The restored tree runs verified: the workload lives on the destination now. A forensic checkpoint's
   * restore is a clone: the workload record (the original, still running) is left as it is. A guard
   * checkpoint restored for its lost node (`restore.takeover`) moves the workload, as a storage one does.
   */
  private async commitRestore(s: CheckpointSession): Promise<void> {
    if (isContainer(s)) return this.containers.commitRestore(s);
    const { cp, ctx, phases, view } = s;
    const { workload, destination } = ctx;
    await phases.run(view, 'commit', async (phase) => {
      const pid = cp.restore?.restoredPid;
      if (!pid) throw new Error('no restored pid was recorded');
      // A guard checkpoint restored for a lost node (fenced first) is the workload again, not a clone.
      if (forensic(cp) && !cp.restore?.takeover) {
        cp.restore!.clone = true;
        phase.detail = `clone of a forensic copy runs as pid ${pid} on ${destination.id}; workload '${workload.id}' itself is unchanged (pid ${workload.pid} on ${workload.nodeId})`;
        return;
      }
      Object.assign(workload, {
        nodeId: destination.id,
        pid,
        state: 'running',
        updatedAt: this.clock.now().toISOString(),
      });
      setIdentity(workload, ctx.restoredIdentity);
      await saveWorkloadFields(this.workloads, workload, ['nodeId', 'pid', 'state', 'updatedAt', 'identity']);
      phase.detail = `workload runs as pid ${pid} on ${destination.id}`;
    });
  }

  /**
   * Before the restore's commit point: whatever CRIU restored on the destination is killed (after CRIU
   * ended there), so the images stay the only copy. When that cannot be proven this throws and the
   * checkpoint stays 'restoring' for the job's next attempt.
   */
  private async undoRestore(s: CheckpointSession, error: Error): Promise<void> {
    const { cp, ctx } = s;
    const request = cp.restore!;
    if (ran(s, 'commit')) throw error;
    request.error = error.message;
    if (!ran(s, 'restore')) return;
    const idle = await this.ops.waitCriuIdle(
      ctx.destination,
      ctx.destinationDir,
      this.config.criuIdleTimeoutMs ?? 300_000,
    );
    if (!idle.idle) throw new Error(`criu is still running on ${ctx.destination.id} (pids ${idle.pids.join(' ')})`);
    const pid =
      request.restoredPid ?? (await this.ops.readPidfile(ctx.destination, `${ctx.destinationDir}/restored.pid`));
    if (pid) {
      const state = await this.ops.killTree(ctx.destination, pid);
      if (state !== 'gone')
        throw new Error(`restored pid ${pid} on ${ctx.destination.id} did not die (state ${state})`);
      request.error = `${error.message}; restored pid ${pid} on ${ctx.destination.id} killed`;
      delete request.restoredPid;
    }
  }

  /** CRIU's stats-dump (streamed with the images); the freeze start from it. Never throws: after the commit. */
  private async recordDumpStats(s: CheckpointSession, dumpEndNs: bigint): Promise<void> {
    const { cp, ctx } = s;
    const dump = await this.readStats(ctx.destination, `${cp.imageDir}/stats-dump`, criu.parseDump, cp);
    if (!dump) return;
    cp.criu.dump = dump;
    cp.bytes.pages = dump.pagesWritten * 4096;
    cp.frozenAt = new Date(Number(s.steps.frozenAtFromDump(dumpEndNs, dump) / 1_000_000n)).toISOString();
  }

  private async readStats<T>(
    node: NodeRecord,
    path: string,
    parse: (b: Uint8Array) => T,
    cp: CheckpointRecord,
  ): Promise<T | undefined> {
    try {
      const img = await this.ops.readFile(node, path);
      if (img) return parse(img);
      cp.notes = [...(cp.notes ?? []), `${path} is missing on ${node.id}`];
    } catch (error) {
      cp.notes = [...(cp.notes ?? []), `${path} on ${node.id} is unreadable: ${(error as Error).message}`];
    }
    return undefined;
  }

  /** The working directory under the image root (cpuinfo check, a restore's images); never the stored images. */
  private async cleanup(s: CheckpointSession, node: NodeRecord, workDir: string): Promise<void> {
    await s.phases
      .run(s.view, 'cleanup', async (phase) => {
        const removed = await this.ops.removeDir(node, workDir);
        phase.detail = removed ? `${workDir} removed on ${node.id}` : `${workDir} could not be removed on ${node.id}`;
        if (!removed) throw new Error(phase.detail);
      })
      .catch(() => undefined);
  }

  private session(
    cp: CheckpointRecord,
    part: 'take' | 'restore',
    workload: WorkloadRecord,
    source: NodeRecord,
    destination: NodeRecord,
    sourceDir: string,
    destinationDir: string,
    id: string,
  ): CheckpointSession {
    const view: MigrationRecord = {
      id,
      workloadId: cp.workloadId,
      sourceNodeId: source.id,
      destinationNodeId: destination.id,
      destinationReason: part === 'take' ? 'storage node' : cp.restore!.destinationReason,
      strategy: 'stop-and-copy',
      transport: cp.transport ?? 'tcp',
      state: 'running',
      // The same array: phases recorded on the view are the checkpoint's.
      phases: part === 'take' ? cp.phases : cp.restore!.phases,
      criu: {},
      bytes: { pages: 0, images: 0 },
      ...(part === 'restore' && cp.restore?.restoredPid ? { restoredPid: cp.restore.restoredPid } : {}),
      createdAt: cp.createdAt,
      updatedAt: cp.updatedAt,
    };
    const phases = new PhaseRecorder(new CheckpointLog(this.checkpoints, cp, part), this.clock);
    const steps = new MigrationSteps(this.ops, phases, this.workloads, this.clock, this.config);
    const ctx: MigrationContext = { migration: view, workload, source, destination, sourceDir, destinationDir };
    return { cp, ctx, view, phases, steps };
  }

  private async load(id: string): Promise<CheckpointRecord> {
    const cp = await this.checkpoints.get(id);
    if (!cp) throw new NotFoundError('checkpoint', id);
    return cp;
  }

  private async end(cp: CheckpointRecord, state: CheckpointRecord['state'], error?: string): Promise<CheckpointRecord> {
    cp.state = state;
    if (error) cp.error = error;
    cp.updatedAt = this.clock.now().toISOString();
    await this.checkpoints.save(cp);
    return cp;
  }
}
