import type { PhaseRecord } from '@spotlift/domain';
import type { WorkloadRepository } from '@spotlift/store';
import type { ArmedStream } from '@spotlift/transport';
import type { Clock } from '../clock.js';
import { type EngineConfig, type MigrationContext, MigrationStepError } from '../engine.types.js';
import type { WorkloadFiles } from '../files/workload-files.js';
import type { ArmedCommand, NodeOps } from '../node-ops/node-ops.js';
import type { CheckpointOutcome, PodmanOps } from '../node-ops/podman/podman-ops.js';
import type { PhaseRecorder } from '../phase-recorder.js';
import { type ContainerInspection, movable } from '../podman/inspect.js';
import { type PodmanRestoreStats, parsePodmanRestoreStats, statsOf } from '../podman/stats.js';
import type { MigrationSteps } from '../steps/migration-steps.js';
import { checkDestinationState } from '../steps/preflight-checks.js';
import { refuseStaleRun, saveWorkloadFields } from '../workload-writes.js';
import type { PageTransports } from '../transports/page-transports.js';
import { type ContainerRoute, openContainerRoute } from './container-route.js';

export interface ContainerDeps {
  ops: NodeOps;
  podman: PodmanOps;
  phases: PhaseRecorder;
  config: EngineConfig;
  steps: MigrationSteps;
  workloads: WorkloadRepository;
  clock: Clock;
  transports: PageTransports;
  files?: WorkloadFiles;
}

/** The strategies a container can be moved with, and why the others cannot (recorded, and a 400 at the API). */
export const CONTAINER_STRATEGIES = ['stop-and-copy', 'pre-copy', 'auto'] as const;
export const CONTAINER_LIVE_UNAVAILABLE =
  "containers move by stop-and-copy or pre-copy: Podman 4.3's `container checkpoint` has no lazy-pages (post-copy) option, so post-copy and hybrid are not available for containers";

/** The container's id: what every Podman command of a move names (its name may be taken on the destination). */
export function containerId(ctx: MigrationContext): string {
  const id = ctx.workload.container;
  if (!id) throw new MigrationStepError('preflight', `workload '${ctx.workload.id}' names no container`, true);
  return id;
}

/**
 * Stop-and-copy of a Podman container (kind `podman`): the image is sent first when the destination lacks it,
 * then `checkpoint --export` streams the archive (named volumes inside) straight into a file on the
 * destination, `restore --import` runs there (armed before the freeze), and only a container that runs there
 * lets the source's be removed (the commit point). Anything failing after the freeze rolls back
 * (ContainerRollback): the destination's copy removed by id, the source restored from the checkpoint Podman kept.
 */
export class ContainerStopAndCopy {
  readonly name = 'stop-and-copy' as const;

  constructor(protected readonly d: ContainerDeps) {}

  async run(ctx: MigrationContext): Promise<void> {
    const { migration } = ctx;
    const { phases, podman, config } = this.d;
    const requested = migration.requestedStrategy ?? migration.strategy;
    if (!(CONTAINER_STRATEGIES as readonly string[]).includes(requested)) {
      throw new MigrationStepError(
        'preflight',
        `strategy '${requested}' is not available: ${CONTAINER_LIVE_UNAVAILABLE}`,
        true,
      );
    }
    if (requested === 'auto') {
      migration.requestedStrategy = 'auto';
      migration.strategyReason = CONTAINER_LIVE_UNAVAILABLE;
    }
    migration.strategy = 'stop-and-copy';
    const id = containerId(ctx);
    const archive = `${ctx.destinationDir}/checkpoint.tar`;
    const c = await phases.run(migration, 'preflight', (phase) => this.preflight(ctx, id, phase));
    let route: ContainerRoute | undefined;
    const armed = await phases.run(migration, 'prepare', async (phase) => {
      await this.d.steps.makeDirs(ctx);
      route = await openContainerRoute(ctx, this.d.transports, podman, this.d.steps.pickPort(), config.criuTimeoutMs);
      try {
        const image = await this.sendImage(ctx, c, route);
        const armed = await this.armFreeze(ctx, id, archive, route, 'final');
        migration.container = { ...migration.container!, route: route.record };
        phase.detail = `${image}; ${route.record}`;
        return armed;
      } catch (error) {
        await route.close();
        throw error;
      }
    });
    await this.freezeAndMove(ctx, id, armed, route!);
  }

