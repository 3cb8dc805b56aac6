import { type SweepDecision, type SweepFacts, type SweepPolicy, decideSweep } from './sweep-decision.js';

/**
 * The sweeper's decision for a container's move (kind `podman`), by the same commit rules as a process's:
 * what Podman says of the container on each node is mapped onto the process facts, so the one table in
 * sweep-decision.spec.ts stays the contract. A checkpointed (exited) source container is the "frozen" source:
 * it runs nowhere and Podman kept its checkpoint, so `resume-source` = `podman container restore` of that
 * kept checkpoint and `kill-source` = `podman rm` of the source's container (the copy runs verified). Pure.
 */

/**
 * The source's container by id: `running`; `checkpointed` (exited by the checkpoint, Podman keeps it to restore);
 * `stopped` (exited without a kept checkpoint: nothing can bring it back here); `gone` (Podman does not know it).
 */
export type SourceContainer = 'running' | 'checkpointed' | 'stopped' | 'gone';

/** The destination's container by the same id: `none`, `running` (its main pid lives), `not-running` (created, exited). */
export type DestinationContainer = 'none' | 'running' | 'not-running';

export interface ContainerSweepFacts extends Omit<SweepFacts, 'source' | 'destination' | 'criuBusy'> {
  /** A Podman checkpoint or restore naming the migration's directory still runs on either node. */
  podmanBusy: boolean;
  /** Undefined when the source node (or its Podman) did not answer. */
  source?: SourceContainer;
  /** Undefined when the destination node (or its Podman) did not answer. */
  destination?: DestinationContainer;
}

const SOURCE: Record<Exclude<SourceContainer, 'stopped'>, SweepFacts['source']> = {
  running: 'running',
  checkpointed: 'frozen',
  gone: 'gone',
};
const DESTINATION: Record<DestinationContainer, SweepFacts['destination']> = {
  none: 'none',
  running: 'verified',
  'not-running': 'unverified',
};

export function decideContainerSweep(f: ContainerSweepFacts, policy: SweepPolicy): SweepDecision {
  const { podmanBusy, source, destination, ...rest } = f;
  const facts: SweepFacts = {
    ...rest,
    criuBusy: podmanBusy,
    // 'stopped' is decided below, once the rules that come before the source's state let it through
    source: source === undefined ? undefined : source === 'stopped' ? 'frozen' : SOURCE[source],
    destination: destination === undefined ? undefined : DESTINATION[destination],
  };
  const d = decideSweep(facts, policy);
  if (!f.marked || d.action === 'skip' || d.action === 'wait') return d;
  // A copy that does not run (a restore that failed or lost the race, a rolled-back move's) next to a source that
  // still holds the workload: it is never the only copy, and it blocks a later move by its id and name.
  if (destination === 'not-running' && (source === 'running' || source === 'checkpointed')) {
    return {
      action: 'remove-copy',
      removeImages: false,
      why: `the destination's copy does not run and the source's container is ${source}: the copy is removed, then the source is decided again`,
    };
  }
  if (source !== 'stopped') return d;
  // A stopped source without a kept checkpoint cannot be restored: only a running copy elsewhere settles it.
  if (destination === 'running') {
    return {
      ...d,
      action: 'kill-source',
      why: "the source's container is stopped without a kept checkpoint and the destination runs the copy: the source's is removed",
    };
  }
  const where =
    destination === undefined
      ? 'does not answer'
      : destination === 'none'
        ? 'has no copy'
        : 'has a copy that does not run';
  return {
    action: 'report',
    removeImages: false,
    why: `the source's container is stopped without a kept checkpoint and the destination ${where}: nothing can be restored, left as it is`,
  };
}
