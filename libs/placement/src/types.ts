/**
 * Input shapes shared by placement, strategy choice and evacuation planning. Plain JSON-friendly data:
 * callers build them from node probes and workload records; nothing here performs I/O.
 * Units: bytes, bytes per second, seconds.
 */
import type { GuardCopyInfo, Lifecycle, NodeState, Strategy } from '@spotlift/domain';

/** A strategy the engine can actually run (`auto` is resolved by {@link chooseStrategy}). */
export type ConcreteStrategy = Exclude<Strategy, 'auto'>;

/** Result of the real post-copy trial on one node pair (a probe alone is not proof, see LAB.md). */
export type PostCopyTrial = 'ok' | 'failed' | 'untested';

/** What CRIU's `cpuinfo check` compares, as far as a probe could read it. */
export interface CpuInfo {
  model?: string;
  /** CPU feature flags (`/proc/cpuinfo` flags). When both sides have them, they decide compatibility. */
  flags?: readonly string[];
}

/** A process tree to move, as the planner sees it. */
export interface PlacementWorkload {
  id: string;
  memoryBytes: number;
  /** Measured rate of distinct pages dirtied, bytes/s. */
  dirtyRateBytesPerSec: number;
  /** 1 (expendable) .. 10 (critical). Weighs the work saved. */
  priority: number;
  /** Labels a destination must carry with exactly these values. */
  requiredLabels?: Readonly<Record<string, string>>;
  /** Workloads sharing a group must not share a node. */
  antiAffinityGroup?: string;
  /** Longest acceptable freeze, seconds. Planner default applies when absent. */
  downtimeBudgetSeconds?: number;
  /** Hard cap on the freeze, seconds: the evacuation planner never plans a move predicted to freeze longer. */
  maxDowntimeSeconds?: number;
  /** A guarded workload's last good guard checkpoint (see guard-path.ts): what a too-short notice can build on. */
  guardCopy?: GuardCopy;
}

/** The newest stored guard checkpoint of a workload, as the evacuation planner sees it (domain's guardCopyOf). */
export type GuardCopy = GuardCopyInfo;

/** The node being drained or reclaimed. */
export interface SourceNode {
  id: string;
  zone?: string;
  spotPool?: string;
  cpu: CpuInfo;
  /** `criu check --feature mem_dirty_track` passed: pre-copy is possible from this node. */
  softDirty: boolean;
}

/** A possible destination, seen from one source (bandwidth and the post-copy trial are per pair). */
export interface CandidateNode {
  id: string;
  state: NodeState;
  /** `criu check` passed on this node. */
  criuOk: boolean;
  /** Memory available on the node as last probed. */
  freeMemoryBytes: number;
  /** Memory promised to in-flight migrations that the probe does not show yet. */
  reservedMemoryBytes?: number;
  cpu: CpuInfo;
  zone?: string;
  spotPool?: string;
  lifecycle: Lifecycle;
  labels: Readonly<Record<string, string>>;
  /** Anti-affinity groups already present (or reserved) on the node. */
  antiAffinityGroups?: readonly string[];
  /** Measured single-stream throughput from the source to this node. */
  bandwidthFromSourceBytesPerSec?: number;
  /** Inbound capacity of this node, shared by every transfer landing on it. */
  inboundBandwidthBytesPerSec?: number;
  /** Post-copy trial result for the pair (source, this node). */
  postCopyTrial?: PostCopyTrial;
  /** Rebalancing emptied it for release: it takes work only when no other node can. */
  releasable?: boolean;
}
