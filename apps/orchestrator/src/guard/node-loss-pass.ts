import {
  DomainError,
  decideLossRestore,
  nodeLossVerdict,
  type GuardStatus,
  type LossTakeover,
  type NodeLossVerdict,
  type NodeRecord,
  type WorkloadRecord,
} from '@spotlift/domain';
import type { Clock } from '@spotlift/engine';
import type {
  CheckpointRepository,
  EvacuationRepository,
  NodeRepository,
  Repository,
  WorkloadRepository,
} from '@spotlift/store';
import type { CheckpointsService } from '../checkpoints/checkpoints.service.js';

/** One claim per workload and loss, in Redis: the checkpoint restored for it (SET NX, kept across restarts). */
export interface LossClaims {
  get(key: string): Promise<string | undefined>;
  /** Claims `key` for `value` unless held; answers the holder. */
  claim(key: string, value: string): Promise<string>;
}

export interface LossTickItem {
  nodeId: string;
  workloadId: string;
  action: 'wait' | 'restore' | 'in-progress' | 'refused';
  reason: string;
  checkpointId?: string;
}

/**
 * Guard mode's other half: nodes that host guarded workloads are checked over SSH each pass (the silence is
 * recorded as `unreachableSince`); one silent beyond the threshold AND confirmed gone (node-loss.ts) is fenced
 * first (fenced-shell.ts: no command runs there but the sweeper's kill of stale copies, its agent tokens are
 * refused), then each guarded workload on it is restored from its last guard checkpoint by placement, once:
 * the checkpoint is claimed in Redis per workload and loss, and the restore job's id is the checkpoint's and
 * attempt's. Every decision, waiting included, is kept on the workload's guard status with its reason.
 */
export class NodeLossPass {
  constructor(
    private readonly workloads: WorkloadRepository,
    private readonly nodes: NodeRepository,
    private readonly checkpoints: CheckpointRepository,
    private readonly evacuations: EvacuationRepository,
    private readonly statuses: Repository<GuardStatus>,
    private readonly service: Pick<CheckpointsService, 'restore'>,
    private readonly claims: LossClaims,
    private readonly reachable: (node: NodeRecord) => Promise<boolean>,
    private readonly clock: Clock,
    private readonly thresholdMs: number,
  ) {}

  async runOnce(): Promise<LossTickItem[]> {
    const guarded = (await this.workloads.list()).filter((w) => w.guard && w.state === 'running');
    const byNode = new Map<string, WorkloadRecord[]>();
    for (const w of guarded) byNode.set(w.nodeId, [...(byNode.get(w.nodeId) ?? []), w]);
    const items: LossTickItem[] = [];
    for (const [nodeId, workloads] of byNode) {
      const stored = await this.nodes.get(nodeId);
      if (!stored) continue;
      const node = stored.fence ? stored : await this.track(stored);
      const verdict = nodeLossVerdict({
        node,
        // Only a silent node can be lost: the evacuations are read for those alone.
        ...(node.unreachableSince ? await this.noticeDeadline(nodeId) : {}),
        thresholdMs: this.thresholdMs,
        now: this.clock.now(),
      });
      const fence = verdict.lost ? (node.fence ?? (await this.fence(node, verdict.confirmation))) : undefined;
      for (const w of workloads) {
        const item = await this.decide(w, nodeId, verdict, fence);
        await this.remember(w.id, item, !node.unreachableSince && !node.lost);
        items.push(item);
      }
    }
    return items;
  }

