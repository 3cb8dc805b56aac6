import type { ProcessIdentity } from './workload-identity.js';
import type { PostCopyProgress, PreCopyRound, PreCopySummary } from './live-migration.js';

/**
 * The words of spotlift (see ARCHITECTURE.md): nodes, workloads, migrations. Plain data, stored as JSON;
 * no behaviour here so every lib and app can share them without pulling in I/O.
 */

/** How spotlift reaches a node over SSH. The host key is pinned: an unknown key is refused, never accepted. */
export interface NodeTarget {
  id: string;
  /** SSH address (an IP or host name the orchestrator can reach). */
  host: string;
  port: number;
  user: string;
  /** Pinned host key: `ssh-ed25519 AAAA...` (as in known_hosts, without the host field) or `SHA256:<base64>`. */
  hostKey: string;
  /** Address other nodes use for page traffic to this node (page-server, lazy-pages). Defaults to `host`. */
  dataAddress?: string;
}

/** Who said a node is gone for good (a restore from guard checkpoints needs this and a silence). */
export interface NodeLossConfirmation {
  source: 'operator' | 'notice-deadline' | 'kubernetes';
  at: string;
  /** The operator's token name, the evacuation whose notice deadline passed, or the Kubernetes API watched. */
  by: string;
  reason?: string;
}

export type NodeState = 'ready' | 'draining' | 'terminating' | 'gone' | 'unreachable';
export type Lifecycle = 'spot' | 'on-demand';

/** What a probe over SSH found on a node. */
export interface NodeProbe {
  probedAt: string;
  criuVersion?: string;
  /** `criu check` passed ("Looks good."). */
  criuOk: boolean;
  criuCheckOutput?: string;
  /** `criu check --feature X` results, e.g. mem_dirty_track, uffd-noncoop. */
  features: Record<string, boolean>;
  kernel?: string;
  cpuModel?: string;
  cpuCount?: number;
  memTotalBytes?: number;
  memAvailableBytes?: number;
  diskFreeBytes?: number;
  error?: string;
}

/** A node's cloud metadata service, watched for spot notices over the node's SSH session. */
export interface NodeMetadataSource {
  provider: 'aws' | 'gcp' | 'azure';
  baseUrl?: string;
  /** Azure: this VM's name in Scheduled Events. */
  vmName?: string;
}

export interface NodeRecord extends NodeTarget {
  name: string;
  labels: Record<string, string>;
  zone?: string;
  spotPool?: string;
  lifecycle: Lifecycle;
  state: NodeState;
  probe?: NodeProbe;
  /** Watched for notices by worker replicas, whether the node came from the config file or `POST /nodes`. */
  metadata?: NodeMetadataSource;
  /**
   * File systems this node shares with others: nodes with the same `group` see the same files under each of
   * `paths` (NFS, a shared volume), so a workload's declared files there are not copied between them.
   */
  sharedStorage?: SharedStorage;
  /** Where this node keeps checkpoint images when it serves as a storage node (else the orchestrator's default). */
  checkpointRoot?: string;
  /** Set by `POST /nodes/:id/drain` when it made the node `draining`; `undrain` removes it (see NodesService). */
  drain?: { at: string };
  /** Set by capacity rebalancing (`consolidate`) when it emptied the node: it may be released. spotlift never terminates it. */
  releasable?: { at: string; planId: string };
  /** When the guard pass first found it not answering over SSH; cleared once it answers (node-loss.ts). */
  unreachableSince?: string;
  /** Confirmed gone: by an operator (`POST /nodes/:id/lost`) or a notice whose deadline passed (node-loss.ts). */
  lost?: NodeLossConfirmation;
  /** Fenced after a confirmed loss: no command but the sweeper's kill of copies restored elsewhere; agent tokens refused. */
  fence?: { at: string; reason: string };
  createdAt: string;
  updatedAt: string;
}

/** `checkpointed`: dumped to a storage node and killed; it runs nowhere until a checkpoint restore. */
export type WorkloadState = 'running' | 'migrating' | 'gone' | 'checkpointed';

export interface SharedStorage {
  group: string;
  paths: string[];
}

/** `process`: a process tree registered by pid; `podman`: a Podman container, moved by Podman's checkpoint/restore. */
export type WorkloadKind = 'process' | 'podman';

export interface GuardSettings {
  /** A guard checkpoint is due this long after the last one began. */
  intervalSeconds: number;
  /** Guard checkpoints kept on the storage node (older ones are removed). Default 2. */
  keep?: number;
  /** A guard checkpoint whose freeze is predicted (from the last one) above this is skipped, with the reason. */
  maxFreezeMs?: number;
}

