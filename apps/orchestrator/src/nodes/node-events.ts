import { Injectable } from '@nestjs/common';
import type { NodeRecord } from '@spotlift/domain';

type Listener<T> = (value: T) => void;

/**
 * In-process news of node registrations (`POST /nodes`, the config file at boot) and removals (`DELETE /nodes`),
 * so the notice watchers of this process start watching a new node, and stop watching a removed one, at once.
 * Replicas elsewhere find either on their periodic sync.
 */
@Injectable()
export class NodeEvents {
  private readonly registeredListeners = new Set<Listener<NodeRecord>>();
  private readonly removedListeners = new Set<Listener<string>>();

  /** Returns the unsubscribe function. */
  onRegistered(listener: Listener<NodeRecord>): () => void {
    return subscribe(this.registeredListeners, listener);
  }

  /** Returns the unsubscribe function; the listener gets the removed node's id. */
  onRemoved(listener: Listener<string>): () => void {
    return subscribe(this.removedListeners, listener);
  }

  registered(node: NodeRecord): void {
    for (const listener of this.registeredListeners) listener(node);
  }

  removed(id: string): void {
    for (const listener of this.removedListeners) listener(id);
  }
}

function subscribe<T>(listeners: Set<Listener<T>>, listener: Listener<T>): () => void {
  listeners.add(listener);
  return () => listeners.delete(listener);
}
