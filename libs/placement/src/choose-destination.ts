/**
 * Destination choice for one workload: hard filters first (each exclusion explained), then a weighted
 * score over the survivors, ties broken by node id so the same inputs always give the same answer.
 */
import { fmtBytes, fmtRate, BYTES } from './format.js';
import type { CandidateNode, CpuInfo, PlacementWorkload, SourceNode } from './types.js';

/** Why a candidate cannot take the workload. */
export type ExclusionCode =
  | 'is-source'
  | 'terminating'
  | 'not-ready'
  | 'criu-unavailable'
  | 'insufficient-memory'
  | 'cpu-incompatible'
  | 'missing-label'
  | 'anti-affinity'
  | 'avoided-pool'
  | 'excluded';

/** Every reason a candidate failed the hard filters (all of them, not just the first). */
export interface Exclusion {
  nodeId: string;
  reasons: Array<{ code: ExclusionCode; message: string }>;
}

/** Points per soft criterion; each criterion scores 0..1 and is multiplied by its weight. */
export interface ScoreWeights {
  zone: number;
  spotPool: number;
  lifecycle: number;
  memory: number;
  bandwidth: number;
}

/** Weighted points per criterion and their sum. */
export interface ScoreBreakdown extends ScoreWeights {
  total: number;
}

/** A candidate that passed the hard filters. */
export interface ScoredCandidate {
  nodeId: string;
  score: ScoreBreakdown;
  /** Unreserved memory left on the node after this workload and its headroom. */
  freeAfterBytes: number;
}

/** Tunables; the defaults are what the planner uses. */
export interface PlacementOptions {
  /** Headroom on top of the workload's memory: a fraction of it... */
  headroomFraction?: number;
  /** ...plus a fixed amount (restore needs some slack, the node needs its own memory). */
  headroomBytes?: number;
  /** Priority from which on-demand destinations are preferred. */
  highPriorityThreshold?: number;
  weights?: Partial<ScoreWeights>;
  /** Spot pools to exclude outright (for example pools with a rebalance recommendation). */
  avoidSpotPools?: readonly string[];
  /** Nodes to exclude outright (for example one where this workload's migration already failed). */
  excludeNodeIds?: readonly string[];
  /** Accept a node whose CPU compatibility cannot be judged from the probe (preflight still checks). */
  allowUnverifiedCpu?: boolean;
  /**
   * `spread` (default): more free memory after placement scores higher (room to grow, even load).
   * `pack`: less left over scores higher (best fit), keeping large holes for large workloads when a
   * fleet's free memory is fragmented.
   */
  memoryFit?: 'spread' | 'pack';
  /** Return only the best N in `ranked` (all by default). */
  rankLimit?: number;
}

/** The chosen node with its score and reason, or why nothing fits. */
export type PlacementDecision =
  | {
      ok: true;
      nodeId: string;
      score: ScoreBreakdown;
      reason: string;
      ranked: ScoredCandidate[];
      excluded: Exclusion[];
    }
  | { ok: false; reason: string; ranked: []; excluded: Exclusion[] };

/** Zone first (cross-zone traffic is slower and billed), then pool diversity (correlated reclaims). */
export const DEFAULT_WEIGHTS: ScoreWeights = { zone: 30, spotPool: 25, lifecycle: 15, memory: 15, bandwidth: 15 };

/** Memory a destination must have unreserved for this workload. */
export function requiredMemoryBytes(memoryBytes: number, options: PlacementOptions = {}): number {
  const fraction = options.headroomFraction ?? 0.1;
  const fixed = options.headroomBytes ?? 128 * BYTES.MIB;
  return Math.ceil(memoryBytes * (1 + fraction) + fixed);
}

// Flag lists run to ~100 entries and the planner checks the same node many times: memoize the Set
// per array (a WeakMap keeps this pure from the caller's point of view and frees with the array).
const flagSets = new WeakMap<readonly string[], Set<string>>();
function flagSet(flags: readonly string[]): Set<string> {
  let set = flagSets.get(flags);
  if (!set) flagSets.set(flags, (set = new Set(flags)));
  return set;
}

/**
 * CRIU restores only where every CPU feature the source used exists. Flags decide when both are known;
 * otherwise an identical model is accepted; otherwise compatibility is unknown (`undefined`).
 */