  private async decide(
    w: WorkloadRecord,
    nodeId: string,
    verdict: NodeLossVerdict,
    fence: NodeRecord['fence'],
  ): Promise<LossTickItem> {
    if (!verdict.lost) return { nodeId, workloadId: w.id, action: 'wait', reason: verdict.reason };
    const key = `${w.id}:${nodeId}:${fence?.at ?? ''}`;
    const claimed = await this.claims.get(key);
    const mine = (await this.checkpoints.list()).filter((c) => c.workloadId === w.id);
    const decision = decideLossRestore({
      verdict,
      nodeId,
      checkpoints: mine,
      ...(claimed ? { claimedCheckpointId: claimed } : {}),
      now: this.clock.now(),
    });
    const item: LossTickItem = { nodeId, workloadId: w.id, action: decision.action, reason: decision.reason };
    if (decision.action === 'wait') return item;
    item.checkpointId = decision.checkpointId;
    if (decision.action === 'in-progress') return item;
    // Exactly once: the first pass to claim the loss picks the checkpoint; any other (a replica, a restart)
    // sees the claim and goes on with that one, whose stored state says whether a restore already ran.
    const holder = await this.claims.claim(key, decision.checkpointId);
    if (holder !== decision.checkpointId) {
      return { ...item, action: 'wait', reason: `checkpoint ${holder} is claimed for this loss` };
    }
    const takeover: LossTakeover = {
      fromNodeId: nodeId,
      stalePid: w.pid,
      ...(w.identity ? { staleIdentity: w.identity } : {}),
      // A container is removed by its id on the returned node (its main pid dies with it).
      ...(w.kind === 'podman' && w.container ? { staleContainer: w.container } : {}),
    };
    try {
      const cp = await this.service.restore(decision.checkpointId, {}, takeover);
      item.reason = `${decision.reason} to '${cp.restore!.destinationNodeId}' (${cp.restore!.destinationReason}); RPO ${decision.rpoSeconds.toFixed(1)} s`;
    } catch (error) {
      // No node can take it now, or the checkpoint moved on meanwhile: the next pass tries again.
      if (!(error instanceof DomainError)) throw error;
      return { ...item, action: 'refused', reason: `${decision.reason}: ${error.message}` };
    }
    return item;
  }

  /** Records whether the node answers now: the silence starts at the first pass it did not. */
  private async track(node: NodeRecord): Promise<NodeRecord> {
    const answers = await this.reachable(node);
    if (answers === !node.unreachableSince) return node;
    const now = this.clock.now().toISOString();
    const saved = await this.nodes.update(node.id, (current) => {
      if (current.fence) return false;
      if (answers) {
        delete current.unreachableSince;
        if (current.state === 'unreachable' && !current.probe?.error) current.state = 'ready';
      } else {
        current.unreachableSince ??= now;
        if (current.state === 'ready') current.state = 'unreachable';
      }
      current.updatedAt = now;
    });
    return saved ?? node;
  }

  /** Fencing first: recorded on the node before any restore is asked for. */
  private async fence(
    node: NodeRecord,
    confirmation: NonNullable<NodeRecord['lost']>,
  ): Promise<NonNullable<NodeRecord['fence']>> {
    const now = this.clock.now().toISOString();
    const fence = { at: now, reason: `lost: ${confirmation.reason ?? confirmation.source} (${confirmation.by})` };
    const saved = await this.nodes.update(node.id, (current) => {
      if (current.fence) return false;
      current.fence = fence;
      current.lost ??= confirmation;
      current.updatedAt = now;
    });
    return saved?.fence ?? (await this.nodes.get(node.id))?.fence ?? fence;
  }

  private async noticeDeadline(nodeId: string): Promise<{ noticeDeadline?: { at: string; evacuationId: string } }> {
    const latest = (await this.evacuations.list())
      .filter((e) => e.nodeId === nodeId)
      .sort((a, b) => b.notice.deadline.localeCompare(a.notice.deadline))[0];
    return latest ? { noticeDeadline: { at: latest.notice.deadline, evacuationId: latest.id } } : {};
  }

  /** `quiet`: the node answers and nobody said it is gone: nothing to show (an earlier wait is cleared). */
  private async remember(workloadId: string, item: LossTickItem, quiet: boolean): Promise<void> {
    const status = (await this.statuses.get(workloadId)) ?? { id: workloadId };
    const now = this.clock.now().toISOString();
    if (quiet) {
      if (!status.loss) return;
      delete status.loss;
    } else {
      status.loss = {
        at: now,
        action: item.action,
        reason: item.reason,
        ...(item.checkpointId ? { checkpointId: item.checkpointId } : {}),
      };
    }
    await this.statuses.save(status);
  }
}
