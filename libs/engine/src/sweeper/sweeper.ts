import type { NodeRecord } from '@spotlift/domain';
import type { Clock } from '../clock.js';
import type { NodeOps } from '../node-ops/node-ops.js';
import type { PodmanOps } from '../node-ops/podman/podman-ops.js';
import { ContainerSweep, type ContainerSweepOutcome } from './container-sweep.js';
import { type OwnerMarker, parseOwnerMarker } from './owner-marker.js';
import { decideTrialSweep, trialMaxMs } from './trial-leftovers.js';
import type { ListedDir, NodeFacts } from '../node-ops/sweep-commands.js';
import {
  type RestoredTree,
  type SourceTree,
  type SweepAction,
  type SweepDecision,
  type SweepFacts,
  decideSweep,
} from './sweep-decision.js';

/** Where the sweeper learns whether a directory's migration (or checkpoint) is still owned by a job. */
export interface SweepRecords {
  stateOf(id: string): Promise<'none' | 'live' | 'finished'>;
}

export interface SweeperConfig {
  imageRoot: string;
  keepImagesMaxAgeMs: number;
  orphanGraceMs: number;
  /** How long a running post-copy trial may keep its directory (trialMaxMs(); 5 min for the 60 s default timeout). */
  trialMaxMs?: number;
}

/** One migration directory the sweeper looked at, what it decided and did. */
export interface SweepItem {
  migrationId: string;
  action: SweepAction;
  why: string;
  sourceNodeId?: string;
  destinationNodeId?: string;
  workloadId?: string;
  pid?: number;
  restoredPid?: number;
  /** Nodes the image directory was removed from. */
  removedFrom: string[];
  /** A container's move: its main pid after resume-source (restored on the source from its kept checkpoint). */
  containerPid?: number;
  /** A container's move: the node a copy that did not run was removed from (remove-copy, before the action). */
  removedCopyOn?: string;
  /** A post-copy trial's leftovers (remove-trial): the processes killed, per node. */
  killed?: Array<{ nodeId: string; pid: number; what: 'criu' | 'probe' }>;
  /** The action failed: the tree is as it was (a failed resume or kill is retried next sweep). */
  error?: string;
}

export interface SweepReport {
  startedAt: string;
  finishedAt: string;
  unreachable: Array<{ nodeId: string; error: string }>;
  items: SweepItem[];
}

interface Side {
  node: NodeRecord;
  marker: OwnerMarker;
}

const RUNNING = new Set(['R', 'S', 'D', 'I']);

/**
 * Finds what dead jobs left on the nodes (frozen trees, image directories holding process memory) and resolves
 * it by the commit rules (see sweep-decision.ts). A node speaks for itself only: the source side is taken from
 * the marker the source node holds about itself, the restored tree from the destination node's own directory,
 * so one node's files can never make the sweeper kill or resume a process on another.
 */
export class Sweeper {
  /** A container's leftovers (marker kind `podman`): asked of and acted on through each node's Podman. */
  private readonly containers?: ContainerSweep;

  constructor(
    private readonly ops: NodeOps,
    private readonly records: SweepRecords,
    private readonly config: SweeperConfig,
    private readonly clock: Clock,
    podman?: PodmanOps,
  ) {
    if (podman) this.containers = new ContainerSweep(ops, podman, config);
  }

  async sweep(nodes: readonly NodeRecord[]): Promise<SweepReport> {
    const startedAt = this.clock.now().toISOString();
    const unreachable: SweepReport['unreachable'] = [];
    const listings = new Map<string, Map<string, ListedDir>>();
    await Promise.all(
      nodes.map(async (node) => {
        try {
          const dirs = await this.ops.listImageDirs(node, this.config.imageRoot);
          listings.set(node.id, new Map(dirs.map((d) => [d.name, d])));
        } catch (error) {
          unreachable.push({ nodeId: node.id, error: (error as Error).message });
        }
      }),
    );
    const names = new Set([...listings.values()].flatMap((m) => [...m.keys()]));
    const items: SweepItem[] = [];
    for (const name of [...names].sort()) {
      try {
        items.push(await this.sweepOne(name, nodes, listings));
      } catch (error) {
        items.push({ migrationId: name, action: 'wait', why: 'looking failed', removedFrom: [], error: String(error) });
      }
    }
    return { startedAt, finishedAt: this.clock.now().toISOString(), unreachable, items };
  }

