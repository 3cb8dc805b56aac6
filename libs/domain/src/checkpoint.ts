/**
 * Checkpoints: a workload dumped from its node to a storage node, kept there, restored later elsewhere.
 * Plain data stored as JSON, like models.ts.
 */
import type { ProcessIdentity } from './workload-identity.js';
import type { DumpStats, MigrationRecord, PhaseRecord, RestoreStats, Transport, WorkloadKind } from './models.js';

/**
 * - `queued`: recorded, the job has not started.
 * - `taking`: the workload is being dumped to the storage node (it may be frozen).
 * - `stored`: the images are complete on the storage node and the source copy was killed.
 * - `failed`: the checkpoint could not be taken; the source was resumed (or is gone, see `error`).
 * - `restoring`: a restore to `restore.destinationNodeId` is under way.
 * - `restored`: the workload runs again on `restore.destinationNodeId`; the images stay until DELETE.
 */
export type CheckpointState = 'queued' | 'taking' | 'stored' | 'failed' | 'restoring' | 'restored';

/** One restore of a checkpoint (the latest; earlier failed ones are summed up in `notes`). */
export interface CheckpointRestore {
  /** 1-based; part of the restore job's id. */
  attempt: number;
  destinationNodeId: string;
  destinationReason: string;
  requestedAt: string;
  phases: PhaseRecord[];
  restoredPid?: number;
  /** Node-side time the restored tree ran (end of `restore -d`). */
  resumedAt?: string;
  criu?: RestoreStats;
  /** Bytes streamed from the storage node, sha256 verified on the destination. */
  imageBytes?: number;
  error?: string;
  /** A failed restore: where the tails of its CRIU logs (the destination's) outlive its working directory. */
  keptLogs?: MigrationRecord['keptLogs'];
  /** A forensic checkpoint's restore: a second copy next to the running original, not the workload. */
  clone?: boolean;
  /** A container's restore: the destination lacked the image and was sent the stored one (bytes). */
  imageSentBytes?: number;
  /** A guard checkpoint restored because its node was lost (node-loss.ts): the restored copy is the workload. */
  takeover?: LossTakeover;
  /**
   * A guard-restore's rollback (short-notice.ts): the restore elsewhere failed and was undone, so the workload goes
   * back to its source node, which is under notice and so no placement target, but still runs until its deadline.
   */
  rollback?: boolean;
}

/** The copy left on a lost node: the sweeper kills it there, first thing, should the node answer again. */
export interface LossTakeover {
  fromNodeId: string;
  stalePid: number;
  staleIdentity?: ProcessIdentity;
  /** A container's (kind `podman`) full id: what the sweeper removes there, by id (`stalePid` is its main pid). */
  staleContainer?: string;
  /** Set once the sweeper saw the stale copy gone on the returned node (killed, or no longer there). */
  staleGoneAt?: string;
  staleOutcome?: string;
}

/**
 * `storage` (default): the workload leaves its node and lives in the images until restored.
 * `forensic`: a copy of a running workload (`dump --leave-running`, frozen only for the dump); the original
 * keeps running where it was, and a restore of the copy elsewhere is a clone, never the workload itself.
 * `guard`: taken as a forensic copy is, periodically by the guard scheduler (guard.ts), kept the last N.
 */
export type CheckpointMode = 'storage' | 'forensic' | 'guard';

/** The workload keeps running where it was after the take (`dump --leave-running`). */
export function leavesRunning(c: Pick<CheckpointRecord, 'mode'>): boolean {
  return c.mode === 'forensic' || c.mode === 'guard';
}

/**
 * A container's checkpoint (kind `podman`): Podman's exported archive (`checkpoint.tar`, named volumes inside)
 * and the container's image (`image.tar`, `podman image save`) side by side in `imageDir`, under the same
 * checksum list as a process's images, so a restore needs neither the source node nor a registry.
 */
export interface CheckpointContainer {
  /** The container's full id (Podman keeps it across `restore --import`) and its name. */
  id: string;
  name: string;
  image: { name: string; id: string };
  /** Bytes of `image.tar` on the storage node. */
  imageBytes?: number;
  volumes: string[];
  /** Published host ports: a restore's destination must have them free. */
  ports: number[];
  /** Podman's own durations (ms): the checkpoint command, CRIU's frozen time. */
  checkpointMs?: number;
  frozenMs?: number;
}

