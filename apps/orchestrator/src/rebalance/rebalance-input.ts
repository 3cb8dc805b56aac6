/**
 * Builds the rebalancing planner's input from stored records (nodes, workloads, evacuations) and what was read
 * just now (MemAvailable, CPU samples). Pure: the service reads, this translates; the service's re-check at apply time
 * uses the same `underNotice` rule the planner saw.
 */
import {
  evacuationFinished,
  type EvacuationNotice,
  type EvacuationRecord,
  type NodeRecord,
  type WorkloadRecord,
} from '@spotlift/domain';
import type {
  MoveStart,
  NoticeSighting,
  PostCopyTrial,
  RebalanceInput,
  RebalanceNode,
  RebalancePolicy,
} from '@spotlift/placement';
import type { EvacuationSettings } from '../config/evacuation-config.js';
import type { RebalanceSettings } from './rebalance-config.js';

/** Lead time of a spot notice by cloud (AWS two minutes; GCP preemption and Azure eviction 30 s). */
export const NOTICE_SECONDS = { aws: 120, gcp: 30, azure: 30 } as const;

/** CPU read just now on a node (NodeOps.cpuSample): CPUs busy and each workload's share. */
export interface FreshCpu {
  busyCpus: number;
  cpuCount: number;
  /** CPUs each workload's root process kept busy, by workload id. */
  workloads: Readonly<Record<string, number>>;
}

export interface RebalanceSources {
  now: Date;
  policies: readonly RebalancePolicy[];
  nodes: readonly NodeRecord[];
  workloads: readonly WorkloadRecord[];
  evacuations: readonly EvacuationRecord[];
  /** MemAvailable read just now, where the node answered. */
  freshMemAvailable: Readonly<Record<string, number>>;
  /** CPU read just now, where the node answered. */
  freshCpu?: Readonly<Record<string, FreshCpu>>;
  /** Page throughput migrations measured per pair (PairLinks), by source then destination id. */
  pairBandwidth?: Readonly<Record<string, Readonly<Record<string, number>>>>;
  /** Post-copy trial results per pair (the evacuation planner's cache), by source then destination id. */
  pairPostCopyTrial?: Readonly<Record<string, Readonly<Record<string, PostCopyTrial>>>>;
  /** Each source's total outbound rate measured while several migrations left it (PairLinks.outbound). */
  nodeOutbound?: Readonly<Record<string, number>>;
  history: readonly MoveStart[];
  settings: RebalanceSettings;
  evacuation: EvacuationSettings;
}

/**
 * Why rebalancing must leave this node alone (neither source nor target), or undefined: it is not `ready`,
 * or an evacuation that moves work (a termination, or an early signal under `low-risk-first`) is open on it.
 * An early signal only recorded (`record`) leaves it usable as a source: that is de-risk's own input.
 */
export function pausedBy(node: NodeRecord, evacuations: readonly EvacuationRecord[]): string | undefined {
  if (node.state !== 'ready') return `node ${node.id} is ${node.state}`;
  const open = evacuations.find((e) => e.nodeId === node.id && e.policy !== 'record' && !evacuationFinished(e));
  return open ? `node ${node.id} is under notice (${open.notice.kind}, evacuation ${open.id})` : undefined;
}

/** Every notice spotlift recorded, as sightings for pool risk. */
export function noticeSightings(
  evacuations: readonly EvacuationRecord[],
  nodes: readonly NodeRecord[],
): NoticeSighting[] {
  const pool = new Map(nodes.map((n) => [n.id, n.spotPool]));
  const sighting = (e: EvacuationRecord, n: EvacuationNotice): NoticeSighting => {
    const p = pool.get(e.nodeId);
    return {
      nodeId: e.nodeId,
      ...(p !== undefined ? { spotPool: p } : {}),
      kind: n.kind === 'termination' || n.kind === 'preemption' ? 'interruption' : 'recommendation',
      at: new Date(n.receivedAt).getTime(),
    };
  };
  return evacuations.flatMap((e) => [e.notice, ...(e.otherNotices ?? [])].map((n) => sighting(e, n)));
}

