import type { PreCopyRound } from '@spotlift/domain';
import { type MigrationContext, MigrationStepError } from '../engine.types.js';
import { type PodmanCheckpointCriuStats, statsOf } from '../podman/stats.js';
import { type ContainerRoute, openContainerRoute } from './container-route.js';
import { type ContainerDeps, ContainerStopAndCopy, containerId } from './container-stop-and-copy.js';
import { decideAfterRound } from './convergence.js';
import { DEFAULT_LIVE_CONFIG, type LiveConfig } from './live-config.js';

const PAGE = 4096;

/**
 * Why a container gets one pre-checkpoint round. Podman 4.3 keeps a single pre-checkpoint per container
 * ("later operations will supersede prior dumps", podman-container-checkpoint(1)) and gives runc
 * `--parent-path ../pre-checkpoint` only for the final `--with-previous` checkpoint, never for a
 * pre-checkpoint: a second round would dump and send every page again and shrink nothing.
 */
export const CONTAINER_ROUNDS_NOTE =
  'Podman keeps one pre-checkpoint per container and chains only the final checkpoint to it, so containers get one round';

/**
 * Pre-copy of a Podman container: `checkpoint --pre-checkpoint --export` while the container runs, streamed
 * into `pre-checkpoint.tar` on the destination, then the final `checkpoint --with-previous --export` (only the
 * pages dirtied since) streamed next to it, and `restore --import ... --import-previous pre-checkpoint.tar`
 * there. Preflight, the image copy, verify, commit, rollback and stats are stop-and-copy's: after the freeze
 * nothing differs but the smaller archive (the source's kept checkpoint links its pre-checkpoint, so a rollback
 * restores it there as before). Needs soft-dirty tracking on the source; refused with the reason where not.
 */
export class ContainerPreCopy extends ContainerStopAndCopy {
  constructor(
    deps: ContainerDeps,
    private readonly live: LiveConfig = DEFAULT_LIVE_CONFIG,
  ) {
    super(deps);
  }

  override async run(ctx: MigrationContext): Promise<void> {
    const { migration, source } = ctx;
    const { phases, podman, config, ops } = this.d;
    migration.strategy = 'pre-copy';
    const id = containerId(ctx);
    const previous = `${ctx.destinationDir}/pre-checkpoint.tar`;
    const archive = `${ctx.destinationDir}/checkpoint.tar`;
    const c = await phases.run(migration, 'preflight', async (phase) => {
      // Podman's --pre-checkpoint is CRIU's pre-dump with --track-mem: without soft-dirty it aborts mid-dump.
      // Asked first and live (a probe record may be stale): a source that cannot gets nothing else run.
      const dirty = await ops.checkFeature(source, 'mem_dirty_track');
      if (!dirty.supported) {
        throw new MigrationStepError(
          'preflight',
          `pre-copy is not available: ${source.id} cannot track dirty memory (criu check --feature mem_dirty_track: ${dirty.reason ?? 'not supported'}; a kernel without CONFIG_MEM_SOFT_DIRTY)`,
          true,
        );
      }
      const found = await this.preflight(ctx, id, phase);
      phase.detail = `${phase.detail ?? ''}; ${source.id} tracks dirty memory`;
      return found;
    });
    let route: ContainerRoute | undefined;
    await phases.run(migration, 'prepare', async (phase) => {
      await this.d.steps.makeDirs(ctx);
      // As stop-and-copy's: the image, the pre-checkpoint and the final archive node to node where it can.
      route = await openContainerRoute(ctx, this.d.transports, podman, this.d.steps.pickPort(), config.criuTimeoutMs);
      try {
        const image = await this.sendImage(ctx, c, route);
        migration.container = { ...migration.container!, route: route.record };
        phase.detail = `${image}; ${route.record}`;
      } catch (error) {
        await route.close();
        throw error;
      }
    });
    const armed = await phases
      .run(migration, 'precopy', async (phase) => {
        const late = this.deadlineLeavesNoRound(ctx);
        if (late) {
          // Straight to a full final checkpoint: a round that cannot finish in time buys nothing.
          migration.rounds = [];
          migration.precopy = { stopReason: late.reason, predictedFinalFreezeMs: late.finalFreezeMs };
          phase.detail = late.reason;
          return this.armFreeze(ctx, id, archive, route!, 'final');
        }
        phase.detail = await this.preCheckpoint(ctx, id, previous, route!);
        migration.container = { ...migration.container!, route: route!.record };
        return this.armFreeze(ctx, id, archive, route!, 'with-previous', previous);
      })
      .catch(async (error: unknown) => {
        await route!.close();
        throw error;
      });
    await this.freezeAndMove(ctx, id, armed, route!);
  }

