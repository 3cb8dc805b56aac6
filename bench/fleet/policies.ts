/**
 * The policies compared by the fleet benchmark, all on the library's shared-bandwidth model so the
 * comparison is about decisions, not about different physics: the planner, FIFO baselines (notice order,
 * stop-and-copy, fixed parallelism, no admission check) and the fractional-knapsack upper bound.
 */
import {
  advance,
  DEFAULT_STRATEGY_MODEL,
  chooseDestination,
  boundGroup,
  sharedMemoryBound,
  linksOf,
  planEvacuation,
  streamCap,
  type CandidateNode,
  type EvacuationInput,
  type PlacementWorkload,
  type SimJob,
} from '@spotlift/placement';
import type { Fleet } from './fleet-model.js';

/** Link and timing assumptions of one benchmark profile. */
export interface LinkProfile {
  name: string;
  /** Per-node NIC (outbound of the source, inbound of each destination). */
  nicBytesPerSec: number;
  /** One migration's stream ceiling (CRIU dump -> page-server -> restore pipeline, or the SSH relay). */
  streamBytesPerSec: number;
  /** Pair bandwidth across zones, as a fraction of the NIC. */
  crossZoneFactor: number;
  overheadSeconds: number;
  detectionSeconds: number;
  marginSeconds: number;
  maxParallel: number;
  /** Placement memory score for every policy alike (the planner's default is `pack`). */
  memoryFit: 'pack' | 'spread';
}

/** Destination memory and anti-affinity shared by the evacuations of one scenario (they overlap in time). */
export interface DestState {
  free: Map<string, number>;
  groups: Map<string, string[]>;
}

/** What one policy achieved on one evacuation. */
export interface Outcome {
  value: number;
  saved: number;
  placed: Array<{ workload: PlacementWorkload; nodeId: string }>;
  planMs?: number;
  parallelism?: number;
  /** Predicted downtime summed over the workloads saved (FIFO: its stop-and-copy freezes on the same model). */
  downtimeSeconds?: number;
}

/** A fresh shared state from the fleet's probed figures. */
export function initialState(fleet: Fleet): DestState {
  return {
    free: new Map(fleet.nodes.map((n) => [n.node.id, n.node.freeMemoryBytes])),
    groups: new Map(fleet.nodes.map((n) => [n.node.id, [...(n.node.antiAffinityGroups ?? [])]])),
  };
}

/** Record a policy's saved placements so later evacuations see the memory as taken. */
export function applyOutcome(state: DestState, out: Outcome): void {
  for (const p of out.placed) {
    state.free.set(p.nodeId, (state.free.get(p.nodeId) ?? 0) - p.workload.memoryBytes);
    if (p.workload.antiAffinityGroup) state.groups.get(p.nodeId)?.push(p.workload.antiAffinityGroup);
  }
}

/** The evacuation input for one noticed node. */
export function evacuationInput(
  fleet: Fleet,
  sourceId: string,
  noticeSeconds: number,
  p: LinkProfile,
  state: DestState,
): EvacuationInput {
  const src = fleet.nodes.find((n) => n.node.id === sourceId)!;
  const noticed = new Set(fleet.noticed);
  const destinations: CandidateNode[] = fleet.nodes
    .filter((n) => n.node.id !== sourceId)
    .map((n) => ({
      ...n.node,
      state: noticed.has(n.node.id) ? 'terminating' : n.node.state,
      freeMemoryBytes: state.free.get(n.node.id) ?? 0,
      antiAffinityGroups: state.groups.get(n.node.id) ?? [],
      bandwidthFromSourceBytesPerSec:
        n.node.zone === src.node.zone ? p.nicBytesPerSec : p.nicBytesPerSec * p.crossZoneFactor,
      inboundBandwidthBytesPerSec: p.nicBytesPerSec,
    }));
  return {
    deadlineSeconds: noticeSeconds - p.detectionSeconds - p.marginSeconds,
    source: {
      id: sourceId,
      cpu: src.node.cpu,
      softDirty: src.softDirty,
      ...(src.node.zone ? { zone: src.node.zone } : {}),
      ...(src.node.spotPool ? { spotPool: src.node.spotPool } : {}),
    },
    sourceOutboundBytesPerSec: p.nicBytesPerSec,
    workloads: src.workloads,
    destinations,
    perMigrationOverheadSeconds: p.overheadSeconds,
    perMigrationMaxBytesPerSec: p.streamBytesPerSec,
    maxParallel: p.maxParallel,
    placement: { memoryFit: p.memoryFit },
  };
}