  private async sweepOne(
    name: string,
    nodes: readonly NodeRecord[],
    listings: Map<string, Map<string, ListedDir>>,
  ): Promise<SweepItem> {
    const byId = new Map(nodes.map((n) => [n.id, n]));
    // Each side's marker as its own node holds it (on a shared file system every node lists every side).
    let source: Side | undefined;
    let destination: Side | undefined;
    for (const [nodeId, dirs] of listings) {
      const d = dirs.get(name);
      const src = parseOwnerMarker(d?.markers.src ?? '');
      const dst = parseOwnerMarker(d?.markers.dst ?? '');
      if (src?.role === 'source' && src.sourceNodeId === nodeId && src.migrationId === name)
        source = { node: byId.get(nodeId)!, marker: src };
      if (dst?.role === 'destination' && dst.destinationNodeId === nodeId && dst.migrationId === name)
        destination = { node: byId.get(nodeId)!, marker: dst };
    }
    const marker = source?.marker;
    const destNode = marker ? byId.get(marker.destinationNodeId) : destination?.node;
    const listed = [...listings.values()].map((m) => m.get(name)).filter((d): d is ListedDir => !!d);
    const mtime = Math.min(...listed.map((d) => d.mtimeMs ?? Infinity));
    const created = marker ? Date.parse(marker.createdAt) : mtime;
    const facts: SweepFacts = {
      record: await this.records.stateOf(name),
      marked: !!source,
      lockHeld: false,
      criuBusy: listed.some((d) => d.criuPids.length > 0),
      keepImages: marker?.keepImages ?? destination?.marker.keepImages ?? false,
      ageMs: Number.isFinite(created) ? this.clock.now().getTime() - created : 0,
    };
    const trial = decideTrialSweep(
      {
        name,
        record: facts.record,
        // Any marker text at all, even one that does not parse: not a trial's, the migration rules decide.
        marked: listed.some((d) => d.markers.src !== undefined || d.markers.dst !== undefined),
        ageMs: facts.ageMs,
      },
      { orphanGraceMs: this.config.orphanGraceMs, trialMaxMs: this.config.trialMaxMs ?? trialMaxMs(60_000) },
    );
    if (trial) return this.sweepTrial(name, trial, nodes, listings);
    const dest = destNode && listings.has(destNode.id) ? destNode : undefined;
    const outcome: ContainerSweepOutcome =
      marker?.kind !== 'podman'
        ? await this.sweepProcess(name, facts, source, destNode, listings)
        : this.containers
          ? await this.containers.sweep(name, facts, source!.node, marker, dest)
          : {
              decision: {
                action: 'report',
                removeImages: false,
                why: 'a container move, and no Podman operations here',
              },
            };
    const { decision, error, restoredPid, containerPid, removedCopyOn } = outcome;
    const item: SweepItem = {
      migrationId: name,
      action: decision.action,
      why: decision.why,
      removedFrom: [],
      ...(marker
        ? {
            sourceNodeId: marker.sourceNodeId,
            destinationNodeId: marker.destinationNodeId,
            workloadId: marker.workloadId,
            pid: marker.pid,
          }
        : {}),
      ...(restoredPid !== undefined ? { restoredPid } : {}),
      ...(containerPid !== undefined ? { containerPid } : {}),
      ...(removedCopyOn !== undefined ? { removedCopyOn } : {}),
      ...(error !== undefined ? { error } : {}),
    };
    if (error !== undefined) return item;
    if (decision.removeImages) {
      // Every node that lists it: the sides' own nodes, and on separate disks any other copy too.
      for (const node of nodes.filter((n) => listings.get(n.id)?.has(name))) {
        if (await this.ops.removeDir(node, `${this.config.imageRoot}/${name}`)) item.removedFrom.push(node.id);
      }
    }
    return item;
  }

  /**
   * A dead post-copy trial's leftovers, on every node that lists its directory: each node kills only its own
   * processes named after the trial (and CRIU helpers working in that directory), then removes the directory.
   */
  private async sweepTrial(
    name: string,
    decision: SweepDecision,
    nodes: readonly NodeRecord[],
    listings: Map<string, Map<string, ListedDir>>,
  ): Promise<SweepItem> {
    const item: SweepItem = { migrationId: name, action: decision.action, why: decision.why, removedFrom: [] };
    if (decision.action !== 'remove-trial') return item;
    const killed: NonNullable<SweepItem['killed']> = [];
    const errors: string[] = [];
    for (const node of nodes.filter((n) => listings.get(n.id)?.has(name))) {
      try {
        const done = await this.ops.cleanTrial(node, this.config.imageRoot, name);
        killed.push(...done.killed.map((k) => ({ nodeId: node.id, ...k })));
        if (done.removed) item.removedFrom.push(node.id);
        else errors.push(`${node.id}: the directory is still there`);
      } catch (error) {
        errors.push(`${node.id}: ${(error as Error).message}`);
      }
    }
    return { ...item, killed, ...(errors.length ? { error: errors.join('; ') } : {}) };
  }

