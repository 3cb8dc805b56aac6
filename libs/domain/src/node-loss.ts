/**
 * Guard mode's answer to a node that is lost without a usable notice, pure: when a node counts as lost
 * (silent beyond a threshold AND confirmed gone), and what that means for each guarded workload on it
 * (restore its last guard checkpoint elsewhere, or wait and say why). The pass that acts on it lives in
 * apps/orchestrator/src/guard/node-loss-pass.ts.
 *
 * Both conditions, never one: a silence alone may be a partition (the workload still runs, and a restore
 * would make two copies); a confirmation alone, with the node still answering, is a mistake to refuse.
 */
import type { CheckpointRecord, LossTakeover } from './checkpoint.js';
import { goodGuardCheckpoints } from './guard.js';
import type { NodeLossConfirmation, NodeRecord } from './models.js';

export type LossNode = Pick<NodeRecord, 'id' | 'state' | 'unreachableSince' | 'lost' | 'fence'>;

export interface LossFacts {
  node: LossNode;
  /** The latest notice deadline of the node's evacuations, if any. */
  noticeDeadline?: { at: string; evacuationId: string };
  /** How long the node must stay silent before a confirmed loss acts. */
  thresholdMs: number;
  now: Date;
}

/** The confirmation that counts: the operator's, or a notice whose deadline passed (recorded now). */
export function lossConfirmation(facts: LossFacts): NodeLossConfirmation | undefined {
  if (facts.node.lost) return facts.node.lost;
  const deadline = facts.noticeDeadline;
  if (deadline && Date.parse(deadline.at) <= facts.now.getTime()) {
    return {
      source: 'notice-deadline',
      at: facts.now.toISOString(),
      by: deadline.evacuationId,
      reason: `the notice deadline ${deadline.at} passed`,
    };
  }
  return undefined;
}

export type NodeLossVerdict =
  { lost: false; reason: string } | { lost: true; confirmation: NodeLossConfirmation; silentMs: number };

/** Whether the node counts as lost now; when not, the reason a restore waits. */
export function nodeLossVerdict(facts: LossFacts): NodeLossVerdict {
  const { node, now, thresholdMs } = facts;
  const confirmation = lossConfirmation(facts);
  const confirmHow = `POST /nodes/${node.id}/lost, or a notice whose deadline passed`;
  // The silence, not the state: a node under notice stays `terminating` while it goes quiet.
  if (!node.unreachableSince) {
    return {
      lost: false,
      reason: confirmation
        ? `node '${node.id}' is confirmed gone (${confirmation.source}) but still answers over SSH: nothing is restored while it may run the workload`
        : `node '${node.id}' answers over SSH`,
    };
  }
  const silentMs = now.getTime() - Date.parse(node.unreachableSince);
  if (silentMs < thresholdMs) {
    const at = new Date(Date.parse(node.unreachableSince) + thresholdMs).toISOString();
    return {
      lost: false,
      reason: `node '${node.id}' has not answered since ${node.unreachableSince}; below the ${thresholdMs / 1000} s threshold until ${at}${confirmation ? '' : ` and not confirmed gone (${confirmHow})`}`,
    };
  }
  if (!confirmation) {
    return {
      lost: false,
      reason: `node '${node.id}' has not answered for ${Math.round(silentMs / 1000)} s but is not confirmed gone: a silence may be a partition with the workload still running; confirm with ${confirmHow}`,
    };
  }
  return { lost: true, confirmation, silentMs };
}

export type LossRestoreDecision =
  | { action: 'wait'; reason: string }
  | { action: 'restore'; checkpointId: string; rpoSeconds: number; reason: string }
  | { action: 'in-progress'; checkpointId: string; reason: string };

export interface LossRestoreInput {
  verdict: NodeLossVerdict;
  nodeId: string;
  /** The workload's checkpoints, any order. */
  checkpoints: CheckpointRecord[];
  /** The checkpoint an earlier pass claimed for this loss (Redis): the same one is used again. */
  claimedCheckpointId?: string;
  now: Date;
}

/** For one guarded workload of the node: which guard checkpoint to restore, or why not (yet). */
export function decideLossRestore(input: LossRestoreInput): LossRestoreDecision {
  const { verdict, nodeId, now } = input;
  if (!verdict.lost) return { action: 'wait', reason: verdict.reason };
  const running = input.checkpoints.find((c) => c.state === 'restoring' && c.restore?.takeover?.fromNodeId === nodeId);
  if (running) {
    return {
      action: 'in-progress',
      checkpointId: running.id,
      reason: `restoring ${running.id} to '${running.restore!.destinationNodeId}'`,
    };
  }
  const good = goodGuardCheckpoints(input.checkpoints);
  // Once claimed, the loss sticks to its checkpoint: a newer one cannot appear (the node is silent), and an
  // older one must not be tried next to a restore that may still be under way.
  const chosen = input.claimedCheckpointId ? good.find((c) => c.id === input.claimedCheckpointId) : good[0];
  if (!chosen) {
    return {
      action: 'wait',
      reason: input.claimedCheckpointId
        ? `checkpoint ${input.claimedCheckpointId} claimed for this loss is no longer stored`
        : `node '${nodeId}' is lost but the workload has no stored guard checkpoint to restore`,
    };
  }
  const since = Date.parse(chosen.frozenAt ?? chosen.createdAt);
  return {
    action: 'restore',
    checkpointId: chosen.id,
    rpoSeconds: Math.max(0, (now.getTime() - since) / 1000),
    reason: `node '${nodeId}' lost (${verdict.confirmation.source}, silent ${Math.round(verdict.silentMs / 1000)} s): restoring guard checkpoint ${chosen.id}`,
  };
}

/**
 * The same for a container's copy (`staleContainer`): `found` is what the returned node's Podman shows under
 * that id now (undefined: it knows none). Only that very container is removed, by its full id; Podman keeps the
 * id across `restore --import`, so the restored copy has it too, but on another node, which is never asked.
 */
export function staleContainerAction(
  t: LossTakeover & { staleContainer: string },
  found: { id: string } | undefined,
): { action: 'remove' } | { action: 'gone'; outcome: string } {
  const short = t.staleContainer.slice(0, 12);
  if (!found) return { action: 'gone', outcome: `container ${short} no longer exists on ${t.fromNodeId}` };
  if (found.id !== t.staleContainer) {
    return {
      action: 'gone',
      outcome: `${short} on ${t.fromNodeId} names another container now (${found.id.slice(0, 12)}); left alone`,
    };
  }
  return { action: 'remove' };
}

/**
 * What the sweeper does with a restored workload's copy on its returned (fenced) node: `found` is what the
 * node shows under the stale pid now (undefined: nothing). Only the very process that was the workload is
 * killed: a pid reused by another process (another start time, the restored copy too on nodes sharing a
 * kernel) is left alone.
 */
export function staleCopyAction(
  t: LossTakeover,
  found: { startTime?: string } | undefined,
): { action: 'kill' } | { action: 'gone'; outcome: string } {
  if (!found) return { action: 'gone', outcome: `pid ${t.stalePid} no longer runs on ${t.fromNodeId}` };
  if (t.staleIdentity && found.startTime && found.startTime !== t.staleIdentity.startTime) {
    return {
      action: 'gone',
      outcome: `pid ${t.stalePid} on ${t.fromNodeId} is another process now (started ${found.startTime}); left alone`,
    };
  }
  return { action: 'kill' };
}
