import { Injectable, Logger } from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import {
  checkpointSettled,
  ConflictError,
  DomainError,
  evacuationFinished,
  NotFoundError,
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

  async get(id: string): Promise<NodeRecord> {
    const node = await this.nodes.get(id);
    if (!node) throw new NotFoundError('node', id);
    return node;
  }

  /**
   * Registers (or updates) a node and probes it. A probe that fails (unreachable, host key not the pin) is
   * answered with NodeRegistrationError and changes nothing: a new node is not stored, an existing one keeps
   * its record. `keepUnreachable` (the config file at boot) stores a new node as 'unreachable' instead, so the
   * operator's fleet is known and can be probed again. A draining/terminating state survives re-registration.
   */
  async register(spec: NodeSpec, opts: { keepUnreachable?: boolean } = {}): Promise<NodeRecord> {
    const now = this.clock.now().toISOString();
    const existing = await this.nodes.get(spec.id);
    const node: NodeRecord = {
      ...spec,
      name: spec.name ?? spec.id,
      state: existing && NOTICE_STATES.has(existing.state) ? existing.state : 'ready',
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
      ...(existing?.probe ? { probe: existing.probe } : {}),
      ...(existing?.drain ? { drain: existing.drain } : {}),
    };
    try {
      node.probe = await this.prober.probe(node);
    } catch (error) {
      const errorId = randomBytes(6).toString('hex');
      const detail = error instanceof Error ? error.message : String(error);
      this.logger.warn({ msg: 'node registration: probe failed', node: spec.id, host: spec.host, errorId, detail });
      if (!opts.keepUnreachable || existing) throw new NodeRegistrationError(spec.id, errorId);
      this.recordProbeFailure(node, detail);
      await this.nodes.save(node);
      this.events.registered(node);
      return node;
    }
    await this.nodes.save(node);
    this.events.registered(node);
    return node;
  }

  /** Probes a registered node again; a failure is recorded on the node (unreachable), its notice state kept. */
  async probe(id: string): Promise<NodeRecord> {
    const node = await this.get(id);
    try {
      node.probe = await this.prober.probe(node);
      if (node.state === 'unreachable') node.state = 'ready';
    } catch (error) {
      const detail = error instanceof Error ? error.message : String(error);
      this.logger.warn({ msg: 'probe failed', node: node.id, detail });
      this.recordProbeFailure(node, detail);
    }
    node.updatedAt = this.clock.now().toISOString();
    await this.nodes.save(node);
    return node;
  }

  /**
   * Undoes a spurious notice: a draining or terminating node becomes ready again. Refused while an evacuation
   * of the node is in flight (it would race the evacuation's own moves).
   */
  async clearNotice(id: string): Promise<NodeRecord> {
    const node = await this.get(id);
    if (!NOTICE_STATES.has(node.state)) return node;
    const open = (await this.evacuations.list()).find((e) => e.nodeId === id && !evacuationFinished(e));
    if (open) {
      throw new ConflictError(`node '${id}' has evacuation '${open.id}' in flight; cancel or finish it first`, {
        nodeId: id,
        evacuationId: open.id,
      });
    }
    // An operator's drain outlives a spurious notice: only undrain lifts it.
    node.state = node.drain ? 'draining' : node.probe?.error ? 'unreachable' : 'ready';
    node.updatedAt = this.clock.now().toISOString();
    await this.nodes.save(node);
    this.logger.log({ msg: 'notice cleared', node: id, state: node.state });
    return node;
  }

  /**
   * An operator takes a node out of placement: `draining`, so no migration, checkpoint restore or evacuation
   * lands on it; nothing on it moves. The `drain` mark says the operator did it, not a notice, so that undrain
   * may lift it. A node a notice already holds (draining, terminating) or that is gone is left as it is.
   */
  async drain(id: string): Promise<NodeRecord> {
    const node = await this.get(id);
    await this.refuseWhileEvacuating(node.id, 'drain');
    if (node.state !== 'ready' && node.state !== 'unreachable') return node;
    const now = this.clock.now().toISOString();
    Object.assign(node, { state: 'draining', drain: { at: now }, updatedAt: now });
    await this.nodes.save(node);
    this.logger.log({ msg: 'node drained', node: id });
    return node;
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
    const since = node.drain.at;
    const noticeAfterDrain = (await this.evacuations.list()).some((e) => e.nodeId === id && e.createdAt >= since);
    delete node.drain;
    if (node.state === 'draining' && !noticeAfterDrain) node.state = node.probe?.error ? 'unreachable' : 'ready';
    node.updatedAt = this.clock.now().toISOString();
    await this.nodes.save(node);
    this.logger.log({ msg: 'node undrained', node: id, state: node.state });
    return node;
  }

  private async refuseWhileEvacuating(id: string, what: string): Promise<void> {
    const open = (await this.evacuations.list()).find((e) => e.nodeId === id && !evacuationFinished(e));
    if (open) {
      throw new ConflictError(`cannot ${what} node '${id}': evacuation '${open.id}' is in flight`, {
        nodeId: id,
        evacuationId: open.id,
      });
    }
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
    this.logger.log({ msg: 'node removed', node: id });
  }

  private async references(id: string): Promise<string[]> {
    const [workloads, migrations, checkpoints, evacuations] = await Promise.all([
      this.workloads.list(),
      this.migrations.list(),
      this.checkpoints.list(),
      this.evacuations.list(),
    ]);
    return [
      ...workloads.filter((w) => w.nodeId === id && w.state !== 'gone').map((w) => `workload ${w.id}`),
      ...migrations
        .filter(
          (m) => (m.state === 'queued' || m.state === 'running') && [m.sourceNodeId, m.destinationNodeId].includes(id),
        )
        .map((m) => `migration ${m.id}`),
      // A stored checkpoint's images live on its storage node: removing the node would orphan them.
      ...checkpoints
        .filter(
          (c) =>
            ((!checkpointSettled(c) || c.state === 'stored') && c.storageNodeId === id) ||
            (!checkpointSettled(c) && (c.sourceNodeId === id || c.restore?.destinationNodeId === id)),
        )
        .map((c) => `checkpoint ${c.id}`),
      ...evacuations.filter((e) => e.nodeId === id && !evacuationFinished(e)).map((e) => `evacuation ${e.id}`),
    ];
  }

  /** Reachability is recorded apart from a notice state: only a ready node becomes 'unreachable'. */
  private recordProbeFailure(node: NodeRecord, detail: string): void {
    if (node.state === 'ready') node.state = 'unreachable';
    node.probe = { probedAt: this.clock.now().toISOString(), criuOk: false, features: {}, error: detail };
  }
}