export interface WorkloadRecord {
  id: string;
  name: string;
  nodeId: string;
  /** Absent: `process` (records from before kinds existed). */
  kind?: WorkloadKind;
  /** `podman`: the container's full id (Podman keeps it across `restore --import`). */
  container?: string;
  /** `podman`: the container's name, as Podman shows it (the destination must not have another by that name). */
  containerName?: string;
  /** `podman`: the container's image (name and id), sent to a destination that lacks it. */
  image?: { name: string; id: string };
  /**
   * Host PID of the tree's root (for a pid-namespaced workload: the namespace's init; for a container: its main
   * process, read again after every move).
   */
  pid: number;
  /** Which process `pid` is (boot, pid namespace, start time): see workload-identity.ts. Absent on old records. */
  identity?: ProcessIdentity;
  pidfile?: string;
  /** Resident memory of the whole tree, bytes, from the last inspection. */
  rssBytes?: number;
  /** PIDs of the tree at the last inspection, root first. */
  tree?: number[];
  /** 1 (expendable) .. 10 (critical): weighs the work an evacuation saves; the fleet default when absent. */
  priority?: number;
  /**
   * Longest freeze a move may cost it, ms: evacuations never plan a move predicted longer, rebalancing never
   * proposes one.
   */
  maxDowntimeMs?: number;
  /** Declared rate of distinct pages dirtied, bytes/s (pre-copy and the planner); the fleet default when absent. */
  dirtyRateBytesPerSec?: number;
  /** `false`: capacity rebalancing never moves it (evacuations still do). */
  movable?: boolean;
  /**
   * Absolute paths (files or directories) the workload uses that must exist on the destination: its open
   * files, working directory, data. Copied to the destination while it runs and once more, the changes only,
   * inside the freeze; skipped where both nodes share storage for that path.
   */
  paths?: string[];
  /** Guard mode: periodic `--leave-running` checkpoints to the storage node (guard.ts). */
  guard?: GuardSettings;
  state: WorkloadState;
  createdAt: string;
  updatedAt: string;
}

export type Strategy = 'stop-and-copy' | 'pre-copy' | 'post-copy' | 'hybrid' | 'auto';
export type Transport = 'tcp' | 'tls' | 'ssh';
export type MigrationState = 'queued' | 'running' | 'completed' | 'rolled_back' | 'failed' | 'cancelled';

/** Phase names in the order the engine runs them. */
export type PhaseName =
  | 'preflight'
  | 'prepare'
  | 'dump'
  | 'transfer'
  | 'restore'
  | 'verify'
  | 'commit'
  | 'rollback'
  | 'cleanup'
  // Live strategies: the post-copy trial on the pair, pre-copy rounds, lazy pages arriving after resume.
  | 'probe'
  | 'precopy'
  | 'pages'
  // The workload's declared files, copied while it runs.
  | 'files';

export interface PhaseRecord {
  name: PhaseName;
  startedAt: string;
  endedAt?: string;
  durationMs?: number;
  ok?: boolean;
  detail?: string;
  /** The worker died during the phase; recovery closed it (`endedAt` = when recovery found it open). */
  interrupted?: boolean;
}

/** CRIU's own figures, from the stats-dump image (times in microseconds as CRIU writes them). */
export interface DumpStats {
  freezingTimeUs: number;
  frozenTimeUs: number;
  memdumpTimeUs: number;
  memwriteTimeUs: number;
  pagesScanned: number;
  pagesSkippedParent: number;
  pagesWritten: number;
  pagesLazy: number;
  irmapResolveUs?: number;
  pagePipes?: number;
  pagePipeBufs?: number;
  shpagesScanned?: number;
  shpagesSkippedParent?: number;
  shpagesWritten?: number;
}

/** From the stats-restore image. */
export interface RestoreStats {
  pagesCompared: number;
  pagesSkippedCow: number;
  forkingTimeUs: number;
  restoreTimeUs: number;
  pagesRestored?: number;
}

