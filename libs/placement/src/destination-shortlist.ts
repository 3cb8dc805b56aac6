/**
 * The destinations an evacuation is planned over. The planner's cost grows faster than the fleet: a plan of
 * one workload over 1,000 destinations took ~220 ms, of four ~3 s (30 destinations: 9 and 51 ms), and at a
 * thousand nodes that time sat between every notice and its first freeze. Most of a large fleet is never a
 * contender: the shortlist takes each workload's best destinations by placement's own ranking (hard filters,
 * then zone, spot pool, lifecycle, memory fit and pair bandwidth), in turns, until it holds `atLeast` nodes or
 * `perWorkload` per workload, whichever is more, and keeps going while its free memory is under
 * `memoryFactor` times what the workloads need. The nodes the plan must price whatever they rank (the storage
 * node, a guard copy's storage node) always stay. A fleet no larger than the shortlist is planned whole.
 */
import { chooseDestination } from './choose-destination.js';
import type { EvacuationInput } from './evacuation-types.js';
import type { CandidateNode } from './types.js';

export const SHORTLIST = { atLeast: 64, perWorkload: 8, memoryFactor: 2 } as const;

export function shortlistDestinations(
  input: EvacuationInput,
  limits: { atLeast: number; perWorkload: number; memoryFactor: number } = SHORTLIST,
): readonly CandidateNode[] {
  const all = input.destinations;
  const target = Math.max(limits.atLeast, limits.perWorkload * input.workloads.length);
  if (all.length <= target) return all;
  const byId = new Map(all.map((d) => [d.id, d]));
  const kept = new Set<string>(
    [input.storageNodeId, ...input.workloads.map((w) => w.guardCopy?.storageNodeId)].filter(
      (id): id is string => id !== undefined && byId.has(id),
    ),
  );
  const rankings = input.workloads.map((w) =>
    chooseDestination(w, input.source, all, { ...input.placement, rankLimit: target }).ranked.map((r) => r.nodeId),
  );
  const needed = limits.memoryFactor * input.workloads.reduce((s, w) => s + w.memoryBytes, 0);
  let free = [...kept].reduce((s, id) => s + freeOf(byId.get(id)!), 0);
  const deepest = Math.max(0, ...rankings.map((r) => r.length));
  for (let depth = 0; depth < deepest && (kept.size < target || free < needed); depth++) {
    for (const ranking of rankings) {
      const id = ranking[depth];
      if (id === undefined || kept.has(id)) continue;
      kept.add(id);
      free += freeOf(byId.get(id)!);
    }
  }
  // In the fleet's order: the planner's own tie-breaks see what they would have seen.
  return all.filter((d) => kept.has(d.id));
}

const freeOf = (d: CandidateNode): number => Math.max(0, d.freeMemoryBytes - (d.reservedMemoryBytes ?? 0));