  /**
   * Why no round fits before the job's deadline, if it does not: the round dumps and sends every page (about
   * the container's RSS at the assumed bandwidth; no pair measurement exists before it), and the final
   * checkpoint may then need as much again plus its fixed cost. As process pre-copy's deadline check
   * (convergence.ts), only made before the one round Podman allows.
   */
  private deadlineLeavesNoRound(ctx: MigrationContext): { reason: string; finalFreezeMs: number } | undefined {
    const { migration, workload } = ctx;
    if (!migration.deadline) return undefined;
    const leftMs = Date.parse(migration.deadline) - this.d.clock.now().getTime();
    const bytes = workload.rssBytes ?? 0;
    const sendMs = (bytes / this.live.assumedBandwidthBytesPerSec) * 1000;
    const neededMs = Math.round(2 * sendMs + this.live.fixedFreezeMs);
    if (leftMs >= neededMs) return undefined;
    const finalFreezeMs = Math.round(sendMs + this.live.fixedFreezeMs);
    const reason = `no pre-checkpoint round: the deadline leaves ${Math.max(0, Math.round(leftMs))} ms, a round of ${bytes} bytes and the final checkpoint need about ${neededMs} ms; straight to the final checkpoint`;
    return { reason, finalFreezeMs };
  }

  /**
   * The round: the pre-checkpoint streamed into the destination's `previous` while the container runs. A
   * failure leaves it running (Podman resumes it after a pre-dump) and fails the job before any freeze.
   */
  private async preCheckpoint(
    ctx: MigrationContext,
    id: string,
    previous: string,
    route: ContainerRoute,
  ): Promise<string> {
    const { migration, source, destination } = ctx;
    const { podman, ops } = this.d;
    const dir = `${ctx.sourceDir}/pre-1`;
    await ops.makeDir(source, dir);
    const armed = await this.armCheckpoint(ctx, id, previous, route, 'pre', dir);
    let failure: Error | undefined;
    const sent = await armed.start().catch((e: Error) => {
      failure = e;
      if (route.direct) route.failed(e);
      return undefined;
    });
    const outcome = await podman.checkpointOutcome(source, dir);
    if (!sent) {
      const log = outcome.log.trim() ? `; podman's log: ${outcome.log.trim().slice(-600)}` : '';
      throw new MigrationStepError(
        'precopy',
        `pre-checkpoint of the container on ${source.id} failed (it keeps running there): ${failure!.message}${log}`,
        true,
      );
    }
    let criu: PodmanCheckpointCriuStats | undefined;
    try {
      criu = outcome.stats ? statsOf(outcome.stats, id).criu : undefined;
    } catch (error) {
      (migration.notes ??= []).push(`pre-checkpoint stats unreadable: ${(error as Error).message}`);
    }
    const round = this.round(criu, sent);
    migration.rounds = [round];
    const budgetMs = migration.downtimeBudgetMs ?? this.live.defaultDowntimeBudgetMs;
    // The final checkpoint carries what the container dirties from now on; one round is all Podman can chain.
    // The round dumped every page (no parent), so convergence's prediction from it is an upper bound only.
    const d = decideAfterRound(migration.rounds, {
      budgetMs,
      fixedFreezeMs: this.live.fixedFreezeMs,
      maxRounds: 1,
      minShrink: this.live.minShrink,
    });
    const stopReason = d.reason.startsWith('converged')
      ? `${d.reason} (${CONTAINER_ROUNDS_NOTE})`
      : `${CONTAINER_ROUNDS_NOTE}; final freeze at most ${Math.round(d.predictedFreezeMs)} ms (as if every page were dirty again) against a ${budgetMs} ms budget`;
    migration.precopy = { stopReason, predictedFinalFreezeMs: Math.round(d.predictedFreezeMs) };
    await this.d.phases.save(migration);
    return `pre-checkpoint streamed to ${destination.id} (${route.record.split(':')[0]}): ${sent.bytes} bytes, ${round.pagesWritten} pages; ${stopReason}`;
  }

  private round(
    criu: PodmanCheckpointCriuStats | undefined,
    sent: { bytes: number; durationMs: number },
  ): PreCopyRound {
    // Without Podman's stats the archive's size stands in for the pages (it is mostly pages).
    const pagesWritten = criu?.pagesWritten ?? Math.floor(sent.bytes / PAGE);
    const bytes = pagesWritten * PAGE;
    const seconds = sent.durationMs / 1000;
    return {
      round: 1,
      pagesScanned: criu?.pagesScanned ?? pagesWritten,
      pagesWritten,
      pagesSkippedParent: criu?.pagesSkippedParent ?? 0,
      bytes,
      durationMs: Math.round(sent.durationMs * 1000) / 1000,
      frozenMs: criu ? (criu.frozenTimeUs + criu.freezingTimeUs) / 1000 : 0,
      // the whole round (dump, Podman's archive, the stream): what the final checkpoint will go through too
      bandwidthBytesPerSec: seconds > 0 ? Math.round(bytes / seconds) : 0,
    };
  }
}
