import type { FileSyncRound, FileSyncSummary } from '@spotlift/domain';
import type { ArmedStream, DirectoryStreamer, StreamResult } from '@spotlift/transport';
import {
  DEFAULT_FILE_SYNC_CONFIG,
  type FileSyncConfig,
  type MigrationContext,
  MigrationStepError,
} from '../engine.types.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import type { PhaseRecorder } from '../phase-recorder.js';
import { dirname } from 'node:path/posix';
import {
  FILE_SYNC_STATE_DIR,
  MARK_MARGIN_MS,
  checkDeclaredPath,
  ROUND_SUMMARY,
  diskShortfalls,
  onSharedStorage,
  outermostPaths,
  parseFreeSpace,
  parseHome,
  parseInspect,
  receiveRound,
  sendRound,
} from '../node-ops/file-sync-commands.js';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, Math.max(0, ms)));

/** A final copy that does nothing: for workloads without declared files, or with all of them on shared storage. */
const NOTHING: ArmedStream = {
  start: () => Promise.resolve({ bytes: 0, sha256: '', durationMs: 0 }),
  cancel: () => Promise.resolve(),
};

/**
 * The files a workload declared (`WorkloadRecord.paths`), brought to the destination the way its memory is:
 * copies while it runs (pre-sync rounds, each sending what changed since the last began), then one more
 * copy of the last changes inside the freeze, armed beforehand like the image stream. Paths on storage
 * both nodes share are left alone. Every strategy calls check (preflight), presync and armFinal (prepare),
 * and starts the armed final copy right after the freezing dump, next to the image stream.
 */
export class WorkloadFiles {
  constructor(
    private readonly ops: NodeOps,
    private readonly streamer: DirectoryStreamer,
    private readonly phases: PhaseRecorder,
    private readonly config: FileSyncConfig = DEFAULT_FILE_SYNC_CONFIG,
  ) {}

  /** Which declared paths are copied and which are shared; recorded on the job. */
  plan(ctx: MigrationContext): FileSyncSummary | undefined {
    const declared = outermostPaths(ctx.workload.paths ?? []);
    if (!declared.length) return undefined;
    const shared = declared.filter((p) => onSharedStorage(p, ctx.source.sharedStorage, ctx.destination.sharedStorage));
    return { synced: declared.filter((p) => !shared.includes(p)), shared, rounds: [] };
  }

  /**
   * Preflight: every declared path exists on the source (a typo would otherwise surface as a failed restore), and
   * the destination's file systems have room for them (beyond what they hold there already).
   */
  async check(ctx: MigrationContext): Promise<string | undefined> {
    const plan = this.plan(ctx);
    if (!plan) return undefined;
    ctx.migration.files = plan;
    if (!plan.synced.length) return `declared files on shared storage: ${plan.shared.join(', ')}`;
    const [src, dst] = await Promise.all([
      this.ops.inspectPaths(ctx.source, plan.synced),
      this.ops.freeSpace(ctx.destination, plan.synced),
    ]);
    // Paths registered before today's rules, or that hold either SSH login's home or the image root, are
    // refused here too: the copy would write them as root on the destination.
    const reserved = [
      dirname(ctx.sourceDir),
      dirname(ctx.destinationDir),
      parseHome(src.stdout),
      parseHome(dst.stdout),
    ];
    const refused = plan.synced
      .map((p) =>
        checkDeclaredPath(
          p,
          reserved.filter((r): r is string => !!r),
        ),
      )
      .filter((why): why is string => !!why);
    if (refused.length)
      throw new MigrationStepError('preflight', `declared files refused: ${refused.join('; ')}`, true);
    const { missing, kib } = parseInspect(src.stdout);
    if (missing.length) {
      throw new MigrationStepError(
        'preflight',
        `declared path(s) ${missing.join(', ')} do not exist on ${ctx.source.id}; fix the workload's paths`,
        true,
      );
    }
    const space = parseFreeSpace(dst.stdout);
    if (space.length !== plan.synced.length) {
      throw new MigrationStepError(
        'preflight',
        `could not read the free disk space for the declared files on ${ctx.destination.id}`,
        true,
      );
    }
    const mib = (k: number) => Math.ceil(k / 1024);
    const short = diskShortfalls(kib, space);
    if (short.length) {
      const what = short.map(
        (s) => `${mib(s.availKib)} MiB free on ${s.mount}, ${s.paths.join(', ')} need about ${mib(s.needKib)} MiB`,
      );
      throw new MigrationStepError(
        'preflight',
        `${ctx.destination.id} lacks room for the declared files: ${what.join('; ')}`,
        true,
      );
    }
    const total = [...kib.values()].reduce((a, b) => a + b, 0);
    return `${plan.synced.length} declared path(s), ${mib(total)} MiB, to copy`;
  }