export interface CheckpointRecord {
  id: string;
  /** The workload's kind when taken; absent: `process`. */
  kind?: WorkloadKind;
  /** Kind `podman`: the container stored (see CheckpointContainer). */
  container?: CheckpointContainer;
  /** Absent: 'storage' (records from before forensic checkpoints). */
  mode?: CheckpointMode;
  workloadId: string;
  workloadName?: string;
  sourceNodeId: string;
  storageNodeId: string;
  /** `<checkpoint root of the storage node>/<workload id>/<checkpoint id>`. */
  imageDir: string;
  state: CheckpointState;
  /** The process's key (`processKey`) the take claimed at creation; released when the take ends. */
  claimKey?: string;
  /** Phases of taking the checkpoint (preflight .. commit, cleanup), as migrations record them. */
  phases: PhaseRecord[];
  /** CRIU's stats-dump; restore stats are under `restore`. */
  criu: { dump?: DumpStats };
  /** `pages`: written by the dump; `images`: the image files streamed after it; `stored`: on disk there. */
  /** `files`: the workload's declared paths, stored as one tar next to the images (restored before it runs). */
  bytes: { pages: number; images: number; stored?: number; files?: number };
  /** The declared paths (WorkloadRecord.paths) stored with the checkpoint. */
  paths?: string[];
  /** How page traffic went to the storage node (as a migration's `transport`), and the ssh route taken. */
  transport?: Transport;
  transportRoute?: string;
  /** sha256 of the image stream, checked on the storage node. */
  sha256?: string;
  /** Encrypted at rest (a key configured on the orchestrator when it was taken): see CheckpointEncryption. */
  encryption?: CheckpointEncryption;
  /** The tree at dump time (root first) and its resident memory: what a restore must bring back. */
  tree?: number[];
  rssBytes?: number;
  /** CRIU version that wrote the images (the source's): a restore needs one at least as new. */
  criuVersion?: string;
  frozenAt?: string;
  storedAt?: string;
  /** The evacuation that asked for it, when a notice did. */
  evacuationId?: string;
  /** A guard checkpoint's place in its chain of incremental dumps (guard-chain.ts); absent: full. */
  guardChain?: GuardChainLink;
  restore?: CheckpointRestore;
  error?: string;
  /** A failed take: where the tails of its CRIU logs (source, storage node) outlive the removed images. */
  keptLogs?: MigrationRecord['keptLogs'];
  notes?: string[];
  createdAt: string;
  updatedAt: string;
}

/** Where a guard checkpoint sits in its chain (see guard-chain.ts). */
export interface GuardChainLink {
  /** The checkpoint whose images this one's pages build on; absent: a full dump. */
  parentId?: string;
  /** 1 for a full dump, parent's depth + 1 for an incremental one. */
  depth: number;
  /** Taken with `--track-mem`: the soft-dirty bits were reset then, so a child may build on it. */
  trackMem: boolean;
}

/**
 * How a stored checkpoint's files are encrypted. The data key is random per checkpoint and kept only wrapped
 * (AES-256-GCM) by the orchestrator's master key, which never leaves the orchestrator; the data key itself goes
 * to a process's source (to encrypt its images) and to a restoring node (to decrypt), over SSH stdin only. What
 * the orchestrator relays (a process's declared-files tar, a container's archive) it encrypts itself.
 */
export interface CheckpointEncryption {
  /** `openssl enc -aes-256-ctr -pbkdf2 -iter 10000 -md sha256`, one salt per file; the data key is the password. */
  scheme: 'openssl-aes-256-ctr-pbkdf2';
  /** Which master key wrapped it: the first 16 hex digits of sha256(master key). */
  keyId: string;
  /** base64 of iv (12) | tag (16) | the wrapped data key. */
  wrappedKey: string;
  /** `sha256sum` lines of every encrypted stored file as written (ciphertext): what a restore checks against. */
  sums?: string;
}

/** True when no job works on the checkpoint right now. */
export function checkpointSettled(c: Pick<CheckpointRecord, 'state'>): boolean {
  return c.state === 'stored' || c.state === 'failed' || c.state === 'restored';
}
