import { DomainError, type NodeRecord } from '@spotlift/domain';
import type { NodeOps } from '@spotlift/engine';

/**
 * A process tree read on a node for an API request (registration, `POST /migrations`, `POST /checkpoints`):
 * undefined when the pid does not run there. A node that answers the inspection with a failure is the node's
 * fault, not the caller's nor ours: a 502 `node_command_failed` with the node's words, not an "internal error"
 * 500 (the fleet bench's 200 migrations at once met this: a simulated node refusing the command).
 */
export function inspectForRequest(ops: NodeOps, node: NodeRecord, pid: number): ReturnType<NodeOps['inspectTree']> {
  return ops.inspectTree(node, pid).catch((error: unknown) => {
    if (error instanceof DomainError) throw error;
    throw new DomainError('node_command_failed', (error as Error).message, { nodeId: node.id }, true);
  });
}