/** The planner. */
export function runPlanner(input: EvacuationInput): Outcome {
  const t0 = performance.now();
  const plan = planEvacuation(input);
  const planMs = performance.now() - t0;
  const byId = new Map(input.workloads.map((w) => [w.id, w]));
  const kept = plan.migrations.filter((m) => !m.willMiss && m.destinationId);
  return {
    value: plan.workSaved,
    saved: kept.length,
    placed: kept.map((m) => ({ workload: byId.get(m.workloadId)!, nodeId: m.destinationId! })),
    planMs,
    parallelism: plan.parallelism,
    downtimeSeconds: plan.objective.totalDowntimeSeconds,
  };
}

/**
 * FIFO: workloads in notice order, `k` at a time, stop-and-copy, the same destination choice as the
 * planner, and no idea of the deadline: a migration that will not finish still holds its share of the link.
 */
export function runFifo(
  input: EvacuationInput,
  k: number,
  order: readonly PlacementWorkload[] = input.workloads,
): Outcome {
  const links = linksOf(input);
  const free = new Map(input.destinations.map((d) => [d.id, d.freeMemoryBytes]));
  const groups = new Map(input.destinations.map((d) => [d.id, [...(d.antiAffinityGroups ?? [])]]));
  const queue = [...order];
  const active: SimJob[] = [];
  const dest = new Map<string, string>();
  const out: Outcome = { value: 0, saved: 0, placed: [] };
  let now = 0;
  for (;;) {
    while (active.length < k && queue.length > 0) {
      const w = queue.shift()!;
      const view = input.destinations.map((d) => ({
        ...d,
        freeMemoryBytes: free.get(d.id) ?? 0,
        antiAffinityGroups: groups.get(d.id) ?? [],
      }));
      const choice = chooseDestination(w, input.source, view, input.placement);
      if (!choice.ok) continue;
      free.set(choice.nodeId, (free.get(choice.nodeId) ?? 0) - w.memoryBytes);
      if (w.antiAffinityGroup) groups.get(choice.nodeId)?.push(w.antiAffinityGroup);
      dest.set(w.id, choice.nodeId);
      const cap = streamCap(input, choice.nodeId);
      active.push({
        id: w.id,
        destinationId: choice.nodeId,
        capBytesPerSec: cap,
        overheadLeftSeconds: input.perMigrationOverheadSeconds,
        bytesLeft: w.memoryBytes,
        startedAt: now,
      });
    }
    // The node is gone at the deadline: nothing after it counts.
    if (active.length === 0 || now >= input.deadlineSeconds) break;
    const step = advance(active, links, now);
    now = step.now;
    for (const f of step.finished) {
      if (f.finishedAt > input.deadlineSeconds) continue;
      const w = input.workloads.find((x) => x.id === f.id)!;
      out.value += w.priority * w.memoryBytes;
      out.saved += 1;
      // Stop-and-copy: frozen from its first page to its last, plus the model's fixed freeze (as the planner counts).
      const fixed = input.strategyModel?.fixedCostSeconds ?? DEFAULT_STRATEGY_MODEL.fixedCostSeconds;
      out.downtimeSeconds = (out.downtimeSeconds ?? 0) + (f.finishedAt - f.transferStartedAt) + fixed;
      out.placed.push({ workload: w, nodeId: dest.get(w.id)! });
    }
  }
  return out;
}

/** Ablation: priority order with FIFO's mechanics (no admission check), to show what the check adds. */
export function runPriorityNoCheck(input: EvacuationInput, k: number): Outcome {
  const order = [...input.workloads].sort((a, b) => b.priority - a.priority || (a.id < b.id ? -1 : 1));
  return runFifo(input, k, order);
}

/**
 * The fleet's bound: every noticed node's link as a fractional knapsack with the full NIC, all of them
 * drawing on one pool of destination memory (the evacuations overlap in time). See evacuation-bound.ts.
 */
export function fleetBound(inputs: readonly EvacuationInput[]): number {
  const parts = inputs.map((input) => boundGroup(input));
  const ids = new Set(parts.flatMap((p) => [...p.destinationIds]));
  const free = new Map(inputs.flatMap((input) => input.destinations.map((d) => [d.id, d.freeMemoryBytes] as const)));
  const memory = [...ids].reduce((s, id) => s + Math.max(0, free.get(id) ?? 0), 0);
  return sharedMemoryBound(
    parts.map((p) => p.group),
    memory,
  );
}
