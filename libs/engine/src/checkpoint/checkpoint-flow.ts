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
import { type ArmedStream, type DirectoryStreamer } from '@spotlift/transport';
import type { Clock } from '../clock.js';
import * as criu from '../node-ops/process/criu-commands.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from '../engine.types.js';
import { keepJobLogs } from '../failed-job-logs.js';
import {
  archivePaths,
  CHECKPOINT_FILES_TAR,
  outermostPaths,
  readStoredArchive,
  storeArchive,
  unpackAtRoot,
} from '../node-ops/file-sync-commands.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import { PodmanOps } from '../node-ops/podman/podman-ops.js';
import { PhaseRecorder, closeInterruptedPhases } from '../phase-recorder.js';
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
import { newDataKey, openDataKey, parseSums } from './checkpoint-crypto.js';
import { ContainerCheckpoints } from './container-checkpoints.js';

/** One run of the shared steps on a checkpoint (taking it, or one restore of it). */
interface Session {
  cp: CheckpointRecord;
  ctx: MigrationContext;
  /** The migration-shaped record the shared steps work on (see CheckpointLog). */
  view: MigrationRecord;
  phases: PhaseRecorder;
  steps: MigrationSteps;
}

const ran = (s: Session, name: string) => s.view.phases.some((p) => p.name === name);
/** The commit phase ended well: the end state follows once cleanup is done, so readers never see it early. */
const committed = (s: Session) => s.view.phases.some((p) => p.name === 'commit' && p.ok);
// Forensic and guard copies: the workload runs on after the dump (libs/domain checkpoint.ts).
const forensic = (cp: CheckpointRecord) => leavesRunning(cp);
/** A Podman container's checkpoint: its steps are ContainerCheckpoints' (the states and commit points are these). */
const isContainer = (s: Session) => s.cp.kind === 'podman' || s.ctx.workload.kind === 'podman';

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
      if (cp.state === 'taking' && (await this.resumeTake(s))) return await this.finishTake(s, workDir);
      cp.state = 'taking';
      // Encrypted at rest when the orchestrator holds a key (containers: Podman writes their archive, not yet).
      if (this.config.checkpointKey && !isContainer(s) && !cp.encryption) {
        cp.encryption = newDataKey(this.config.checkpointKey).encryption;
      }
      await s.phases.save(s.view);
      try {
        await this.takeSteps(s);
      } catch (error) {
        await this.undoTake(s, error as Error);
      }
      return await this.finishTake(s, workDir);
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

  private async takeSteps(s: Session): Promise<void> {
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
    const dataKey = cp.encryption && openDataKey(this.config.checkpointKey, cp.encryption, `checkpoint '${cp.id}'`);
    // An incremental guard dump (libs/domain guard-chain.ts): the storage node's page-server links this one's
    // images to the parent's, next to them, and the dump sends only the pages dirtied since the parent's.
    // Encrypted pages are sealed on the source (no page-server): such a dump is always full.
    if (cp.encryption && cp.guardChain?.parentId) cp.guardChain = { depth: 1, trackMem: false };
    const chain = cp.guardChain;
    const parent = chain?.parentId !== undefined ? `../${chain.parentId}` : undefined;
    const { channel, transfer } = await phases.run(view, 'prepare', async () => {
      // The source keeps no images between guard dumps, but CRIU's dump reads the parent's inventory.img where
      // --prev-images-dir points (its pid-reuse check; without it the dump fails, seen in the qemu lab): it comes
      // back from the storage node. The parent's pages are asked of the page-server there.
      if (parent) await this.parentInventoryToSource(ctx, chain!.parentId!);
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
      const files = await this.armFiles(s);
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
          : this.dumpLocal(ctx, forensic(cp)),
      );
      Object.assign(cp, {
        transport: view.transport,
        ...(view.transportRoute ? { transportRoute: view.transportRoute } : {}),
      });
      await phases.run(view, 'transfer', async (phase) => {
        if (dataKey) await this.encryptOnSource(s, dataKey);
        // The declared files, copied once the workload is frozen (nothing changes them any more).
        const [r, files] = await Promise.all([transfer.images.start(), transfer.files?.start()]).catch((e: Error) => {
          throw new MigrationStepError('transfer', e.message, false);
        });
        Object.assign(cp.bytes, { images: r.bytes, ...(files ? { files: files.bytes } : {}) });
        cp.sha256 = r.sha256;
        phase.detail = `${r.bytes} bytes of image files${dataKey ? ' (encrypted on the source)' : ''}${files ? ` and ${files.bytes} bytes of declared files (${cp.paths!.join(', ')})` : ''}, sha256 verified on ${storage.id}`;
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

  /** The freezing dump with its pages written on the source (an encrypted checkpoint's); node-side times. */
  private async dumpLocal(ctx: MigrationContext, leaveRunning: boolean): Promise<{ startNs?: bigint; endNs: bigint }> {
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
  private async encryptOnSource(s: Session, dataKey: string): Promise<void> {
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

  /** The workload's declared paths as one tar file next to the images; nothing when it declared none. */
  private async armFiles(s: Session): Promise<ArmedStream | undefined> {
    const paths = outermostPaths(s.ctx.workload.paths ?? []);
    if (!paths.length) return undefined;
    s.cp.paths = paths;
    return this.streamer.armPipe(s.ctx.source, archivePaths(paths), s.ctx.destination, {
      dir: s.cp.imageDir,
      unpack: storeArchive(),
      what: 'declared files',
      // checked on the way in too: a hostile source fails its checkpoint, not a later restore
      guard: { roots: paths },
    });
  }

  /**
   * The commit point of taking: the images are stored and verified, so the frozen source is killed.
   * A forensic copy kills nothing: the workload ran on (CRIU resumed it after the dump) and stays the workload.
   */
  private async commitTake(s: Session): Promise<void> {
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
  private async resumeTake(s: Session): Promise<boolean> {
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
  private async undoTake(s: Session, error: Error): Promise<void> {
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
      if (ctx.workload.state === 'migrating') {
        ctx.workload.state = 'running';
        await saveWorkloadFields(this.workloads, ctx.workload, ['state']);
      }
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

  private async finishTake(s: Session, workDir: string): Promise<CheckpointRecord> {
    await this.cleanup(s, s.ctx.source, workDir);
    return this.end(s.cp, committed(s) ? 'stored' : 'failed');
  }

  private async restoreSteps(s: Session, workDir: string): Promise<void> {
    const { cp, ctx, phases, view, steps } = s;
    const { source: storage, destination } = ctx;
    const request = cp.restore!;
    let dataKey: string | undefined;
    let ancestors: CheckpointRecord[] = [];
    await phases.run(view, 'preflight', async (phase) => {
      // First: a key that cannot open the checkpoint fails before anything runs on any node.
      if (cp.encryption) {
        dataKey = openDataKey(this.config.checkpointKey, cp.encryption, `checkpoint '${cp.id}'`);
        if (!cp.encryption.sums) throw new Error(`checkpoint '${cp.id}' is encrypted but has no recorded checksums`);
      }
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
      ancestors = await this.storedChain(cp);
      for (const a of [cp, ...ancestors]) await checkStoredImages(this.ops, storage, a.imageDir);
      await checkCpuFromImages(this.ops, storage, cp.imageDir, destination, `${workDir}/cpuinfo`);
      phase.detail = `${criuCheck}; the images on ${storage.id} match ${CHECKSUMS}`;
    });
    await phases.run(view, 'transfer', async (phase) => {
      await this.ops.makeDir(destination, ctx.destinationDir);
      // An incremental guard checkpoint's parents go next to its images, where its `parent` links point
      // (`../<id>`): CRIU's restore reads each page from the newest image in the chain that has it.
      let chainBytes = 0;
      for (const a of ancestors) {
        const dir = `${workDir}/${a.id}`;
        await this.ops.makeDir(destination, dir);
        const r = await this.streamer
          .copy(storage, a.imageDir, destination, dir, {
            exclude: ['./*.log', `./${CHECKSUMS}`, `./${CHECKPOINT_FILES_TAR}`],
          })
          .catch((e: Error) => {
            throw new MigrationStepError('transfer', e.message, true);
          });
        chainBytes += r.bytes;
      }
      const [r, files] = await Promise.all([
        this.streamer.copy(storage, cp.imageDir, destination, ctx.destinationDir, {
          exclude: ['./*.log', `./${CHECKSUMS}`, `./${CHECKPOINT_FILES_TAR}`],
        }),
        // The declared files go back to their paths on the destination before the tree that opens them.
        cp.paths?.length
          ? this.streamer
              .armPipe(storage, readStoredArchive(cp.imageDir), destination, {
                dir: ctx.destinationDir,
                // the storage node is a node too: the stored tar is checked again on its way out
                unpack: unpackAtRoot(cp.paths),
                what: 'declared files',
                guard: { roots: cp.paths },
              })
              .then((armed) => armed.start())
          : undefined,
      ]).catch((e: Error) => {
        throw new MigrationStepError('transfer', e.message, true);
      });
      request.imageBytes = r.bytes + chainBytes;
      if (dataKey) await this.decryptOnDestination(s, dataKey);
      phase.detail = `${r.bytes} bytes of images${files ? ` and ${cp.paths!.join(', ')} (${files.bytes} bytes)` : ''} from ${storage.id}, sha256 verified on ${destination.id}${dataKey ? ', checked against the sums recorded at the take and decrypted there' : ''}`;
    });
    const resumedNs = await phases.run(view, 'restore', () => steps.restore(ctx));
    request.resumedAt = new Date(Number(resumedNs / 1_000_000n)).toISOString();
    await phases.run(view, 'verify', () => steps.verify(ctx, cp.tree?.length ?? 1));
    await this.commitRestore(s);
    const stats = await this.readStats(destination, `${ctx.destinationDir}/stats-restore`, criu.parseRestore, cp);
    if (stats) request.criu = stats;
  }

  private async parentInventoryToSource(ctx: MigrationContext, parentId: string): Promise<void> {
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
  private async storedChain(cp: CheckpointRecord): Promise<CheckpointRecord[]> {
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
   * The copied images checked against the ciphertext sums the source reported (the storage node cannot change
   * those: they are in the record), then decrypted in place on the destination. A mismatch decrypts nothing.
   */
  private async decryptOnDestination(s: Session, dataKey: string): Promise<void> {
    const { destination, destinationDir, source: storage } = s.ctx;
    const res = await this.ops.decryptImages(destination, destinationDir, dataKey, s.cp.encryption!.sums!);
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

  /**
   * The restored tree runs verified: the workload lives on the destination now. A forensic checkpoint's
   * restore is a clone: the workload record (the original, still running) is left as it is. A guard
   * checkpoint restored for its lost node (`restore.takeover`) moves the workload, as a storage one does.
   */
  private async commitRestore(s: Session): Promise<void> {
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
  private async undoRestore(s: Session, error: Error): Promise<void> {
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
  private async recordDumpStats(s: Session, dumpEndNs: bigint): Promise<void> {
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
  private async cleanup(s: Session, node: NodeRecord, workDir: string): Promise<void> {
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
  ): Session {
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