  /**
   * Copies while the workload runs, before any freeze, until a round is short enough and began at least
   * MARK_MARGIN_MS after the previous one (or the round limit). The second condition keeps the freeze's copy
   * small: it sends whatever changed from MARK_MARGIN_MS before the last round began, so without it a file
   * written just before the migration (round one sends it) would cross again inside the freeze, however big.
   */
  async presync(ctx: MigrationContext): Promise<void> {
    const plan = ctx.migration.files;
    if (!plan?.synced.length) return;
    await this.phases.run(ctx.migration, 'files', async (phase) => {
      let previousStart: number | undefined;
      for (let n = 1; n <= this.config.maxRounds; n++) {
        const armed = await this.arm(ctx, plan.synced, false);
        const start = Date.now(); // about when the round sets its mark on the source
        const round = await this.finish(ctx, armed, true);
        plan.rounds.push(round);
        phase.detail = `${plan.rounds.length} round(s) while running: ${plan.rounds.map((r) => `${r.sent} entries/${r.bytes} B`).join(', ')}`;
        const short = round.durationMs <= this.config.targetRoundMs;
        if (short && previousStart !== undefined && start - previousStart >= MARK_MARGIN_MS) break;
        // (plus a little: the go line reaches the node a few ms after `start`, not always equally late)
        if (short && n < this.config.maxRounds) await sleep(start + MARK_MARGIN_MS + 100 - Date.now());
        previousStart = start;
      }
      await this.phases.save(ctx.migration);
    });
  }

  /**
   * The copy inside the freeze, with its channels open now; start it once the workload is frozen. Like every
   * armed stream, its cancel() does nothing once it started.
   */
  async armFinal(ctx: MigrationContext): Promise<ArmedStream> {
    const plan = ctx.migration.files;
    if (!plan?.synced.length) return NOTHING;
    return this.arm(ctx, plan.synced, true);
  }

  /** Runs the armed final copy and records it; a failure is a transfer failure (the source is resumed). */
  async final(ctx: MigrationContext, armed: ArmedStream): Promise<FileSyncRound | undefined> {
    const plan = ctx.migration.files;
    if (!plan?.synced.length) return undefined;
    plan.final = await this.finish(ctx, armed, false);
    return plan.final;
  }

  private arm(ctx: MigrationContext, paths: string[], final: boolean): Promise<ArmedStream> {
    const deletionList = `${ctx.sourceDir}/${FILE_SYNC_STATE_DIR}/deleted`;
    return this.streamer.armPipe(ctx.source, sendRound(ctx.sourceDir, paths, { final }), ctx.destination, {
      dir: ctx.destinationDir,
      ...receiveRound(ctx.sourceDir, paths),
      what: final ? 'final file copy' : 'file copy',
      guard: { roots: paths, deletionList },
    });
  }

  private async finish(ctx: MigrationContext, armed: ArmedStream, beforeFreeze: boolean): Promise<FileSyncRound> {
    let r: StreamResult;
    try {
      r = await armed.start();
    } catch (error) {
      throw new MigrationStepError(beforeFreeze ? 'files' : 'transfer', (error as Error).message, beforeFreeze);
    }
    const summary = ROUND_SUMMARY.exec(r.senderStderr ?? '');
    return {
      sent: Number(summary?.[1] ?? 0),
      deleted: Number(summary?.[2] ?? 0),
      bytes: r.bytes,
      durationMs: Math.round(r.durationMs),
    };
  }
}
