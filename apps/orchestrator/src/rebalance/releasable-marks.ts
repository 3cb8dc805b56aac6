import { Injectable, Logger, Optional } from '@nestjs/common';
import { NotFoundError, type NodeRecord } from '@spotlift/domain';
import { Clock } from '@spotlift/engine';
import { KubeApiError, KubeNodeApi } from '@spotlift/notices';
import { NodeRepository } from '@spotlift/store';
import { kubeNodeNames } from '../notices/kube-cordon.js';

/** The annotation a node backed by Kubernetes carries while spotlift holds it releasable. */
export const RELEASABLE_ANNOTATION = 'spotlift.io/releasable';

/**
 * The `releasable` mark of a node (consolidation emptied it; spotlift never terminates it): set on the record
 * and, when a Kubernetes API is configured, as the annotation `spotlift.io/releasable=true` on the Node named
 * like ours (its name, then its id; a 404 for both: not a Kubernetes node). Cleared when work is placed there
 * again or by `DELETE /nodes/:id/releasable`. The annotation is best effort: a failure is logged, never thrown.
 */
@Injectable()
export class ReleasableMarks {
  private readonly logger = new Logger('rebalance');

  constructor(
    private readonly nodes: NodeRepository,
    private readonly clock: Clock,
    @Optional() private readonly kube?: KubeNodeApi,
  ) {}

  async mark(nodeId: string, planId: string): Promise<void> {
    const at = this.clock.now().toISOString();
    await this.nodes.update(nodeId, (cur) => {
      cur.releasable = { at, planId };
      cur.updatedAt = at;
    });
    const node = await this.nodes.get(nodeId);
    if (node) await this.annotate(node, 'true');
  }

  /** Removes the mark (a no-op for a node without one); 404 for an unknown node. Returns the node as it is now. */
  async clear(nodeId: string, why: string): Promise<NodeRecord> {
    const node = await this.nodes.get(nodeId);
    if (!node) throw new NotFoundError('node', nodeId);
    if (!node.releasable) return node;
    const at = this.clock.now().toISOString();
    await this.nodes.update(nodeId, (cur) => {
      delete cur.releasable;
      cur.updatedAt = at;
    });
    this.logger.log({ msg: 'node no longer releasable', node: nodeId, why });
    await this.annotate(node, null);
    return (await this.nodes.get(nodeId)) ?? node;
  }

  private async annotate(node: NodeRecord, value: 'true' | null): Promise<void> {
    if (!this.kube) return;
    for (const name of kubeNodeNames(node, { source: 'webhook', raw: undefined })) {
      try {
        await this.kube.annotateNode(name, RELEASABLE_ANNOTATION, value);
        return;
      } catch (error) {
        if (error instanceof KubeApiError && error.status === 404) continue;
        this.logger.warn({ msg: 'releasable annotation failed', node: node.id, error: (error as Error).message });
        return;
      }
    }
  }
}
