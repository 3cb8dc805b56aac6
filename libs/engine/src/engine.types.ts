import type { MigrationRecord, NodeRecord, ProcessIdentity, WorkloadRecord } from '@spotlift/domain';

export interface FileSyncConfig {
  /** Copies while the workload runs, at most (the first sends everything). */
  maxRounds: number;
  /** Rounds go on until one takes at most this long: the copy left for the freeze is then about as short. */
  targetRoundMs: number;
}

export const DEFAULT_FILE_SYNC_CONFIG: FileSyncConfig = { maxRounds: 4, targetRoundMs: 200 };

export interface EngineConfig {
  /** Root of per-migration image directories on every node; each migration uses `<root>/<migrationId>`. */
  imageRoot: string;
  /** Page-server ports are drawn from [portMin, portMax]. */
  pageServerPortMin: number;
  pageServerPortMax: number;
  /** Upper bound for one CRIU command (dump, restore). */
  criuTimeoutMs: number;
  /** Free memory the destination must keep beyond the workload's RSS, as a fraction of the RSS. */
  memoryHeadroom: number;
  /** How long cleanup keeps trying to remove image directories on a node that does not answer. */
  cleanupRetryMs?: number;
  /** How long recovery waits for a CRIU command left running by a dead worker before giving the job back. */
  criuIdleTimeoutMs?: number;
  /** How often a running dump checks for a cancel request. */
  cancelPollMs?: number;
  /**
   * Preflight reuses the destination's last probe instead of running `criu check` when that probe passed
   * it at most this long ago (0 = always run it).
   */
  probeReuseMs?: number;
  /**
   * Largest deleted-but-open file the tree may hold that dumps carry as a CRIU ghost file (`--ghost-limit`;
   * CRIU's own default is 1 MiB and a bigger one fails the dump).
   */
  ghostLimitBytes?: number;
  /** Copy rounds of workloads' declared files while they run (see WorkloadFiles). */
  fileSync?: FileSyncConfig;
  /**
   * The orchestrator's master key (32 bytes): set, every process checkpoint is encrypted at rest under a data
   * key it wraps (checkpoint/checkpoint-crypto.ts). Never sent to any node.
   */
  checkpointKey?: Uint8Array;
}

export const DEFAULT_ENGINE_CONFIG: EngineConfig = {
  imageRoot: '/var/lib/spotlift/images',
  pageServerPortMin: 27100,
  pageServerPortMax: 27999,
  criuTimeoutMs: 10 * 60_000,
  memoryHeadroom: 0.1,
  cleanupRetryMs: 60_000,
  criuIdleTimeoutMs: 5 * 60_000,
  cancelPollMs: 500,
  probeReuseMs: 60_000,
  ghostLimitBytes: 64 * 1024 * 1024,
};

/** Everything one migration run needs, loaded once at the start. */
export interface MigrationContext {
  migration: MigrationRecord;
  workload: WorkloadRecord;
  source: NodeRecord;
  destination: NodeRecord;
  sourceDir: string;
  destinationDir: string;
  /** Which process the restored tree's root is (read by verify): the workload's identity from the commit on. */
  restoredIdentity?: ProcessIdentity;
}

/** A failure the engine already knows how to describe; `phase` says where it happened. */
export class MigrationStepError extends Error {
  constructor(
    readonly phase: string,
    message: string,
    /** The workload was never frozen: nothing to roll back, the job simply fails. */
    readonly beforeFreeze: boolean,
  ) {
    super(message);
  }
}
