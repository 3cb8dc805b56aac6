import {
  DomainError,
  GUARD_DEFAULT_KEEP,
  decideGuard,
  guardDumpInputOf,
  guardRetention,
  planGuardDump,
  type CheckpointRecord,
  type GuardStatus,
} from '@spotlift/domain';
import type { Clock } from '@spotlift/engine';
import type { CheckpointRepository, NodeRepository, Repository, WorkloadRepository } from '@spotlift/store';
import type { CheckpointsService } from '../checkpoints/checkpoints.service.js';

export interface GuardTickItem {
  workloadId: string;
  action: 'take' | 'wait' | 'skip' | 'refused';
  reason?: string;
  checkpointId?: string;
  removed?: string[];
}

/**
 * One pass of guard mode over the guarded workloads: take what is due (through CheckpointsService.create,
 * so the workload claim, the busy checks and the storage node's checks are the ones every checkpoint has),
 * record skips with their reason, and remove the stored guard checkpoints beyond `keep`. The caller runs it
 * under a Redis lease, once per installation (guard.service.ts).
 */
export class GuardScheduler {
  constructor(
    private readonly workloads: WorkloadRepository,
    private readonly nodes: NodeRepository,
    private readonly checkpoints: CheckpointRepository,
    private readonly statuses: Repository<GuardStatus>,
    private readonly service: Pick<CheckpointsService, 'create' | 'remove'>,
    private readonly clock: Clock,
    /** Where guard checkpoints go and whether they are sealed: what decides full vs incremental at create. */
    private readonly dumps: { storageNodeId?: string; encrypted?: boolean } = {},
  ) {}

  async runOnce(): Promise<GuardTickItem[]> {
    const guarded = (await this.workloads.list()).filter((w) => w.guard && w.state === 'running');
    if (!guarded.length) return [];
    const all = await this.checkpoints.list();
    const items: GuardTickItem[] = [];
    for (const w of guarded) {
      const mine = all.filter((c) => c.workloadId === w.id);
      const node = await this.nodes.get(w.nodeId);
      const status = (await this.statuses.get(w.id)) ?? { id: w.id };
      const now = this.clock.now();
      // The plan CheckpointsService.create makes for it, so the freeze budget is weighed against the right kind.
      const next =
        node && this.dumps.storageNodeId
          ? planGuardDump(guardDumpInputOf(w, node, mine, this.dumps.storageNodeId, this.dumps.encrypted === true)).kind
          : undefined;
      const decision = decideGuard({
        settings: w.guard!,
        checkpoints: mine,
        status,
        ...(w.rssBytes !== undefined ? { rssBytes: w.rssBytes } : {}),
        ...(next ? { nextDump: next } : {}),
        // Draining or terminating: a notice, an evacuation is in charge; unreachable: nothing to dump from.
        nodeUnderNotice: node?.state !== 'ready',
        now,
      });
      const item: GuardTickItem = { workloadId: w.id, action: decision.action };
      if (decision.action === 'wait') item.reason = decision.reason;
      if (decision.action === 'skip') {
        item.reason = decision.reason;
        await this.statuses.save({
          id: w.id,
          lastDecisionAt: now.toISOString(),
          skipped: { at: now.toISOString(), reason: decision.reason },
        });
      }
      if (decision.action === 'take') {
        try {
          const cp = await this.service.create({ workload: w.id, transport: 'tls', mode: 'guard' });
          item.checkpointId = cp.id;
          await this.statuses.save({ id: w.id, lastDecisionAt: now.toISOString() });
        } catch (error) {
          // A migration or another checkpoint holds the workload (409), or the storage node cannot take
          // it (400): try again at the next interval, the reason kept on the status.
          if (!(error instanceof DomainError)) throw error;
          item.action = 'refused';
          item.reason = error.message;
          await this.statuses.save({
            id: w.id,
            lastDecisionAt: now.toISOString(),
            skipped: { at: now.toISOString(), reason: error.message },
          });
        }
      }
      const removed = await this.prune(mine, w.guard!.keep ?? GUARD_DEFAULT_KEEP);
      if (removed.length) item.removed = removed;
      items.push(item);
    }
    return items;
  }

  /** Removes what retention drops; one that cannot be removed now is tried again next pass. */
  private async prune(mine: CheckpointRecord[], keep: number): Promise<string[]> {
    const removed: string[] = [];
    for (const cp of guardRetention(mine, keep)) {
      try {
        await this.service.remove(cp.id);
        removed.push(cp.id);
      } catch (error) {
        if (!(error instanceof DomainError)) throw error;
      }
    }
    return removed;
  }
}