export interface MigrationRecord {
  id: string;
  workloadId: string;
  sourceNodeId: string;
  destinationNodeId: string;
  /** Why this destination (given by the caller, or the placement's reason). */
  destinationReason: string;
  strategy: Strategy;
  transport: Transport;
  /** How page traffic went, when the transport had a choice (ssh: `direct: ...` node to node, or `relay: ...` and why). */
  transportRoute?: string;
  state: MigrationState;
  phases: PhaseRecord[];
  criu: { dump?: DumpStats; restore?: RestoreStats };
  /** `relayed`: bytes the orchestrator relayed for page traffic (the ssh transport), source to destination. */
  bytes: { pages: number; images: number; relayed?: number };
  /** Measured transfer rates: pages through the page transport (CRIU's memwrite time), image files (tar stream). */
  throughput?: { pagesBytesPerSec?: number; imagesBytesPerSec?: number };
  /** Freeze (source tasks stopped) to resume (destination tree running), measured on the nodes. */
  downtimeMs?: number;
  frozenAt?: string;
  resumedAt?: string;
  /** Host PID of the restored tree's root on the destination. */
  restoredPid?: number;
  /** The process's key (`processKey`) this job claimed at creation: its claim and node-side lock use it. */
  claimKey?: string;
  /**
   * When a worker's journal wrote this unfinished record back into a Redis that had lost it: it may be a stale
   * copy of a host that did not drive the job to its end, so a job run from it only recovers from what the
   * nodes say and never starts the migration over (libs/store RecordOrder, the engine's run).
   */
  restoredFromJournal?: string;
  error?: string;
  rollbackReason?: string;
  /** A job that did not complete: where the tails of its CRIU logs outlive its image directories (per node). */
  keptLogs?: Array<{ nodeId: string; dir: string; files: number }>;
  /** CRIU's stats images were missing or unreadable: what was wrong, and where downtime came from instead. */
  statsProblem?: string;
  /** Events outside the phase list a reader should know about: recovery by another worker, retries, cancel. */
  notes?: string[];
  keepImages?: boolean;
  /** What the caller asked for (`auto` included); `strategy` is what ran, after selection and fallbacks. */
  requestedStrategy?: Strategy;
  /** Why `strategy` was chosen (auto's prediction, or the fallback that led to it). */
  strategyReason?: string;
  /** Strategies that could not run, in order, each with why (`post-copy -> stop-and-copy: ...`). */
  fallbacks?: string[];
  /** Longest acceptable freeze for this job; pre-copy converges towards it, auto chooses by it. */
  downtimeBudgetMs?: number;
  /** When the source must be gone (ISO time); bounds pre-copy rounds and auto's choice. */
  deadline?: string;
  /** Pre-copy rounds at most for this job (the config's `live.maxRounds` otherwise). */
  maxRounds?: number;
  /** Pre-copy rounds, in order, and why they stopped. */
  rounds?: PreCopyRound[];
  precopy?: PreCopySummary;
  /** Post-copy and hybrid: pages arriving after resume; the job completes only once all arrived. */
  postCopy?: PostCopyProgress;
  /** The evacuation this migration is part of, when a notice started it. */
  evacuationId?: string;
  /** The workload's declared files: what was copied before and inside the freeze, or why nothing was. */
  files?: FileSyncSummary;
  /** A container's move: its image (sent before the freeze when the destination lacked it) and Podman's figures. */
  container?: ContainerMoveSummary;
  createdAt: string;
  updatedAt: string;
}

/** One copy of a workload's declared files: everything (first), or what changed since the previous copy. */
export interface FileSyncRound {
  /** Entries (files, directories, links) sent, and entries removed on the destination because they went. */
  sent: number;
  deleted: number;
  bytes: number;
  durationMs: number;
}

export interface FileSyncSummary {
  /** Declared paths copied to the destination. */
  synced: string[];
  /** Declared paths on storage both nodes share: not copied. */
  shared: string[];
  /** Copies while the workload ran, in order. */
  rounds: FileSyncRound[];
  /** The copy inside the freeze (changes since the last round). */
  final?: FileSyncRound;
}

/** What a container's migration did besides CRIU's own figures (those go to `criu` as for processes). */
export interface ContainerMoveSummary {
  /** The image: `sent` when the destination lacked it (`podman image save | load`, before any freeze). */
  image: { name: string; id: string; sent: boolean; bytes?: number; durationMs?: number };
  /** `podman container checkpoint --export` streamed to the destination: archive size (named volumes inside). */
  archiveBytes?: number;
  /**
   * How the image and the archive travelled: `direct <transport>: ...` (node to node over the migration's
   * transport) or `relay: ...; not direct: <why>` (through the orchestrator's SSH channels).
   */
  route?: string;
  /** Podman's own durations (ms): the whole checkpoint command, the whole restore command, CRIU's frozen time. */
  checkpointMs?: number;
  restoreMs?: number;
  frozenMs?: number;
  /** Named volumes carried inside Podman's archive. */
  volumes?: string[];
}