export function cpuCompatible(source: CpuInfo, dest: CpuInfo): boolean | undefined {
  if (source.flags && dest.flags) {
    const have = flagSet(dest.flags);
    return source.flags.every((f) => have.has(f));
  }
  if (source.model && dest.model) return source.model === dest.model;
  return undefined;
}

/** Apply the hard filters to one candidate; an empty list means it may take the workload. */
export function hardFilter(
  workload: PlacementWorkload,
  source: SourceNode,
  node: CandidateNode,
  options: PlacementOptions = {},
): Exclusion['reasons'] {
  const out: Exclusion['reasons'] = [];
  const add = (code: ExclusionCode, message: string): void => void out.push({ code, message });
  if (node.id === source.id) add('is-source', 'is the node being evacuated');
  if (options.excludeNodeIds?.includes(node.id)) add('excluded', 'excluded by the caller (earlier failure)');
  if (node.state === 'terminating') add('terminating', 'is terminating: never a destination');
  else if (node.state !== 'ready') add('not-ready', `is ${node.state}, not ready`);
  if (!node.criuOk) add('criu-unavailable', 'CRIU check did not pass');
  const need = requiredMemoryBytes(workload.memoryBytes, options);
  const free = node.freeMemoryBytes - (node.reservedMemoryBytes ?? 0);
  if (free < need) {
    add('insufficient-memory', `needs ${fmtBytes(need)} with headroom, ${fmtBytes(free)} unreserved`);
  }
  const cpu = cpuCompatible(source.cpu, node.cpu);
  if (cpu === false) {
    const have = flagSet(node.cpu.flags ?? []);
    const missing = (source.cpu.flags ?? []).filter((f) => !have.has(f));
    const what = missing.length > 0 ? `lacks CPU flags ${missing.slice(0, 5).join(', ')}` : 'has a different CPU model';
    add('cpu-incompatible', what);
  } else if (cpu === undefined && !options.allowUnverifiedCpu) {
    add('cpu-incompatible', 'CPU compatibility unknown (no flags or model probed)');
  }
  const missingLabels = Object.entries(workload.requiredLabels ?? {}).filter(([k, v]) => node.labels[k] !== v);
  if (missingLabels.length > 0) {
    add('missing-label', `lacks required labels ${missingLabels.map(([k, v]) => `${k}=${v}`).join(', ')}`);
  }
  const group = workload.antiAffinityGroup;
  if (group !== undefined && node.antiAffinityGroups?.includes(group)) {
    add('anti-affinity', `already hosts anti-affinity group '${group}'`);
  }
  if (node.spotPool !== undefined && options.avoidSpotPools?.includes(node.spotPool)) {
    add('avoided-pool', `spot pool '${node.spotPool}' is being reclaimed or rebalanced`);
  }
  return out;
}

function rawScores(
  workload: PlacementWorkload,
  source: SourceNode,
  node: CandidateNode,
  highPriority: number,
): Omit<ScoreWeights, 'memory' | 'bandwidth'> {
  // Unknown zone or pool scores half: no evidence either way.
  const zone = !source.zone || !node.zone ? 0.5 : node.zone === source.zone ? 1 : 0;
  const spotPool =
    node.lifecycle === 'on-demand'
      ? 1
      : !source.spotPool || !node.spotPool
        ? 0.5
        : node.spotPool !== source.spotPool
          ? 1
          : 0;
  // Only critical workloads claim on-demand capacity; others are indifferent, leaving it to them.
  const lifecycle = workload.priority >= highPriority && node.lifecycle === 'on-demand' ? 1 : 0;
  return { zone, spotPool, lifecycle };
}

function describe(node: CandidateNode, source: SourceNode, s: ScoredCandidate): string {
  const parts: string[] = [];
  if (node.zone) parts.push(node.zone === source.zone ? `same zone ${node.zone}` : `other zone ${node.zone}`);
  if (node.lifecycle === 'on-demand') parts.push('on-demand');
  else if (node.spotPool)
    parts.push(node.spotPool === source.spotPool ? 'SAME spot pool as source' : `spot pool ${node.spotPool}`);
  parts.push(`${fmtBytes(s.freeAfterBytes)} free after placement`);
  if (node.bandwidthFromSourceBytesPerSec !== undefined)
    parts.push(`${fmtRate(node.bandwidthFromSourceBytesPerSec)} from source`);
  return parts.join(', ');
}

