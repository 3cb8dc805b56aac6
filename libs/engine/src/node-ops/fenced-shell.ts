import { DomainError, type NodeRecord } from '@spotlift/domain';
import type { NodeShell } from '@spotlift/transport';

/**
 * A command refused because its node is fenced (a confirmed loss: its workloads were restored elsewhere). A
 * caller asking for work there (registering a workload, a migration) gets 409 with the way out, not a 500.
 */
export class NodeFencedError extends DomainError {
  constructor(readonly nodeId: string) {
    super(
      'node_fenced',
      `node '${nodeId}' is fenced (lost, its guarded workloads restored elsewhere): no command runs there until it is registered again (POST /nodes)`,
      { nodeId },
    );
  }
}

/**
 * The shell NodeOps uses, refusing exec and spawn on a fenced node: whatever job still holds an older record
 * of it, nothing may resume, restore or move a copy there. Only the sweeper's kill of the stale copies goes
 * through (NodeOps.unfenced), so a node that comes back runs nothing twice.
 */
export function fenceChecked(shell: NodeShell): NodeShell {
  const refuse = (node: unknown) => {
    const fence = (node as Partial<Pick<NodeRecord, 'fence' | 'id'>>).fence;
    if (fence) throw new NodeFencedError((node as NodeRecord).id);
  };
  return new Proxy(shell, {
    get(target, prop) {
      const value: unknown = Reflect.get(target, prop, target);
      if (typeof value !== 'function') return value;
      if (prop === 'exec' || prop === 'spawn') {
        return (node: unknown, ...rest: unknown[]) => {
          refuse(node);
          return (value as (...a: unknown[]) => unknown).call(target, node, ...rest);
        };
      }
      return (value as (...a: unknown[]) => unknown).bind(target);
    },
  });
}