  /**
   * The freeze window's two commands, both with their channels open before it (as the process path's): the
   * checkpoint streamed into `archive` and `restore --import` of it (with `previous` after a pre-checkpoint).
   */
  protected async armFreeze(
    ctx: MigrationContext,
    id: string,
    archive: string,
    route: ContainerRoute,
    round: 'final' | 'with-previous',
    previous?: string,
  ): Promise<{ checkpoint: ArmedStream; restore: ArmedCommand }> {
    const { podman, config } = this.d;
    const checkpoint = await this.armCheckpoint(ctx, id, archive, route, round);
    const restore = await podman
      .armRestoreImport(ctx.destination, archive, config.criuTimeoutMs, previous)
      .catch(async (e: unknown) => {
        await checkpoint.cancel();
        throw e;
      });
    return { checkpoint, restore };
  }

  /**
   * From the freeze on, the one sequence of both container strategies: the declared files, `migrating`, the
   * checkpoint (a direct stream that failed is reported to the route), the files' last changes, restore,
   * verify, commit, stats; whatever happens, the armed commands and the route are closed.
   */
  protected async freezeAndMove(
    ctx: MigrationContext,
    id: string,
    armed: { checkpoint: ArmedStream; restore: ArmedCommand },
    route: ContainerRoute,
  ): Promise<void> {
    const { migration } = ctx;
    const { phases } = this.d;
    const { checkpoint, restore } = armed;
    let filesArmed: ArmedStream | undefined;
    try {
      await this.d.files?.presync(ctx);
      filesArmed = await this.d.files?.armFinal(ctx);
      await this.d.steps.markMigrating(ctx);
      const sent = await phases
        .run(migration, 'dump', (phase) => this.checkpoint(ctx, checkpoint, phase))
        .catch((error: Error) => {
          if (route.direct) route.failed(error);
          throw error;
        });
      // The declared paths' last changes (bind mounts), next to the archive; nothing when none were declared.
      if (filesArmed && migration.files?.synced.length) {
        const files = filesArmed;
        await phases.run(migration, 'transfer', async (phase) => {
          const r = await this.d.files!.final(ctx, files);
          phase.detail = r ? `files: ${r.sent} entries, ${r.bytes} bytes, ${r.deleted} removed` : 'no files';
        });
      }
      const restored = await phases.run(migration, 'restore', () => this.restore(ctx, restore));
      await phases.run(migration, 'verify', () => this.verify(ctx, id));
      // The figures are known once restore returned: on the record before the commit, whose phase saves it, so
      // a commit that fails and is finished by recovery on a later attempt (which runs only the commit) keeps them.
      this.recordStats(ctx, id, sent.outcome, restored);
      // pre-copy: what the freeze wrote after the round, next to what the round predicted
      if (migration.precopy && migration.criu.dump) {
        migration.precopy = { ...migration.precopy, finalPagesWritten: migration.criu.dump.pagesWritten };
      }
      await this.commit(ctx);
    } finally {
      await Promise.allSettled([checkpoint.cancel(), restore.cancel(), filesArmed?.cancel(), route.close()]);
    }
  }

