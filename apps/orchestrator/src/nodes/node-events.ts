import { Injectable } from '@nestjs/common';
import type { NodeRecord } from '@spotlift/domain';

type Listener = (node: NodeRecord) => void;

/**
 * In-process news of node registrations (`POST /nodes`, the config file at boot), so the notice watchers
 * of this process start watching a new node at once. Replicas elsewhere find it on their periodic sync.
 */
@Injectable()
export class NodeEvents {
  private readonly listeners = new Set<Listener>();

  /** Returns the unsubscribe function. */
  onRegistered(listener: Listener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  registered(node: NodeRecord): void {
    for (const listener of this.listeners) listener(node);
  }
}