  /** A process tree's leftovers: the frozen source and the restored tree, by pid, decided and acted on. */
  private async sweepProcess(
    name: string,
    facts: SweepFacts,
    source: Side | undefined,
    destNode: NodeRecord | undefined,
    listings: Map<string, Map<string, ListedDir>>,
  ): Promise<{ decision: SweepDecision; error?: string; restoredPid?: number }> {
    const marker = source?.marker;
    const on = (nodeId: string | undefined) => (nodeId ? listings.get(nodeId)?.get(name) : undefined);
    let restoredPid: number | undefined;
    // A live job's directory is its own: no need to ask the nodes anything about it.
    if (source && marker && facts.record !== 'live') {
      const srcFacts = await this.ops.processFacts(source.node, [marker.pid], [marker.lockFile]);
      if (srcFacts) {
        facts.lockHeld = srcFacts.locks.get(marker.lockFile) === 'held';
        facts.source = sourceTree(srcFacts, marker);
      }
      restoredPid = destNode ? on(destNode.id)?.restoredPid : undefined;
      if (destNode && listings.has(destNode.id)) {
        const restored = await this.restoredTree(destNode, restoredPid, srcFacts?.procs.get(marker.pid), marker);
        if (restored !== undefined) facts.destination = restored;
      }
    }
    const decision = decideSweep(facts, this.config);
    const pidOf = restoredPid !== undefined ? { restoredPid } : {};
    try {
      if (decision.action === 'resume-source') {
        const state = await this.ops.resumeTree(source!.node, marker!.pid);
        if (state === 'T' || state === 't' || state === 'unknown')
          throw new Error(`pid ${marker!.pid} on ${source!.node.id} is still stopped (state ${state}) after SIGCONT`);
      } else if (decision.action === 'kill-source') {
        const state = await this.ops.killTree(source!.node, marker!.pid);
        if (state !== 'gone') throw new Error(`pid ${marker!.pid} on ${source!.node.id} did not die (state ${state})`);
      }
    } catch (error) {
      return { decision, error: (error as Error).message, ...pidOf };
    }
    return { decision, ...pidOf };
  }

  /**
   * The destination's restored tree: verified when it runs with the source's task count and the same command
   * line as the frozen source (a reused pid is something else). Undefined when the node does not answer.
   */
  private async restoredTree(
    node: NodeRecord,
    pid: number | undefined,
    sourceProc: { cmdline: string } | undefined,
    marker: OwnerMarker,
  ): Promise<RestoredTree | undefined> {
    if (pid === undefined) return 'none';
    const facts = await this.ops.processFacts(node, [pid], []);
    if (!facts) return undefined;
    const proc = facts.procs.get(pid);
    if (!proc || proc.state === 'Z' || proc.state === 'X') return 'none';
    if (!RUNNING.has(proc.state) || !sourceProc || proc.cmdline !== sourceProc.cmdline) return 'unverified';
    const tree = await this.ops.inspectTree(node, pid).catch(() => undefined);
    if (!tree) return 'unverified';
    return marker.tasks === undefined || tree.pids.length === marker.tasks ? 'verified' : 'unverified';
  }
}

/** The marker's tree on its node: a pid that now names another process (start time, boot, namespace) is gone. */
function sourceTree(facts: NodeFacts, marker: OwnerMarker): SourceTree {
  const proc = facts.procs.get(marker.pid);
  if (!proc || proc.state === 'Z' || proc.state === 'X') return 'gone';
  const id = marker.identity;
  if (id) {
    const digits = (s: string) => s.replace(/\D/g, '');
    if (id.startTime !== proc.startTime) return 'gone';
    if (facts.bootId && id.bootId !== facts.bootId) return 'gone';
    if (proc.pidNs && digits(id.pidNs) && digits(id.pidNs) !== proc.pidNs) return 'gone';
  }
  return proc.state === 'T' || proc.state === 't' ? 'frozen' : 'running';
}
