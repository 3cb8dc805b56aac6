/**
 * Whether a node could be evacuated within its notice, as rebalancing must keep it: the planner never packs a
 * node beyond it and `spread` relieves a node that refilled past it. The same arithmetic as the evacuation
 * planner's first estimate (its workloads leave `maxParallel` at a time over the node's outbound link, each
 * with a fixed overhead), plus the capacity left on other nodes to receive them. Pure.
 */
import { fmtBytes, fmtSeconds } from './format.js';

/** What an evacuation of one node is assumed to get (the config file's `evacuation` section and measurements). */
export interface EvacuationModel {
  /** Seconds kept in hand before the deadline. */
  safetyMarginSeconds: number;
  /** Seconds each migration spends without moving pages. */
  perMigrationOverheadSeconds: number;
  /** Migrations of one evacuation at once. */
  maxParallel: number;
  /** The node's outbound bandwidth when it has no measured figure, bytes/s. */
  sourceBandwidthBytesPerSec: number;
  /**
   * Fraction of the notice rebalancing leaves unused (0..1): arrivals between two evaluations land on nodes
   * it cannot steer, so packing aims below the limit.
   */
  reserveFraction?: number;
  /** Fraction of a receiving node's memory an evacuation fills at most (its placement headroom); default 1. */
  fillFraction?: number;
}

export interface EvacuableNode {
  id: string;
  /** Lead time of this node's notice (AWS spot 120 s, GCP/Azure 30 s); absent: no notice to escape. */
  noticeSeconds?: number;
  /** Measured outbound bandwidth of the node, bytes/s. */
  uplinkBytesPerSec?: number;
  /** This node's share of the notice kept unused (its pool's, rebalance-reserve.ts); else the model's. */
  reserveFraction?: number;
}

/** Seconds to send `count` workloads of `bytes` in all away: pages over the link plus one overhead per wave. */
export function evacuationSeconds(bytes: number, count: number, bandwidth: number, m: EvacuationModel): number {
  return bytes / bandwidth + Math.ceil(count / Math.max(1, m.maxParallel)) * m.perMigrationOverheadSeconds;
}

/** Bytes `count` workloads may add up to on the node and still leave within its notice (Infinity without one). */
export function evacuableBytes(n: EvacuableNode, count: number, m: EvacuationModel | undefined): number {
  if (!m || n.noticeSeconds === undefined) return Infinity;
  const bandwidth = n.uplinkBytesPerSec ?? m.sourceBandwidthBytesPerSec;
  const seconds = (n.noticeSeconds - m.safetyMarginSeconds) * (1 - (n.reserveFraction ?? m.reserveFraction ?? 0));
  const overhead = Math.ceil(count / Math.max(1, m.maxParallel)) * m.perMigrationOverheadSeconds;
  return Math.max(0, (seconds - overhead) * bandwidth);
}

/**
 * Why a node carrying `bytes` in `count` workloads could not be evacuated within its notice, or undefined: too
 * much for its link in the time, or more than the `receiving` bytes free on the other nodes.
 */
export function unevacuable(
  n: EvacuableNode,
  bytes: number,
  count: number,
  receiving: number,
  m: EvacuationModel | undefined,
): string | undefined {
  if (!m || n.noticeSeconds === undefined || count === 0) return undefined;
  const limit = evacuableBytes(n, count, m);
  if (bytes > limit) {
    const need = evacuationSeconds(bytes, count, n.uplinkBytesPerSec ?? m.sourceBandwidthBytesPerSec, m);
    return `${fmtBytes(bytes)} on ${n.id} needs ${fmtSeconds(need)} to leave, its notice gives ${fmtSeconds(n.noticeSeconds)} (at most ${fmtBytes(limit)})`;
  }
  if (bytes > receiving)
    return `${fmtBytes(bytes)} on ${n.id} could not be received: ${fmtBytes(receiving)} free on the other nodes`;
  return undefined;
}
