import type { NodeRecord } from '@spotlift/domain';
import type { NodeOps } from '../node-ops/node-ops.js';
import type { PodmanOps } from '../node-ops/podman/podman-ops.js';
import {
  type ContainerSweepFacts,
  type DestinationContainer,
  type SourceContainer,
  decideContainerSweep,
} from './container-sweep-decision.js';
import type { OwnerMarker } from './owner-marker.js';
import type { SweepDecision, SweepFacts, SweepPolicy } from './sweep-decision.js';

/** What a container's sweep decided and did. */
export interface ContainerSweepOutcome {
  decision: SweepDecision;
  error?: string;
  /** The destination's running copy's main pid (kill-source: the workload's from now on). */
  restoredPid?: number;
  /** resume-source: the source's container's main pid once restored from its kept checkpoint. */
  containerPid?: number;
  /** remove-copy: the node the copy that did not run was removed from. */
  removedCopyOn?: string;
}

/** How long a sweep waits for a Podman checkpoint or restore of the directory to end before it says 'wait'. */
const BUSY_WAIT_MS = 1_000;

/**
 * The sweeper's hands for a container's move (marker kind `podman`): the facts asked of each node's own Podman by
 * the container's full id (the source's about the source, the destination's about its copy), the decision of
 * container-sweep-decision.ts, and its action: `podman container restore` of the kept checkpoint (resume-source),
 * `podman rm` of the source's checkpointed container (kill-source), `podman rm` of a copy that does not run
 * (remove-copy, checked again just before). Never a running copy on the destination.
 */
export class ContainerSweep {
  constructor(
    private readonly ops: NodeOps,
    private readonly podman: PodmanOps,
    private readonly policy: SweepPolicy & { imageRoot: string },
    private readonly restoreTimeoutMs = 300_000,
  ) {}

  /** `destination`: the pair's node when it answered the listing, else undefined (then it counts as silent). */
  async sweep(
    name: string,
    base: SweepFacts,
    source: NodeRecord,
    marker: OwnerMarker,
    destination: NodeRecord | undefined,
  ): Promise<ContainerSweepOutcome> {
    const id = marker.container!;
    const { record, marked, lockHeld, keepImages, ageMs, criuBusy } = base;
    const facts: ContainerSweepFacts = { record, marked, lockHeld, keepImages, ageMs, podmanBusy: criuBusy };
    const out: ContainerSweepOutcome = { decision: { action: 'wait', removeImages: false, why: 'not decided' } };
    // A live job's directory is its own: no need to ask the nodes anything about it.
    if (record !== 'live') {
      const lock = await this.ops.processFacts(source, [], [marker.lockFile]);
      facts.lockHeld = lock?.locks.get(marker.lockFile) === 'held';
      const dirs: Array<[NodeRecord, string]> = [[source, 'src']];
      if (destination) dirs.push([destination, 'dst']);
      const busy = await Promise.all(
        dirs.map(([node, side]) =>
          this.podman
            .waitIdle(node, `${this.policy.imageRoot}/${name}/${side}`, BUSY_WAIT_MS)
            .then((idle) => !idle)
            .catch(() => true),
        ),
      );
      facts.podmanBusy ||= busy.some(Boolean);
      const src = await this.sourceState(source, id);
      if (src) facts.source = src;
      if (destination) {
        const dst = await this.destinationState(destination, id);
        if (dst) facts.destination = dst.state;
        if (dst?.pid !== undefined) out.restoredPid = dst.pid;
      }
    }
    out.decision = decideContainerSweep(facts, this.policy);
    try {
      if (out.decision.action === 'remove-copy') {
        await this.removeCopy(destination!, id);
        out.removedCopyOn = destination!.id;
        const next = decideContainerSweep({ ...facts, destination: 'none' }, this.policy);
        out.decision = { ...next, why: `the destination's copy, which did not run, was removed; then: ${next.why}` };
      }
      const pid = await this.act(out.decision, source, id);
      if (pid !== undefined) out.containerPid = pid;
    } catch (error) {
      out.error = (error as Error).message;
    }
    return out;
  }

  /** Does what the decision says to the source's container; resume-source returns its new main pid. */
  private async act(d: SweepDecision, source: NodeRecord, id: string): Promise<number | undefined> {
    if (d.action === 'resume-source') {
      const r = await this.podman.restoreLocal(source, id, this.restoreTimeoutMs);
      const after = await this.podman.inspect(source, id);
      if (!after?.running) {
        throw new Error(
          `restoring container ${id.slice(0, 12)} on ${source.id} from its kept checkpoint failed (${after?.rawState ?? 'gone'}): ${r.error}`,
        );
      }
      return after.mainPid;
    } else if (d.action === 'kill-source') {
      if (!(await this.podman.remove(source, id)))
        throw new Error(`container ${id.slice(0, 12)} on ${source.id} could not be removed`);
    }
    return undefined;
  }

  /** Removes the destination's copy, unless it runs now (then nothing is removed and the sweep looks again). */
  private async removeCopy(node: NodeRecord, id: string): Promise<void> {
    const now = await this.podman.inspect(node, id);
    if (now?.running) throw new Error(`container ${id.slice(0, 12)} on ${node.id} runs now: nothing removed`);
    if (now && !(await this.podman.remove(node, id)))
      throw new Error(`the copy ${id.slice(0, 12)} on ${node.id} could not be removed`);
  }

  private async sourceState(node: NodeRecord, id: string): Promise<SourceContainer | undefined> {
    const c = await this.podman.inspect(node, id).catch(() => null);
    if (c === null) return undefined;
    if (!c) return 'gone';
    if (c.running) return 'running';
    return c.checkpointed ? 'checkpointed' : 'stopped';
  }

  private async destinationState(
    node: NodeRecord,
    id: string,
  ): Promise<{ state: DestinationContainer; pid?: number } | undefined> {
    const c = await this.podman.inspect(node, id).catch(() => null);
    if (c === null) return undefined;
    if (!c) return { state: 'none' };
    return c.running && c.mainPid !== undefined ? { state: 'running', pid: c.mainPid } : { state: 'not-running' };
  }
}
