import type { NodeRecord, PostCopyProgress } from '@spotlift/domain';
import type { CriuEndpoint, CriuTlsOptions } from '@spotlift/criu';
import * as criu from '../node-ops/process/criu-commands.js';
import { type MigrationContext, MigrationStepError } from '../engine.types.js';
import type { NodeOps } from '../node-ops/node-ops.js';

/** Both ends of one lazy transfer: a migration's, or the post-copy trial's. */
export interface LazyEnds {
  source: NodeRecord;
  destination: NodeRecord;
  sourceDir: string;
  destinationDir: string;
}

/** A step of the lazy transfer failed; `phase` says which, the message is CRIU's classified account. */
export class LazyTransferError extends Error {
  constructor(
    readonly phase: 'dump' | 'restore' | 'pages',
    message: string,
  ) {
    super(message);
  }
}

/** A migration's ends. */
export const endsOf = (ctx: MigrationContext): LazyEnds => ({
  source: ctx.source,
  destination: ctx.destination,
  sourceDir: ctx.sourceDir,
  destinationDir: ctx.destinationDir,
});

/** Rethrows a LazyTransferError as the engine's step error (not retryable: the freeze may have begun). */
export const asStepError = (e: unknown): never => {
  if (e instanceof LazyTransferError) throw new MigrationStepError(e.phase, e.message, false);
  throw e;
};

export interface LazyDumpStarted {
  /** Node time the dump command started. */
  startNs: bigint;
  /** Node time the first task was seized (the freeze began). */
  frozenNs: bigint;
}

/** The record of pages arriving after resume (post-copy's, or a lazy restore's fill), from the daemon's outcome. */
export function pagesProgress(outcome: PagesOutcome, resumedNs: bigint): PostCopyProgress {
  const after = outcome.endNs !== undefined ? Number(outcome.endNs - resumedNs) / 1e6 : undefined;
  return {
    lazyPages: outcome.lazyPages,
    transferred: outcome.transferred,
    ...(outcome.complete && outcome.endNs !== undefined
      ? { allPagesAt: new Date(Number(outcome.endNs / 1_000_000n)).toISOString(), pagesAfterResumeMs: after }
      : {}),
  };
}

/** What the destination says about the pages once the lazy-pages daemon ended. */
export interface PagesOutcome {
  complete: boolean;
  /** Destination node time the daemon was seen gone. */
  endNs?: bigint;
  /** Per process `copied/total`. */
  transferred: string[];
  lazyPages: number;
  /** Why not complete, for a person. */
  reason?: string;
  /** The source's lazy dump exit code (0 even when the daemon died: the destination decides). */
  sourceExit?: number;
}

/**
 * CRIU's post-copy machinery, step by step, shared by the post-copy and hybrid strategies and the post-copy
 * trial: the source's lazy dump (serving pages), the destination's lazy-pages daemon, and the one question
 * that decides the commit: did every page arrive?
 */
export class LazyTransfer {
  constructor(
    private readonly ops: NodeOps,
    private readonly criuTimeoutMs: number,
    private readonly ghostLimitBytes?: number,
  ) {}

  /** Freezes the source and dumps everything but memory; returns once its page server listens. */
  async startDump(
    ends: LazyEnds,
    pid: number,
    serve: CriuEndpoint,
    prev?: string,
    tls?: CriuTlsOptions,
  ): Promise<LazyDumpStarted> {
    const res = await this.ops.lazyDumpStart(
      ends.source,
      pid,
      ends.sourceDir,
      serve,
      prev,
      this.criuTimeoutMs,
      this.ghostLimitBytes,
      tls,
    );
    const ready = /^LAZY_READY (\d+) (\d+)$/m.exec(res.stdout);
    if (!ready?.[1] || ready[2] === undefined) {
      const log = await this.ops.tail(ends.source, `${ends.sourceDir}/dump.log`, 200);
      const code = Number(/^LAZY_FAILED (-?\d+)/m.exec(res.stdout)?.[1] ?? NaN);
      const why = /LAZY_TIMEOUT/.test(res.stdout) ? 'its page server did not start in time' : '';
      throw new LazyTransferError(
        'dump',
        criu.explainFailure(
          'dump --lazy-pages',
          ends.source.id,
          log || res.stderr || why,
          Number.isNaN(code) ? null : code,
        ),
      );
    }
    const startNs = BigInt(ready[1]);
    return { startNs, frozenNs: startNs + BigInt(ready[2]) * 1000n };
  }

