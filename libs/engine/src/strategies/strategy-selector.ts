import type { PostCopyTrialRecord, Strategy } from '@spotlift/domain';
import type { PairLinks } from '@spotlift/store';
import { chooseStrategy, fmtRate, type ConcreteStrategy, type PostCopyTrial } from '@spotlift/placement';
import type { Clock } from '../clock.js';
import type { MigrationContext } from '../engine.types.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import type { PhaseRecorder } from '../phase-recorder.js';
import type { LiveConfig } from './live-config.js';
import type { PostCopyTrialRunner } from './post-copy-trial.js';

/** The strategies to try in order (the first that can run wins), why the first, and what was ruled out. */
export interface StrategyPlan {
  chain: ConcreteStrategy[];
  reason: string;
  fallbacks: string[];
}

/** When a strategy cannot run on the pair, the next one (the brief's chains: the source keeps a full copy). */
export const FALLBACK_CHAIN: Readonly<Record<ConcreteStrategy, readonly ConcreteStrategy[]>> = {
  hybrid: ['hybrid', 'pre-copy', 'stop-and-copy'],
  'pre-copy': ['pre-copy', 'stop-and-copy'],
  'post-copy': ['post-copy', 'stop-and-copy'],
  'stop-and-copy': ['stop-and-copy'],
};

/**
 * What the node pair can do, asked lazily and once per job: soft-dirty on the source (`criu check
 * --feature mem_dirty_track`, asked live: a probe record may be stale), and post-copy from the cached trial,
 * or a fresh trial (recorded as the job's 'probe' phase) when none is cached.
 */
class PairCapabilities {
  private softDirty?: Promise<{ ok: boolean; why: string }>;
  private trial?: Promise<PostCopyTrialRecord>;

  constructor(
    private readonly ctx: MigrationContext,
    private readonly ops: NodeOps,
    private readonly trials: PostCopyTrialRunner,
    private readonly phases: PhaseRecorder,
  ) {}

  memDirtyTrack(): Promise<{ ok: boolean; why: string }> {
    this.softDirty ??= this.ops.checkFeature(this.ctx.source, 'mem_dirty_track').then((f) => {
      const why = `${this.ctx.source.id} lacks mem_dirty_track (kernel without CONFIG_MEM_SOFT_DIRTY; criu: ${f.reason ?? 'not supported'})`;
      return { ok: f.supported, why };
    });
    return this.softDirty;
  }

  /** The cached trial only: undefined when the pair was never tried (or the result expired). */
  cachedTrial(): Promise<PostCopyTrialRecord | undefined> {
    return this.trials.cached(this.ctx.source, this.ctx.destination);
  }

  postCopyTrial(): Promise<PostCopyTrialRecord> {
    this.trial ??= this.cachedTrial().then(
      (hit) =>
        hit ??
        this.phases.run(this.ctx.migration, 'probe', async (phase) => {
          const r = await this.trials.run(this.ctx.source, this.ctx.destination);
          phase.detail = `post-copy trial ${r.sourceNodeId} -> ${r.destinationNodeId}: ${r.ok ? 'ok' : `failed: ${r.reason ?? ''}`} (${r.durationMs} ms)`;
          return r;
        }),
    );
    return this.trial;
  }

  async postCopyProblem(): Promise<string | undefined> {
    const r = await this.postCopyTrial();
    if (r.ok) return undefined;
    return `the post-copy trial ${r.sourceNodeId} -> ${r.destinationNodeId} at ${r.at} failed: ${r.reason ?? 'unknown'}; to fix: ${r.advice ?? 'see the CRIU logs'}`;
  }

  async problem(s: ConcreteStrategy): Promise<string | undefined> {
    if (s === 'stop-and-copy') return undefined;
    if (s === 'pre-copy' || s === 'hybrid') {
      const sd = await this.memDirtyTrack();
      if (!sd.ok) return sd.why;
    }
    if (s === 'post-copy' || s === 'hybrid') return this.postCopyProblem();
    return undefined;
  }
}

/**
 * Turns what the job asked for into the strategies to try. An explicit strategy the pair cannot run falls
 * back along {@link FALLBACK_CHAIN}; `auto` asks {@link chooseStrategy} (libs/placement) with the pair's
 * capabilities, the workload's memory and measured dirty rate, the budget and the deadline.
 */
export class StrategySelector {
  constructor(
    private readonly ops: NodeOps,
    private readonly trials: PostCopyTrialRunner,
    private readonly phases: PhaseRecorder,
    private readonly live: LiveConfig,
    private readonly clock: Clock,
    private readonly links: PairLinks,
  ) {}

  async plan(ctx: MigrationContext): Promise<StrategyPlan> {
    const requested: Strategy = ctx.migration.requestedStrategy ?? ctx.migration.strategy;
    if (requested === 'stop-and-copy') return { chain: ['stop-and-copy'], reason: 'requested', fallbacks: [] };
    const caps = new PairCapabilities(ctx, this.ops, this.trials, this.phases);
    if (requested === 'auto') return this.auto(ctx, caps);
    return this.explicit(requested, caps);
  }

