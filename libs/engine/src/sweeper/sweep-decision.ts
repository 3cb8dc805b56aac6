/**
 * What the sweeper does with one migration's leftovers (`<imageRoot>/<id>` on its nodes, and the source tree
 * that may still be frozen), decided from facts only, by the engine's commit rules: the source is resumed only
 * when the destination provably runs nothing, killed only when the destination's copy runs and verifies, and
 * otherwise left frozen and reported. Frozen beats running twice. Pure: the table in the spec is the contract.
 */

/** The source tree the markers name: `frozen` (stopped), `running`, `gone` (or its pid now names another process). */
export type SourceTree = 'frozen' | 'running' | 'gone';

/**
 * The destination's restored tree (from CRIU's restored.pid in the destination's directory):
 * `none` = no restored tree lives there; `verified` = it runs, with the source's task count and command line;
 * `unverified` = a process lives under that pid but is stopped or does not match.
 */
export type RestoredTree = 'none' | 'verified' | 'unverified';

export interface SweepFacts {
  /** The migration's record: absent, not finished (a worker owns it, or will: recovery), or finished. */
  record: 'none' | 'live' | 'finished';
  /** A marker was found on either side: it names the source node, the tree and the pair. */
  marked: boolean;
  /** The node-side freeze lock of the workload is held (the job's session is alive). */
  lockHeld: boolean;
  /** A CRIU process still runs in the migration's directory on either node. */
  criuBusy: boolean;
  /** Undefined when the source node did not answer. */
  source?: SourceTree;
  /** Undefined when the destination node did not answer. */
  destination?: RestoredTree;
  keepImages: boolean;
  /** Age of the directory (marker's creation time, else the directory's mtime). */
  ageMs: number;
}

export interface SweepPolicy {
  /** Images a job kept on purpose (`keepImages`) are removed after this long. */
  keepImagesMaxAgeMs: number;
  /**
   * A directory without any record is left alone until it is this old: it may be another installation's job
   * (another Redis) between its freeze and its restore, which only the node-side freeze lock would show.
   */
  orphanGraceMs: number;
}

export type SweepAction =
  /** A live job owns it: hands off. */
  | 'skip'
  /** Not decidable yet (CRIU still runs, a node does not answer): look again next time. */
  | 'wait'
  | 'resume-source'
  | 'kill-source'
  /** Needs a person: logged as an error and recorded; the tree stays as it is and the images stay. */
  | 'report'
  /** Nothing is frozen: only the images go (or stay, when kept on purpose and young). */
  | 'remove-images'
  /**
   * Containers only (container-sweep-decision.ts): the destination's copy, which does not run, is removed while
   * the source's container is still there (running, or checkpointed to be restored); then decided again.
   */
  | 'remove-copy'
  /**
   * A dead post-copy trial's directory (trial-leftovers.ts): its probe processes and CRIU helpers are killed
   * on each node that lists it, then the directory goes. No workload is involved.
   */
  | 'remove-trial';

export interface SweepDecision {
  action: SweepAction;
  /** Remove `<imageRoot>/<id>` on both nodes once the action succeeded. */
  removeImages: boolean;
  why: string;
}

export function decideSweep(f: SweepFacts, policy: SweepPolicy): SweepDecision {
  const images = (action: SweepAction, why: string): SweepDecision => {
    const keep = f.keepImages && f.ageMs < policy.keepImagesMaxAgeMs;
    return {
      action,
      removeImages: !keep,
      why: keep
        ? `${why}; images kept on purpose (keepImages) until they are ${policy.keepImagesMaxAgeMs} ms old`
        : why,
    };
  };
  const hold = (action: 'skip' | 'wait' | 'report', why: string): SweepDecision => ({
    action,
    removeImages: false,
    why,
  });

  if (f.record === 'live') return hold('skip', 'its migration is not finished: the worker (or its recovery) owns it');
  if (f.lockHeld) return hold('skip', 'the node-side freeze lock is held: its job is alive');
  if (f.record === 'none' && f.ageMs < policy.orphanGraceMs)
    return hold('skip', `no record, and younger than the orphan grace (${policy.orphanGraceMs} ms)`);
  if (f.criuBusy) return hold('wait', 'CRIU still runs in its directory: decide once it ended');
  if (!f.marked) {
    if (f.record === 'finished') return images('remove-images', 'its migration finished; the images were left behind');
    // Without a marker nothing says which tree this is: no process is touched, the memory dump goes after the age.
    return {
      action: 'report',
      removeImages: f.ageMs >= policy.keepImagesMaxAgeMs,
      why: 'no owner marker and no record: cannot tell which tree it belongs to',
    };
  }
  if (f.source === undefined) return hold('wait', 'the source node does not answer');
  if (f.source === 'frozen') {
    if (f.destination === undefined)
      return hold('report', 'the source is frozen and the destination does not answer: left frozen');
    if (f.destination === 'verified')
      return images('kill-source', 'the destination runs the restored copy, verified: the frozen source is killed');
    if (f.destination === 'none')
      return images('resume-source', 'the destination runs no copy (CRIU ended there, no restored tree): resumed');
    return hold('report', 'the source is frozen and a restored tree that does not verify lives on the destination');
  }
  if (f.source === 'running' && (f.destination === 'verified' || f.destination === 'unverified'))
    return hold('report', 'the source runs and a restored copy lives on the destination: two copies');
  if (f.source === 'running') return images('remove-images', 'nothing is frozen: the source runs');
  return images(
    'remove-images',
    f.destination === 'verified' || f.destination === 'unverified'
      ? 'the source is gone; the destination runs the only copy'
      : 'the source is gone and no copy runs: the workload was lost before the sweep',
  );
}