/**
 * Choose where one workload goes. Returns the best candidate with its score breakdown and a reason,
 * or, when every candidate fails a hard filter, each candidate's reasons.
 */
export function chooseDestination(
  workload: PlacementWorkload,
  source: SourceNode,
  candidates: readonly CandidateNode[],
  options: PlacementOptions = {},
): PlacementDecision {
  const weights = { ...DEFAULT_WEIGHTS, ...options.weights };
  const highPriority = options.highPriorityThreshold ?? 7;
  const excluded: Exclusion[] = [];
  let eligible: CandidateNode[] = [];
  for (const node of candidates) {
    const reasons = hardFilter(workload, source, node, options);
    if (reasons.length > 0) excluded.push({ nodeId: node.id, reasons });
    else eligible.push(node);
  }
  if (eligible.length === 0) {
    const why = excluded.map((e) => `${e.nodeId}: ${e.reasons.map((r) => r.message).join('; ')}`).join(' | ');
    return {
      ok: false,
      reason: `no destination for '${workload.id}': ${why || 'no candidates'}`,
      ranked: [],
      excluded,
    };
  }
  // A node emptied for release (rebalancing marked it) takes work only when nothing else fits.
  const kept = eligible.filter((n) => !n.releasable);
  if (kept.length > 0 && kept.length < eligible.length) eligible = kept;
  const need = requiredMemoryBytes(workload.memoryBytes, options);
  const freeAfter = (n: CandidateNode): number => n.freeMemoryBytes - (n.reservedMemoryBytes ?? 0) - need;
  let maxFree = 0;
  let maxBw = 0;
  for (const n of eligible) {
    maxFree = Math.max(maxFree, freeAfter(n));
    maxBw = Math.max(maxBw, n.bandwidthFromSourceBytesPerSec ?? 0);
  }
  const breakdown = (node: CandidateNode): ScoreWeights => {
    const raw = rawScores(workload, source, node, highPriority);
    const share = maxFree > 0 ? Math.max(0, freeAfter(node)) / maxFree : 1;
    const memory = options.memoryFit === 'pack' ? 1 - share : share;
    const bw = node.bandwidthFromSourceBytesPerSec;
    const bandwidth = bw === undefined || maxBw <= 0 ? 0.5 : bw / maxBw;
    return {
      zone: raw.zone * weights.zone,
      spotPool: raw.spotPool * weights.spotPool,
      lifecycle: raw.lifecycle * weights.lifecycle,
      memory: memory * weights.memory,
      bandwidth: bandwidth * weights.bandwidth,
    };
  };
  const total = (b: ScoreWeights): number => b.zone + b.spotPool + b.lifecycle + b.memory + b.bandwidth;
  // Totals first without building breakdowns (the planner scores ~100 nodes per try and keeps 3);
  // compare on rounded totals so float noise cannot beat the documented id tie-break.
  const scored = eligible.map((node) => ({ node, key: Math.round(total(breakdown(node)) * 1e6) }));
  const before = (a: (typeof scored)[number], b: (typeof scored)[number]): boolean =>
    a.key > b.key || (a.key === b.key && a.node.id < b.node.id);
  const limit = Math.max(1, options.rankLimit ?? scored.length);
  const top: typeof scored = [];
  for (const x of scored) {
    let i = top.length;
    while (i > 0 && before(x, top[i - 1]!)) i--;
    if (i < limit) {
      top.splice(i, 0, x);
      if (top.length > limit) top.pop();
    }
  }
  const ranked: ScoredCandidate[] = top.map((x) => {
    const b = breakdown(x.node);
    return { nodeId: x.node.id, score: { ...b, total: total(b) }, freeAfterBytes: freeAfter(x.node) };
  });
  const byId = new Map(top.map((x) => [x.node.id, x.node]));
  const best = ranked[0]!;
  const bestNode = byId.get(best.nodeId)!;
  const runnerUp = ranked[1];
  const vs = runnerUp ? `; next ${runnerUp.nodeId} ${runnerUp.score.total.toFixed(1)}` : '';
  const last = bestNode.releasable ? '; releasable, but no other node fits' : '';
  const reason = `${best.nodeId} (score ${best.score.total.toFixed(1)}${vs}): ${describe(bestNode, source, best)}${last}`;
  return { ok: true, nodeId: best.nodeId, score: best.score, reason, ranked, excluded };
}
