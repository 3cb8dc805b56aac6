import type { Clock } from '../clock.js';
import type { MigrationContext } from '../engine.types.js';
import * as live from '../node-ops/process/live-commands.js';
import type { LiveConfig } from './live-config.js';
import { PostCopy } from './post-copy.js';
import { PreCopyRounds } from './precopy-rounds.js';
import type { StrategyDeps } from './strategy-deps.js';

/**
 * Hybrid: pre-copy rounds while the workload runs, then a lazy final (post-copy of what is still dirty).
 * The rounds are written on the source and copied as files, not streamed to a page-server: a lazy dump finds
 * its parents only through their pagemaps on the source; with page-server rounds it logs "No parent image
 * found" and serves every page lazily (qemu lab, Debian 12 kernel). The destination restores parent pages
 * eagerly from the copied rounds and pulls only the dirty ones.
 */
export class Hybrid extends PostCopy {
  override readonly name = 'hybrid' as const;
  private readonly rounds: PreCopyRounds;

  constructor(deps: StrategyDeps, liveConfig: LiveConfig, clock: Clock) {
    super(deps, liveConfig);
    this.rounds = new PreCopyRounds(deps, liveConfig, clock);
  }

  protected override async beforeFinal(ctx: MigrationContext): Promise<string | undefined> {
    const n = await this.rounds.run(ctx, 'local');
    ctx.migration.bytes.pages = (ctx.migration.rounds ?? []).reduce((sum, r) => sum + r.bytes, 0);
    return live.finalParent(n);
  }
}