  /**
   * The checkpoint's stream, armed: node to node when the route allows it and its listener comes up, else
   * (before any freeze, so nothing is lost) relayed by the orchestrator, the reason recorded. `dir` is where
   * Podman leaves its stats and log on the source (a pre-checkpoint round's own directory).
   */
  protected async armCheckpoint(
    ctx: MigrationContext,
    id: string,
    archive: string,
    route: ContainerRoute,
    round: 'final' | 'pre' | 'with-previous' = 'final',
    dir = ctx.sourceDir,
  ) {
    const { source, destination } = ctx;
    const arm = () =>
      this.d.podman.armCheckpoint(
        source,
        dir,
        id,
        destination,
        archive,
        this.d.config.criuTimeoutMs,
        round,
        route.direct,
      );
    if (!route.direct) return arm();
    try {
      return await arm();
    } catch (error) {
      route.fallBack(`arming the archive's listener: ${(error as Error).message}`);
      return arm();
    }
  }

  /**
   * Everything checkable without touching the container: the destination's state, the container still running
   * and movable on the source, podman + runc + criu on the destination, its id and name and published ports
   * free there, and memory for it. Reads the main pid and RSS again.
   */
  protected async preflight(ctx: MigrationContext, id: string, phase: PhaseRecord): Promise<ContainerInspection> {
    const { source, destination, workload } = ctx;
    const { podman, ops } = this.d;
    const refuse = (why: string): never => {
      throw new MigrationStepError('preflight', why, true);
    };
    checkDestinationState(destination);
    const c = await podman.inspect(source, id);
    if (!c) refuse(`container ${id.slice(0, 12)} is gone from ${source.id}`);
    ctx.migration.container = { image: { ...c!.image, sent: false } };
    const verdict = movable(c!);
    if (!verdict.movable) refuse(verdict.refusals.map((r) => r.message).join('; '));
    const volumes = c!.volumes.map((v) => v.name);
    const [runtime, sameId, sameName, ports, tree, present] = await Promise.all([
      podman.runtimeProblem(destination),
      podman.inspect(destination, id),
      podman.inspect(destination, c!.name),
      podman.portsInUse(
        destination,
        c!.ports.map((p) => p.hostPort),
      ),
      ops.inspectTree(source, c!.mainPid!),
      podman.volumesPresent(destination, volumes),
    ]);
    if (runtime) refuse(`the destination cannot restore containers: ${runtime}`);
    if (sameId) refuse(`${destination.id} already has container ${id.slice(0, 12)} (${sameId.state})`);
    if (sameName) refuse(`the name ${c!.name} is taken on ${destination.id} (container ${sameName.id.slice(0, 12)})`);
    if (ports.length) refuse(`published port(s) ${ports.join(', ')} are in use on ${destination.id}`);
    // Podman's archive carries the named volumes' data, and restore --import refuses to overwrite a volume.
    if (present.length) refuse(`${destination.id} already has volume(s) ${present.join(', ')}`);
    ctx.migration.container = { ...ctx.migration.container, volumes };
    const rss = tree?.rssBytes ?? workload.rssBytes ?? 0;
    const need = Math.ceil(rss * (1 + this.d.config.memoryHeadroom));
    const free = await ops.memAvailableBytes(destination, 15_000);
    if (free === undefined) refuse(`${destination.id} did not say how much memory it has free`);
    if (free! < need) refuse(`${destination.id} has ${free} bytes of memory free, the container needs ${need}`);
    const files = await this.d.files?.check(ctx);
    if (workload.pid !== c!.mainPid) {
      // A container Podman restarted since it was registered has another main pid. The stored record must say so
      // before the freeze: the commit's and the rollback's stale-run check compare it with this run's copy, and
      // would otherwise take the difference for a move by another worker (commit refused, source left stopped).
      workload.pid = c!.mainPid!;
      await saveWorkloadFields(this.d.workloads, workload, ['pid']);
    }
    if (tree) Object.assign(workload, { tree: tree.pids, rssBytes: tree.rssBytes });
    phase.detail = `container ${c!.name} (${id.slice(0, 12)}) running as pid ${c!.mainPid}, ${rss} bytes; ${destination.id} runs runc with criu, name and ports free, ${free} bytes free${files ? `; ${files}` : ''}`;
    return c!;
  }