  /**
   * Starts the destination's lazy-pages daemon, connected to the source's page server; without `from`, it
   * fills the restored tree from the destination's own images (pre-copy's lazy restore).
   */
  async startDaemon(ends: LazyEnds, from?: CriuEndpoint, tls?: CriuTlsOptions): Promise<void> {
    const res = await this.ops.lazyPagesDaemon(ends.destination, ends.destinationDir, from, tls);
    if (res.code !== 0) {
      const log = await this.ops.tail(ends.destination, `${ends.destinationDir}/lazy-pages.log`, 200);
      throw new LazyTransferError(
        'restore',
        criu.explainFailure('lazy-pages', ends.destination.id, log || res.stderr, res.code),
      );
    }
  }

  /**
   * Waits until the daemon ended and judges by the destination: complete only when every process it
   * served reports all its pages copied and its log holds no error. The source's exit code cannot decide:
   * CRIU's lazy dump ends with "finished successfully" when the daemon dies half way (seen here).
   */
  async waitAllPages(ends: LazyEnds, timeoutMs: number): Promise<PagesOutcome> {
    const res = await this.ops.lazyPagesWait(ends.destination, ends.destinationDir, timeoutMs);
    const out = res.stdout;
    const transferred = [...out.matchAll(/^TRANSFERRED (\d+)\/(\d+)$/gm)].map((m) => `${m[1]}/${m[2]}`);
    const lazyPages = transferred.reduce((sum, t) => sum + Number(t.split('/')[1]), 0);
    const src = await this.ops.lazyDumpWait(ends.source, ends.sourceDir, 30);
    const done = /^LAZY_DONE (-?\d+)/m.exec(src.stdout);
    const base = { transferred, lazyPages, ...(done?.[1] ? { sourceExit: Number(done[1]) } : {}) };
    if (/PAGES_RUNNING/.test(out)) {
      return {
        ...base,
        complete: false,
        reason: `pages were still arriving on ${ends.destination.id} after ${Math.round(timeoutMs / 1000)} s`,
      };
    }
    const end = /^PAGES_END (\d+)$/m.exec(out)?.[1];
    if (!end) return { ...base, complete: false, reason: `no lazy-pages daemon on ${ends.destination.id} to wait for` };
    const errors = [...out.matchAll(/^ERR (.*)$/gm)].map((m) => m[1] ?? '');
    const short = transferred.filter((t) => t.split('/')[0] !== t.split('/')[1]);
    if (transferred.length === 0 || short.length > 0 || errors.length > 0) {
      const counts = transferred.length
        ? `transferred ${transferred.join(', ')}`
        : 'no process reported its pages complete';
      const why = errors.length
        ? criu.explainFailure('lazy-pages', ends.destination.id, errors.join('\n'), null)
        : 'the daemon ended early';
      return { ...base, complete: false, endNs: BigInt(end), reason: `${counts}; ${why}` };
    }
    return { ...base, complete: true, endNs: BigInt(end) };
  }

  /**
   * After a failure: the restored (incomplete) tree dies first, then both halves stop; the source stays stopped
   * throughout (post-copy's queued SIGSTOP, pre-copy's --leave-stopped), and the engine's rollback resumes it.
   */
  async abort(ctx: MigrationContext): Promise<void> {
    const pid = ctx.migration.restoredPid;
    if (pid) await this.ops.killTree(ctx.destination, pid).catch(() => undefined);
    await this.stop(endsOf(ctx));
  }

  /**
   * Recovery after a dead worker, for a transfer that was started: waits for it and says whether every page
   * arrived (then the restored tree may be adopted); otherwise aborts it so that the rollback can resume the source.
   */
  async settle(ctx: MigrationContext): Promise<boolean> {
    const outcome = await this.waitAllPages(endsOf(ctx), this.criuTimeoutMs);
    if (outcome.complete) return true;
    const pid = await this.ops.readPidfile(ctx.destination, `${ctx.destinationDir}/restored.pid`);
    if (pid) ctx.migration.restoredPid = pid;
    await this.abort(ctx);
    return false;
  }

  /**
   * Stops both halves: the daemon on the destination, then the source's dump (its tasks stay stopped by
   * the queued SIGSTOP). The restored tree must already be dead. Safe to run twice.
   */
  async stop(ends: LazyEnds): Promise<void> {
    await this.ops.lazyPagesStop(ends.destination, ends.destinationDir).catch(() => undefined);
    await this.ops.lazyDumpStop(ends.source, ends.sourceDir).catch(() => undefined);
  }

  /** True when a lazy-pages daemon was started in the destination's directory (its pidfile exists). */
  async daemonStarted(ends: LazyEnds): Promise<boolean> {
    const res = await this.ops.lazyPagesStarted(ends.destination, ends.destinationDir);
    return /DAEMON_STARTED/.test(res.stdout);
  }

  /** True when a lazy dump was started in this directory (its wrapper left a pid or done file). */
  async started(ends: LazyEnds): Promise<boolean> {
    const res = await this.ops.lazyDumpWait(ends.source, ends.sourceDir, 0);
    return !/LAZY_NONE/.test(res.stdout);
  }
}