  private async explicit(requested: ConcreteStrategy, caps: PairCapabilities): Promise<StrategyPlan> {
    const chain = [...FALLBACK_CHAIN[requested]];
    const fallbacks: string[] = [];
    while (chain.length > 1) {
      const why = await caps.problem(chain[0]!);
      if (why === undefined) break;
      fallbacks.push(`${chain[0]} -> ${chain[1]}: ${why}`);
      chain.shift();
    }
    const reason =
      chain[0] === requested
        ? 'requested'
        : `requested ${requested}; fell back to ${chain[0]} (${fallbacks.length} fallback(s))`;
    return { chain, reason, fallbacks };
  }

  private async auto(ctx: MigrationContext, caps: PairCapabilities): Promise<StrategyPlan> {
    const { migration } = ctx;
    const tree = await this.ops.inspectTree(ctx.source, ctx.workload.pid);
    const memoryBytes = tree?.rssBytes ?? ctx.workload.rssBytes ?? 0;
    const softDirty = await caps.memDirtyTrack();
    const dirty = softDirty.ok && tree ? await this.dirtyRate(ctx, tree.rssBytes) : undefined;
    const link = await this.linkOf(ctx);
    const budgetMs = migration.downtimeBudgetMs ?? this.live.defaultDowntimeBudgetMs;
    const deadline = migration.deadline ? Date.parse(migration.deadline) : undefined;
    const decide = (trial: PostCopyTrial) =>
      chooseStrategy({
        memoryBytes,
        dirtyRateBytesPerSec: dirty ?? ctx.workload.dirtyRateBytesPerSec ?? 0,
        bandwidthBytesPerSec: link.bytesPerSec,
        downtimeBudgetSeconds: budgetMs / 1000,
        ...(deadline !== undefined
          ? { timeLeftSeconds: Math.max(0, (deadline - this.clock.now().getTime()) / 1000) }
          : {}),
        capabilities: { softDirtyOnSource: softDirty.ok, postCopyTrial: trial },
        model: {
          fixedCostSeconds: this.live.fixedFreezeMs / 1000,
          maxRounds: this.live.maxRounds,
          minShrink: this.live.minShrink,
        },
      });
    // A trial costs a real (tiny) migration: run one only when the choice would use post-copy.
    const cached = await caps.cachedTrial();
    let decision = decide(cached ? (cached.ok ? 'ok' : 'failed') : 'ok');
    let trialNote = cached ? `post-copy trial cached from ${cached.at}: ${cached.ok ? 'ok' : 'failed'}` : '';
    if (!cached && (decision.strategy === 'post-copy' || decision.strategy === 'hybrid')) {
      const r = await caps.postCopyTrial();
      decision = decide(r.ok ? 'ok' : 'failed');
      trialNote = `post-copy trial run now: ${r.ok ? 'ok' : `failed (${r.reason ?? ''}; to fix: ${r.advice ?? ''})`}`;
    }
    const declared = ctx.workload.dirtyRateBytesPerSec;
    const measured =
      dirty !== undefined
        ? `dirty rate ${fmtRate(dirty)} measured`
        : declared !== undefined
          ? `dirty rate ${fmtRate(declared)} as declared (no soft-dirty tracking to measure it)`
          : 'dirty rate not measured (no soft-dirty tracking)';
    const notes = [measured, link.note, trialNote].filter(Boolean).join('; ');
    return {
      chain: [...FALLBACK_CHAIN[decision.strategy]],
      reason: `auto: ${decision.reason}; ${notes}`,
      fallbacks: decision.fallbacks,
    };
  }

  /** The pair's measured page throughput for this job's transport, or the configured assumption. */
  private async linkOf(ctx: MigrationContext): Promise<{ bytesPerSec: number; note: string }> {
    const transport = ctx.migration.transport ?? 'tcp';
    const m = await this.links.get(ctx.source.id, ctx.destination.id, transport).catch(() => undefined);
    if (m && m.bytesPerSec > 0) {
      return {
        bytesPerSec: m.bytesPerSec,
        note: `link ${fmtRate(m.bytesPerSec)} measured over ${transport} (${m.samples} migration(s), last ${m.at})`,
      };
    }
    const assumed = this.live.assumedBandwidthBytesPerSec;
    return { bytesPerSec: assumed, note: `link assumed ${fmtRate(assumed)} (no migration measured it yet)` };
  }

  /** Bytes per second the tree dirties, from soft-dirty bits over a short window; undefined if unknown. */
  private async dirtyRate(ctx: MigrationContext, rssBytes: number): Promise<number | undefined> {
    const res = await this.ops.sampleDirtyPages(ctx.source, ctx.workload.pid, this.live.dirtySampleMs);
    const m = /^DIRTY_PAGES (\d+) (\d+)$/m.exec(res.stdout);
    if (!m?.[1] || !m[2] || Number(m[2]) <= 0) return undefined;
    return Math.min(rssBytes, Number(m[1]) * 4096) / (Number(m[2]) / 1000);
  }
}
