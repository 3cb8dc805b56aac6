/**
 * The part of a spot node's notice rebalancing leaves unused when it packs, sized per pool from the notices
 * spotlift recorded there. The reserve exists because the cluster's scheduler adds work between two
 * evaluations: a node filled past what leaves within its notice only loses work if an interruption comes
 * before the next evaluation relieves it, so the reserve is worth its room in proportion to the pool's
 * notice rate. A calm pool (no notice in the window) keeps `floorFraction`, a pool at or above
 * `fullAtPerNodeDay` the whole `reserveFraction`, linearly between. Pure.
 */
import type { NoticeSighting, PoolReserveSettings } from './rebalance-types.js';

const NOTICE_WEIGHT = { interruption: 1, recommendation: 0.5 } as const;

/**
 * Weighted notices per node-day on each spot pool in the window. The pool's nodes are those running now
 * plus those the window's notices named (an interrupted node is gone but was part of the pool): a
 * lower bound of the node-days observed, so the rate leans high, towards the safe side.
 */
export function poolNoticeRates(
  nodes: readonly { id: string; spotPool?: string; lifecycle?: string }[],
  notices: readonly NoticeSighting[],
  now: Date,
  windowSeconds = 7 * 86_400,
): Map<string, number> {
  const since = now.getTime() - windowSeconds * 1000;
  const members = new Map<string, Set<string>>();
  const weight = new Map<string, number>();
  const add = (pool: string, id: string) => members.set(pool, (members.get(pool) ?? new Set()).add(id));
  for (const n of nodes) if (n.spotPool !== undefined && n.lifecycle !== 'on-demand') add(n.spotPool, n.id);
  for (const s of notices) {
    if (s.spotPool === undefined || s.at < since || s.at > now.getTime()) continue;
    add(s.spotPool, s.nodeId);
    weight.set(s.spotPool, (weight.get(s.spotPool) ?? 0) + NOTICE_WEIGHT[s.kind]);
  }
  const days = windowSeconds / 86_400;
  return new Map([...members].map(([pool, ids]) => [pool, (weight.get(pool) ?? 0) / (ids.size * days)]));
}

/** The reserve of a pool whose measured rate is `rate`, between the floor and `reserveFraction`. */
export function poolReserve(rate: number, reserveFraction: number, s: PoolReserveSettings): number {
  const floor = Math.min(reserveFraction, s.floorFraction ?? 0);
  return floor + (reserveFraction - floor) * Math.min(1, rate / s.fullAtPerNodeDay);
}