  /**
   * `podman image save | load` when the destination lacks the image (by id), before any freeze; a direct
   * route that fails is given up for the orchestrator relay (the reason recorded) and the image sent again.
   */
  protected async sendImage(ctx: MigrationContext, c: ContainerInspection, route: ContainerRoute): Promise<string> {
    const { source, destination, migration } = ctx;
    const image = { name: c.image.name, id: c.image.id };
    if (await this.d.podman.hasImage(destination, image.id)) {
      migration.container = { ...migration.container!, image: { ...image, sent: false } };
      return `${destination.id} has image ${image.name}`;
    }
    try {
      const send = () =>
        this.d.podman.sendImage(source, destination, image.name || image.id, ctx.destinationDir, route.direct);
      const r = await send().catch((error: Error) => {
        if (!route.direct) throw error;
        route.fallBack(`sending the image: ${error.message}`);
        return send();
      });
      migration.container = {
        ...migration.container!,
        image: { ...image, sent: true, bytes: r.bytes, durationMs: Math.round(r.durationMs) },
      };
      return `image ${image.name} sent to ${destination.id}: ${r.bytes} bytes in ${Math.round(r.durationMs)} ms, sha256 verified`;
    } catch (error) {
      throw new MigrationStepError(
        'prepare',
        `sending image ${image.name} to ${destination.id} failed: ${(error as Error).message}`,
        true,
      );
    }
  }

  /** The freeze: the checkpoint streamed into the destination's archive file. */
  protected async checkpoint(ctx: MigrationContext, armed: ArmedStream, phase: PhaseRecord) {
    const { source, destination, migration } = ctx;
    let failure: Error | undefined;
    const sent = await armed.start().catch((e: Error) => {
      failure = e;
      return undefined;
    });
    const outcome = await this.d.podman.checkpointOutcome(source, ctx.sourceDir);
    if (!sent) {
      const log = outcome.log.trim() ? `; podman's log: ${outcome.log.trim().slice(-600)}` : '';
      throw new MigrationStepError(
        'dump',
        `checkpoint of the container on ${source.id} failed: ${failure!.message}${log}`,
        false,
      );
    }
    migration.bytes.images = sent.bytes;
    migration.container = { ...migration.container!, archiveBytes: sent.bytes };
    phase.detail = `podman container checkpoint --export streamed to ${destination.id} (${migration.container?.route?.split(':')[0] ?? 'relay'}): ${sent.bytes} bytes, sha256 verified`;
    return { sent, outcome };
  }

  protected async restore(ctx: MigrationContext, armed: ArmedCommand) {
    const res = await armed.fire();
    if (res.code !== 0 || res.endNs === undefined) {
      throw new MigrationStepError(
        'restore',
        `podman container restore --import on ${ctx.destination.id} failed (${res.code}): ${res.stderr.trim().slice(-600)}`,
        false,
      );
    }
    let stats: PodmanRestoreStats | undefined;
    try {
      stats = parsePodmanRestoreStats(res.stdout.replace(/^SPOTLIFT_TIMES .*$/m, ''));
    } catch (error) {
      (ctx.migration.notes ??= []).push(`restore stats unreadable: ${(error as Error).message}`);
    }
    return { endNs: res.endNs, stats };
  }

  /** The restored container runs on the destination (asked of the destination's own Podman, by id). */
  async verify(ctx: MigrationContext, id: string): Promise<void> {
    const c = await this.d.podman.inspect(ctx.destination, id);
    if (!c?.running || c.mainPid === undefined) {
      throw new MigrationStepError(
        'verify',
        `the restored container ${id.slice(0, 12)} does not run on ${ctx.destination.id} (${c ? c.rawState : 'unknown to Podman'})`,
        false,
      );
    }
    ctx.migration.restoredPid = c.mainPid;
  }

