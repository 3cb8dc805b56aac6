import { Injectable, Logger } from '@nestjs/common';
import { DomainError, HostKeyMismatchError, NotFoundError, type NodeRecord } from '@spotlift/domain';
import { Clock, NodeProber } from '@spotlift/engine';
import { NodeRepository } from '@spotlift/store';
import type { NodeSpec } from '../config/app-config.js';
import { NodeEvents } from './node-events.js';

@Injectable()
export class NodesService {
  private readonly logger = new Logger(NodesService.name);

  constructor(
    private readonly nodes: NodeRepository,
    private readonly prober: NodeProber,
    private readonly clock: Clock,
    private readonly events: NodeEvents,
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
   * Registers (or updates) a node and probes it. A node whose host key does not match the pin is refused and
   * not stored; an unreachable node is stored as 'unreachable' so it can be probed again later.
   */
  async register(spec: NodeSpec): Promise<NodeRecord> {
    const now = this.clock.now().toISOString();
    const existing = await this.nodes.get(spec.id);
    const node: NodeRecord = {
      ...spec,
      name: spec.name ?? spec.id,
      state: existing?.state === 'terminating' || existing?.state === 'draining' ? existing.state : 'ready',
      createdAt: existing?.createdAt ?? now,
      updatedAt: now,
      ...(existing?.probe ? { probe: existing.probe } : {}),
    };
    await this.applyProbe(node);
    await this.nodes.save(node);
    this.events.registered(node);
    return node;
  }

  async probe(id: string): Promise<NodeRecord> {
    const node = await this.get(id);
    await this.applyProbe(node);
    node.updatedAt = this.clock.now().toISOString();
    await this.nodes.save(node);
    return node;
  }

  private async applyProbe(node: NodeRecord): Promise<void> {
    try {
      node.probe = await this.prober.probe(node);
      if (node.state === 'unreachable') node.state = 'ready';
    } catch (error) {
      if (error instanceof HostKeyMismatchError) throw error;
      const message = error instanceof DomainError ? error.message : String(error);
      this.logger.warn({ msg: 'probe failed', node: node.id, error: message });
      node.state = 'unreachable';
      node.probe = { probedAt: this.clock.now().toISOString(), criuOk: false, features: {}, error: message };
    }
  }
}
