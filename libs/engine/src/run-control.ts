import { MigrationStepError } from './engine.types.js';

/**
 * What the engine asks the world while a migration runs, bound to that one migration. The worker supplies
 * it (a Redis flag, the BullMQ lock); without one nothing is ever cancelled and the commit is always ours.
 */
export interface RunControl {
  /** A cancel was requested (POST /migrations/:id/cancel). */
  cancelRequested(): Promise<boolean>;
  /** Claims the commit point; false when a cancel won the race. */
  claimCommit(): Promise<boolean>;
  /**
   * Re-asserts this job's claim on the process it is about to freeze (WorkloadClaims, keyed by processKey):
   * undefined when the claim is (now) this job's, else the holder. Absent: nothing else can claim it.
   */
  claimWorkload?(key: string): Promise<string | undefined>;
  /** True once this worker lost its claim on the job (another worker may take it over). */
  lost?(): boolean;
}

export const UNCONTROLLED: RunControl = {
  cancelRequested: () => Promise.resolve(false),
  claimCommit: () => Promise.resolve(true),
};

/** Raised at a safe point (a phase boundary, or a CRIU command interrupted on purpose) after a cancel. */
export class CancelledError extends MigrationStepError {
  readonly cancelled = true;
  constructor(phase: string, beforeFreeze: boolean) {
    super(phase, `cancelled by request before '${phase}'`, beforeFreeze);
  }
}

/**
 * The engine stopped without an end state and the record stays 'running': a re-run (a retry, or another
 * worker after a stall) continues from what the nodes say. `transient` errors may pass on a later try
 * (an unreachable node); `frozen` says whether the source may be frozen right now, which makes a retry
 * urgent. The worker decides what to do with the job; the engine only says what happened.
 */
export class MigrationInterrupted extends Error {
  constructor(
    message: string,
    readonly transient: boolean,
    readonly frozen: boolean,
    override readonly cause?: Error,
  ) {
    super(message);
    this.name = 'MigrationInterrupted';
  }
}

/** This worker lost its claim on the job: it stops touching the nodes and leaves the job to the next one. */
export class LeaseLostError extends Error {
  constructor(phase: string) {
    super(`this worker lost its claim on the job before '${phase}'; another worker takes over`);
    this.name = 'LeaseLostError';
  }
}

/**
 * The workload record no longer names the process this job started from (its source node and pid, the process
 * it claimed): the workload moved elsewhere, e.g. another worker finished this migration and this run comes from
 * a stale copy of its record. Resuming or killing "the source" now could hit another process (or, where nodes
 * share a pid namespace, the workload's running copy), so the job ends `failed` with this message and touches
 * nothing.
 */
export class MovedElsewhere extends Error {
  constructor(action: string, why: string) {
    super(`${why}: the workload moved elsewhere, so this job ${action}; nothing was touched`);
    this.name = 'MovedElsewhere';
  }
}
