import type { SweepDecision } from './sweep-decision.js';

/**
 * A post-copy trial's leftovers (strategies/post-copy-trial.ts): the trial works in `<imageRoot>/trial-<8 hex>`
 * and names its probe process after that directory (the probe's `comm`, which CRIU restores with the task, and
 * which the kernel answers without touching the process's memory, unlike a lazily restored command line). An
 * orchestrator that dies mid-trial leaves the directory, the probe (stopped on the source, restored on the
 * destination) and CRIU's helpers (the lazy dump's page server, the lazy-pages daemon). Only spotlift's own
 * probe is ever matched: the name holds the trial's random id, and only a directory of that name on that same
 * node leads to it. Pure: the table in the spec is the contract.
 */

/** A trial directory's name, and its probe's comm (14 characters: the kernel keeps 15). */
export const TRIAL_NAME = /^trial-[0-9a-f]{8}$/;

export function trialName(hex: string): string {
  const name = `trial-${hex}`;
  if (!TRIAL_NAME.test(name)) throw new Error(`not a trial id: ${hex}`);
  return name;
}

/**
 * The longest a running trial keeps its directory: the probe's start, the lazy dump and the lazy-pages
 * daemon (under a minute each), the restore and the page wait (`trialTimeoutMs` each). A younger directory
 * may be another replica's trial at work, whatever the orphan grace says (tests run with a grace of 0).
 */
export function trialMaxMs(trialTimeoutMs: number): number {
  return 3 * trialTimeoutMs + 120_000;
}

export interface TrialFacts {
  /** The directory's name under the image root. */
  name: string;
  /** A migration or checkpoint record by that name (a trial never has one). */
  record: 'none' | 'live' | 'finished';
  /** An owner marker on either side (a trial never writes one: then it is a migration's directory). */
  marked: boolean;
  /** Age of the directory (its mtime). */
  ageMs: number;
}

export interface TrialPolicy {
  orphanGraceMs: number;
  /** trialMaxMs() of the configured trial timeout. */
  trialMaxMs: number;
}

/** What to do with a trial's leftovers; undefined when the directory is not a trial's (the migration rules decide). */
export function decideTrialSweep(f: TrialFacts, policy: TrialPolicy): SweepDecision | undefined {
  if (!TRIAL_NAME.test(f.name) || f.record !== 'none' || f.marked) return undefined;
  const grace = Math.max(policy.orphanGraceMs, policy.trialMaxMs);
  if (f.ageMs < grace)
    return {
      action: 'skip',
      removeImages: false,
      why: `a post-copy trial's directory younger than ${grace} ms: it may still run`,
    };
  return {
    action: 'remove-trial',
    removeImages: true,
    why: "a dead post-copy trial's leftovers: its probe and CRIU helpers killed, its directory removed",
  };
}
