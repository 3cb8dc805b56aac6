import { Injectable, Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import {
  checkpointSettled,
  ConflictError,
  DomainError,
  evacuationFinished,
  NotFoundError,
  type NodeProbe,
  type NodeRecord,
  type NodeState,
} from '@spotlift/domain';
import { Clock, NodeProber } from '@spotlift/engine';
import {
  CheckpointRepository,
  EvacuationRepository,
  MigrationRepository,
  NodeRepository,
  WorkloadRepository,
  checkpointsOfNode,
  createIfAbsent,
  evacuationsOfNode,
  migrationsInFlight,
  workloadsOnNode,
  NODE_INDEX,
  type Page,
  type PageQuery,
} from '@spotlift/store';
import type { NodeSpec } from '../config/app-config.js';
import { NodeEvents } from './node-events.js';

/** States a notice set; only an explicit clear-notice undoes them, never a probe or a re-registration. */
const NOTICE_STATES: ReadonlySet<NodeState> = new Set(['draining', 'terminating']);

/**
 * A registration whose probe failed. The caller learns no more than that: which ports answer on a host, and
 * what key it presents, are for the operator's log (under `errorId`), not for whoever may call POST /nodes.
 */
export class NodeRegistrationError extends DomainError {
  constructor(nodeId: string, errorId: string) {
    super(
      'node_unreachable',
      `node '${nodeId}' could not be reached over SSH (see the orchestrator log, id ${errorId})`,
      { nodeId, errorId },
      true,
    );
  }
}

@Injectable()
export class NodesService {
  private readonly logger = new Logger(NodesService.name);

  constructor(
    private readonly nodes: NodeRepository,
    private readonly prober: NodeProber,
    private readonly clock: Clock,
    private readonly events: NodeEvents,
    private readonly workloads: WorkloadRepository,
    private readonly migrations: MigrationRepository,
    private readonly checkpoints: CheckpointRepository,
    private readonly evacuations: EvacuationRepository,
  ) {}

  list(): Promise<NodeRecord[]> {
    return this.nodes.list();
  }

  page(query: PageQuery): Promise<Page<NodeRecord>> {
    return this.nodes.page(query, NODE_INDEX);
  }

  async get(id: string): Promise<NodeRecord> {
    const node = await this.nodes.get(id);
    if (!node) throw new NotFoundError('node', id);
    return node;
  }

  /**
   * Registers (or updates) a node and probes it. A probe that fails (unreachable, host key not the pin) is
   * answered with NodeRegistrationError and changes nothing: a new node is not stored, an existing one keeps
   * its record. `keepUnreachable` (the config file at boot) stores a new node as 'unreachable' instead, so the
   * operator's fleet is known and can be probed again. A draining/terminating state survives re-registration,
   * also one a notice set while the probe ran: the spec and probe are applied to the record as stored then.
   */
  async register(spec: NodeSpec, opts: { keepUnreachable?: boolean } = {}): Promise<NodeRecord> {
    const existing = await this.nodes.get(spec.id);
    const build = (current: NodeRecord | undefined): NodeRecord => {
      const now = this.clock.now().toISOString();
      return {
        ...spec,
        name: spec.name ?? spec.id,
        state: current && NOTICE_STATES.has(current.state) ? current.state : 'ready',
        createdAt: current?.createdAt ?? now,
        updatedAt: now,
        ...(current?.probe ? { probe: current.probe } : {}),
        ...(current?.drain ? { drain: current.drain } : {}),
      };
    };
    let probe: NodeProbe | undefined;
    let failure: string | undefined;
    try {
      probe = await this.prober.probe(build(existing));
    } catch (error) {
      const errorId = randomBytes(6).toString('hex');
      const detail = error instanceof Error ? error.message : String(error);
      this.logger.warn({ msg: 'node registration: probe failed', node: spec.id, host: spec.host, errorId, detail });
      if (!opts.keepUnreachable || existing) throw new NodeRegistrationError(spec.id, errorId);
      failure = detail;
    }
    const node = await this.upsert(spec.id, (current) => {
      const next = build(current);
      if (probe) next.probe = probe;
      else this.recordProbeFailure(next, failure ?? 'probe failed');
      return next;
    });
    this.events.registered(node);
    return node;
  }

  /**
   * Writes `build(stored)` over the stored node through the versioned update (re-read and retried when
   * another writer came first), or creates it when there is none; a create that loses to another one updates.
   */
  private async upsert(id: string, build: (current: NodeRecord | undefined) => NodeRecord): Promise<NodeRecord> {
    for (let attempt = 0; attempt < 5; attempt++) {
      const updated = await this.nodes.update(id, (current) => {
        const next = build(current);
        for (const key of Object.keys(current))
          if (key !== 'version') delete (current as unknown as Record<string, unknown>)[key];
        Object.assign(current, next);
      });
      if (updated) return updated;
      const created = build(undefined);
      if (await createIfAbsent(this.nodes, created)) return created;
    }
    throw new ConflictError(`node '${id}' kept changing while it was registered; try again`, { nodeId: id });
  }

  /** Probes a registered node again; a failure is recorded on the node (unreachable), its notice state kept. */
  async probe(id: string): Promise<NodeRecord> {
    const node = await this.get(id);
    let probe: NodeProbe | undefined;
    let failure = '';
    try {
      probe = await this.prober.probe(node);
    } catch (error) {
      failure = error instanceof Error ? error.message : String(error);
      this.logger.warn({ msg: 'probe failed', node: node.id, detail: failure });
    }
    // Applied to the record as stored now: a notice that marked the node while the probe ran keeps its state.
    const saved = await this.nodes.update(id, (current) => {
      if (probe) {
        current.probe = probe;
        // A fenced node stays out of placement whatever a probe finds (re-registering it lifts the fence).
        if (current.state === 'unreachable' && !current.fence) current.state = 'ready';
      } else this.recordProbeFailure(current, failure);
      current.updatedAt = this.clock.now().toISOString();
    });
    if (!saved) throw new NotFoundError('node', id);
    return saved;
  }

  /**
   * Undoes a spurious notice: a draining or terminating node becomes ready again. Refused while an evacuation
   * of the node is in flight (it would race the evacuation's own moves).
   */
  async clearNotice(id: string): Promise<NodeRecord> {
    const node = await this.get(id);
    if (!NOTICE_STATES.has(node.state)) return node;
    const open = (await evacuationsOfNode(this.evacuations, id)).find((e) => !evacuationFinished(e));
    if (open) {
      throw new ConflictError(`node '${id}' has evacuation '${open.id}' in flight; cancel or finish it first`, {
        nodeId: id,
        evacuationId: open.id,
      });
    }
    const cleared = await this.nodes.update(id, (current) => {
      if (!NOTICE_STATES.has(current.state)) return false;
      // An operator's drain outlives a spurious notice: only undrain lifts it.
      current.state = current.drain ? 'draining' : current.probe?.error ? 'unreachable' : 'ready';
      current.updatedAt = this.clock.now().toISOString();
    });
    if (!cleared) return this.get(id);
    this.logger.log({ msg: 'notice cleared', node: id, state: cleared.state });
    return cleared;
  }

  /**
   * An operator takes a node out of placement: `draining`, so no migration, checkpoint restore or evacuation
   * lands on it; nothing on it moves. The `drain` mark says the operator did it, not a notice, so that undrain
   * may lift it. A node a notice already holds (draining, terminating) or that is gone is left as it is.
   */
  async drain(id: string): Promise<NodeRecord> {
    const node = await this.get(id);
    await this.refuseWhileEvacuating(node.id, 'drain');
    const drained = await this.nodes.update(id, (current) => {
      if (current.state !== 'ready' && current.state !== 'unreachable') return false;
      const now = this.clock.now().toISOString();
      Object.assign(current, { state: 'draining', drain: { at: now }, updatedAt: now });
    });
    if (!drained) return this.get(id);
    this.logger.log({ msg: 'node drained', node: id });
    return drained;
  }

  /**
   * Back to ready (or unreachable, when its last probe failed), unless a notice holds the node: it is
   * terminating, or an evacuation of it was raised after the drain (an early signal while drained leaves the
   * state `draining` and is only lifted by clear-notice). The drain mark goes either way.
   */
  async undrain(id: string): Promise<NodeRecord> {
    const node = await this.get(id);
    await this.refuseWhileEvacuating(node.id, 'undrain');
    if (!node.drain) return node;
    const evacuations = await evacuationsOfNode(this.evacuations, id);
    const undrained = await this.nodes.update(id, (current) => {
      if (!current.drain) return false;
      const since = current.drain.at;
      const noticeAfterDrain = evacuations.some((e) => e.createdAt >= since);
      delete current.drain;
      if (current.state === 'draining' && !noticeAfterDrain)
        current.state = current.probe?.error ? 'unreachable' : 'ready';
      current.updatedAt = this.clock.now().toISOString();
    });
    if (!undrained) return this.get(id);
    this.logger.log({ msg: 'node undrained', node: id, state: undrained.state });
    return undrained;
  }

  private async refuseWhileEvacuating(id: string, what: string): Promise<void> {
    const open = (await evacuationsOfNode(this.evacuations, id)).find((e) => !evacuationFinished(e));
    if (open) {
      throw new ConflictError(`cannot ${what} node '${id}': evacuation '${open.id}' is in flight`, {
        nodeId: id,
        evacuationId: open.id,
      });
    }
  }

  /**
   * A word that the node is gone for good (node-loss.ts), the operator's or Kubernetes' (its Node object was
   * deleted): recorded once (the first word stands). The guard pass acts on it only once the node is also
   * silent beyond the threshold: then it fences the node and restores its guarded workloads elsewhere.
   */
  async confirmLost(
    id: string,
    by: string,
    reason?: string,
    source: 'operator' | 'kubernetes' = 'operator',
  ): Promise<NodeRecord> {
    await this.get(id);
    const now = this.clock.now().toISOString();
    const saved = await this.nodes.update(id, (current) => {
      if (current.lost) return false;
      current.lost = { source, at: now, by, ...(reason ? { reason } : {}) };
      current.updatedAt = now;
    });
    if (!saved) return this.get(id);
    this.logger.warn({ msg: 'node confirmed lost', node: id, source, by, reason });
    return saved;
  }

  /** Forgets a node nothing refers to any more; 409 names what still does. */
  async remove(id: string): Promise<void> {
    await this.get(id);
    const users = await this.references(id);
    if (users.length) {
      throw new ConflictError(`node '${id}' is still in use: ${users.slice(0, 5).join(', ')}`, {
        nodeId: id,
        references: users,
      });
    }
    await this.nodes.delete(id);
    this.events.removed(id);
    this.logger.log({ msg: 'node removed', node: id });
  }

  private async references(id: string): Promise<string[]> {
    // From the node's term index: a node's own records, never every migration kept.
    const [workloads, migrations, checkpoints, evacuations] = await Promise.all([
      workloadsOnNode(this.workloads, id),
      migrationsInFlight(this.migrations, id),
      checkpointsOfNode(this.checkpoints, id),
      evacuationsOfNode(this.evacuations, id),
    ]);
    return [
      ...workloads.filter((w) => w.state !== 'gone').map((w) => `workload ${w.id}`),
      ...migrations.map((m) => `migration ${m.id}`),
      // A stored checkpoint's images live on its storage node: removing the node would orphan them.
      ...checkpoints
        .filter(
          (c) =>
            ((!checkpointSettled(c) || c.state === 'stored') && c.storageNodeId === id) ||
            (!checkpointSettled(c) && (c.sourceNodeId === id || c.restore?.destinationNodeId === id)),
        )
        .map((c) => `checkpoint ${c.id}`),
      ...evacuations.filter((e) => !evacuationFinished(e)).map((e) => `evacuation ${e.id}`),
    ];
  }

  /** Reachability is recorded apart from a notice state: only a ready node becomes 'unreachable'. */
  private recordProbeFailure(node: NodeRecord, detail: string): void {
    if (node.state === 'ready') node.state = 'unreachable';
    node.probe = { probedAt: this.clock.now().toISOString(), criuOk: false, features: {}, error: detail };
  }
}
