/**
 * What the live strategies (pre-copy, post-copy, hybrid) record on a migration, and the post-copy trial
 * result kept per node pair. Plain data, like models.ts.
 */

/** One pre-copy round (a `criu pre-dump` while the workload runs), from its stats-dump and the node clocks. */
export interface PreCopyRound {
  /** 1-based; round 1 copies everything, later rounds what the previous one let dirty. */
  round: number;
  pagesScanned: number;
  pagesWritten: number;
  /** Pages already in the parent round's images (not sent again). */
  pagesSkippedParent: number;
  /** Page bytes this round sent (pagesWritten * 4096). */
  bytes: number;
  /** The whole `criu pre-dump`, node clock. */
  durationMs: number;
  /** How long CRIU kept the tree frozen during this round (it resumes it before sending pages). */
  frozenMs: number;
  /** bytes / (CRIU's memdump + memwrite time): what the final dump can expect to move per second. */
  bandwidthBytesPerSec: number;
}

/** Why the rounds stopped, and what the final freeze was predicted to cost. */
export interface PreCopySummary {
  stopReason: string;
  predictedFinalFreezeMs: number;
  /** Pages the final dump actually wrote (the remaining dirty set). */
  finalPagesWritten?: number;
  /**
   * `lazy`: restored with `--lazy-pages`, the memory filled from the destination's images after resume by a
   * local lazy-pages daemon (the job completes once it is all in); `eager`: every page copied before resume.
   */
  restore?: 'lazy' | 'eager';
  /** Why that restore: both nodes' CRIU restore parent pages lazily, or what was missing. */
  restoreReason?: string;
  /** The lazy restore's fill after resume (same figures as post-copy's). */
  lazyFill?: PostCopyProgress;
}

/** The lazy (post-copy) part of a migration: pages keep arriving after the restored tree runs. */
export interface PostCopyProgress {
  /** Node time the destination had every page (the lazy-pages daemon finished; the source's server ended). */
  allPagesAt?: string;
  /** From resume (restored tree running) to all pages on the destination. */
  pagesAfterResumeMs?: number;
  /** Pages the lazy-pages daemon pulled, summed over the tree's processes. */
  lazyPages?: number;
  /** Per process, `copied/total` as the daemon reported it. */
  transferred?: string[];
}

/** Result of a real post-copy trial on one node pair (a tiny probe process moved with post-copy). */
export interface PostCopyTrialRecord {
  sourceNodeId: string;
  destinationNodeId: string;
  ok: boolean;
  at: string;
  durationMs: number;
  /** Why it failed, in CRIU's terms (classified log lines). */
  reason?: string;
  /** What the operator should change for post-copy to work on this pair. */
  advice?: string;
}