  /**
   * The commit point: the container runs verified on the destination, so the source's (checkpointed, exited)
   * container is removed, by id, from the source's Podman. Idempotent: a record already naming the destination
   * means it happened.
   */
  async commit(ctx: MigrationContext): Promise<void> {
    const { migration, workload, source, destination } = ctx;
    const id = containerId(ctx);
    await this.d.phases.run(migration, 'commit', async (phase) => {
      if (workload.nodeId === destination.id) {
        phase.detail = `already committed: the container runs on ${destination.id}; nothing removed`;
        return;
      }
      if (workload.nodeId !== source.id) {
        throw new Error(
          `the workload record names node '${workload.nodeId}', not the source '${source.id}': nothing removed`,
        );
      }
      // The stored record, read afresh: this run's copy may predate a move another worker committed.
      await refuseStaleRun(this.d.workloads, ctx, 'commits nothing (nothing removed)');
      if (!(await this.d.podman.remove(source, id))) {
        throw new Error(`the source's container ${id.slice(0, 12)} on ${source.id} could not be removed`);
      }
      // Its named volumes moved inside the archive: the source's copies are stale (and would block a move back).
      const volumes = migration.container?.volumes ?? [];
      if (!(await this.d.podman.removeVolumes(source, volumes))) {
        (migration.notes ??= []).push(`volume(s) ${volumes.join(', ')} could not be removed on ${source.id}`);
      }
      const pid = migration.restoredPid ?? workload.pid;
      const tree = await this.d.ops.inspectTree(destination, pid).catch(() => undefined);
      workload.nodeId = destination.id;
      workload.pid = pid;
      if (tree) Object.assign(workload, { tree: tree.pids, rssBytes: tree.rssBytes });
      workload.state = 'running';
      workload.updatedAt = this.d.clock.now().toISOString();
      await saveWorkloadFields(this.d.workloads, workload, ['nodeId', 'pid', 'state', 'updatedAt', 'tree', 'rssBytes']);
      phase.detail = `container removed on ${source.id}; it runs as pid ${pid} on ${destination.id}`;
    });
  }

  /**
   * Podman's and CRIU's own figures. Downtime as for processes, freeze to running on the destination, on the
   * nodes' clocks: from the checkpoint command's start (CRIU freezes a moment later, after Podman's own checks:
   * an upper bound, since Podman does not say when the freeze began) to `restore --import` returning.
   */
  protected recordStats(
    ctx: MigrationContext,
    id: string,
    ck: CheckpointOutcome,
    restored: { endNs: bigint; stats?: PodmanRestoreStats },
  ): void {
    const { migration } = ctx;
    const problems: string[] = [];
    if (ck.stats) {
      const s = statsOf(ck.stats, id);
      migration.criu = { ...migration.criu, dump: { ...s.criu, pagesLazy: 0 } };
      migration.bytes.pages = s.criu.pagesWritten * 4096;
      migration.container = {
        ...migration.container!,
        checkpointMs: Math.round(ck.stats.podmanUs / 1000),
        frozenMs: Math.round(s.criu.frozenTimeUs / 1000),
      };
    } else problems.push(ck.statsProblem ?? 'no checkpoint stats');
    if (restored.stats) {
      const s = statsOf(restored.stats, id);
      migration.criu = { ...migration.criu, restore: s.criu };
      migration.container = { ...migration.container!, restoreMs: Math.round(restored.stats.podmanUs / 1000) };
    } else problems.push('no restore stats');
    if (ck.startNs === undefined) {
      problems.push('the checkpoint start time is missing: no downtime figure');
    } else {
      migration.frozenAt = new Date(Number(ck.startNs / 1_000_000n)).toISOString();
      migration.resumedAt = new Date(Number(restored.endNs / 1_000_000n)).toISOString();
      migration.downtimeMs = Number(restored.endNs - ck.startNs) / 1e6;
    }
    if (problems.length) migration.statsProblem = problems.join('; ');
  }
}