export function buildRebalanceInput(src: RebalanceSources): RebalanceInput {
  const s = src.settings;
  const ev = src.evacuation;
  const running = src.workloads.filter((w) => w.state === 'running');
  const nodes: RebalanceNode[] = src.nodes
    .filter((n) => n.state !== 'gone')
    .map((n) => {
      const capacity = n.probe?.memTotalBytes ?? 0;
      const free = src.freshMemAvailable[n.id] ?? n.probe?.memAvailableBytes ?? 0;
      const price = s.nodePrices[n.id];
      const cpu = src.freshCpu?.[n.id];
      const notice = n.lifecycle === 'spot' && n.metadata ? NOTICE_SECONDS[n.metadata.provider] : undefined;
      return {
        id: n.id,
        state: n.state,
        criuOk: n.probe?.criuOk ?? false,
        freeMemoryBytes: free,
        memoryCapacityBytes: capacity,
        cpu: { ...(n.probe?.cpuModel ? { model: n.probe.cpuModel } : {}) },
        ...(cpu
          ? { cpuCount: cpu.cpuCount, cpuLoad: cpu.busyCpus }
          : n.probe?.cpuCount
            ? { cpuCount: n.probe.cpuCount }
            : {}),
        // Out over the configured source bandwidth (the evacuation section's, LAB.md's measured relay figure).
        ...(notice !== undefined ? { noticeSeconds: notice } : {}),
        ...(n.zone ? { zone: n.zone } : {}),
        ...(n.spotPool ? { spotPool: n.spotPool } : {}),
        lifecycle: n.lifecycle,
        labels: n.labels,
        softDirty: n.probe?.features?.mem_dirty_track === true,
        // The fleet figure; a pair migrations measured (pairBandwidth below) wins over it.
        bandwidthFromSourceBytesPerSec: ev.streamBandwidthBytesPerSec,
        // Per pair, the trial cache evacuations read wins (pairPostCopyTrial); a node alone says nothing of a pair.
        postCopyTrial: 'untested',
        ...(price !== undefined ? { pricePerHour: price } : {}),
        // A node consolidation emptied is left alone both ways: it is about to be released.
        underNotice: pausedBy(n, src.evacuations) !== undefined || n.releasable !== undefined,
        workloads: running
          .filter((w) => w.nodeId === n.id)
          .map((w) => ({
            id: w.id,
            memoryBytes: w.rssBytes ?? 0,
            dirtyRateBytesPerSec: w.dirtyRateBytesPerSec ?? ev.defaultDirtyRateBytesPerSec,
            priority: w.priority ?? ev.defaultPriority,
            ...(w.movable !== undefined ? { movable: w.movable } : {}),
            ...(w.maxDowntimeMs !== undefined ? { maxDowntimeMs: w.maxDowntimeMs } : {}),
            ...(cpu?.workloads[w.id] !== undefined ? { cpuCores: cpu.workloads[w.id] } : {}),
          })),
      };
    });
  return {
    now: src.now,
    policies: src.policies,
    nodes,
    notices: noticeSightings(src.evacuations, src.nodes),
    riskWindowSeconds: s.deRisk.windowSeconds,
    budgets: s.budgets,
    history: src.history,
    scoreThreshold: s.scoreThreshold,
    consolidate: s.consolidate,
    spread: s.spread,
    deRisk: { minRisk: s.deRisk.minRisk, minPriority: s.deRisk.minPriority },
    bandwidthBytesPerSec: ev.streamBandwidthBytesPerSec,
    ...(src.pairBandwidth ? { pairBandwidth: src.pairBandwidth } : {}),
    ...(src.pairPostCopyTrial ? { pairPostCopyTrial: src.pairPostCopyTrial } : {}),
    ...(src.nodeOutbound ? { nodeOutbound: src.nodeOutbound } : {}),
    evacuation: {
      safetyMarginSeconds: ev.safetyMarginSeconds,
      perMigrationOverheadSeconds: ev.perMigrationOverheadSeconds,
      maxParallel: ev.maxParallel,
      sourceBandwidthBytesPerSec: ev.sourceBandwidthBytesPerSec,
      reserveFraction: s.noticeReserveFraction,
    },
    ...(s.poolReserve ? { poolReserve: s.poolReserve } : {}),
    placement: { allowUnverifiedCpu: true },
  };
}
