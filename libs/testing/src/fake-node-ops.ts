/**
 * A fake of the node-operations layer (libs/engine node-ops) for unit tests of what sits above it: the apps'
 * services and coordinators. Nodes are data (processes, pidfiles, homes, memory); each typed operation answers
 * from them and is recorded, so a spec checks behaviour ("inspected pid 4242 on node-a", "registered nothing")
 * instead of matching shell text. What the commands are is checked once, in the golden table of the layer
 * (libs/engine/src/node-ops/node-commands.golden.spec.ts); the engine's own specs use FakeProcessOps, which
 * answers every named operation (fake-process-ops.ts).
 */
import type { NodeRecord } from '@spotlift/domain';
import type { CpuSample, NodeOps, RootProcess, TreeInfo } from '@spotlift/engine';

export interface FakeProcess {
  pid: number;
  /** The whole tree, root first (default: the root alone). */
  tree?: number[];
  rssBytes?: number;
  /** Identity and registration facts; absent: the root could not be read (it just exited). */
  root?: RootProcess;
}

export interface FakeNode {
  processes?: FakeProcess[];
  /** pidfile path -> pid it holds */
  pidfiles?: Record<string, number>;
  home?: string;
  memAvailableBytes?: number;
  /** `criu check --feature NAME` answers: true supported, false not (absent: not supported). */
  features?: Record<string, boolean>;
  /** What a CPU sample reads (busy CPUs, CPUs per pid); absent: the node gives no sample. */
  cpu?: CpuSample;
  /** Every operation on this node fails as an unreachable node's would. */
  unreachable?: boolean;
}

export interface FakeOpCall {
  op: string;
  node: string;
  args: unknown[];
}

type FakedOps = Pick<
  NodeOps,
  'inspectTree' | 'readPidfile' | 'loginHome' | 'memAvailableBytes' | 'cpuSample' | 'processState' | 'checkFeature'
>;

export class FakeNodeOps implements FakedOps {
  readonly calls: FakeOpCall[] = [];

  constructor(readonly nodes: Record<string, FakeNode> = {}) {}

  /** For constructors that take the whole NodeOps: only the faked operations may be reached. */
  asNodeOps(): NodeOps {
    return this as unknown as NodeOps;
  }

  /** The calls of one operation, as `node:arg,arg`. */
  ran(op: string): string[] {
    return this.calls.filter((c) => c.op === op).map((c) => `${c.node}:${c.args.join(',')}`);
  }

  inspectTree(node: NodeRecord, pid: number): Promise<TreeInfo | undefined> {
    return this.answer('inspectTree', node, [pid], (n) => {
      const p = n.processes?.find((x) => x.pid === pid);
      if (!p) return undefined;
      return { pids: p.tree ?? [pid], rssBytes: p.rssBytes ?? 0, ...(p.root ? { root: p.root } : {}) };
    });
  }

  readPidfile(node: NodeRecord, path: string): Promise<number | undefined> {
    return this.answer('readPidfile', node, [path], (n) => n.pidfiles?.[path]);
  }

  loginHome(node: NodeRecord): Promise<string | undefined> {
    return this.answer('loginHome', node, [], (n) => n.home);
  }

  memAvailableBytes(node: NodeRecord, _timeoutMs: number): Promise<number | undefined> {
    // The real operation never throws: a node that does not answer gives undefined.
    return this.answer('memAvailableBytes', node, [], (n) => n.memAvailableBytes).catch(() => undefined);
  }

  checkFeature(node: NodeRecord, feature: string) {
    return this.answer('checkFeature', node, [feature], (n) => {
      const supported = n.features?.[feature] === true;
      // as CRIU words it (libs/criu parseFeatureCheck)
      return { feature, supported, known: true, ...(supported ? {} : { reason: `${feature} is not supported` }) };
    });
  }

  cpuSample(node: NodeRecord, pids: readonly number[], _timeoutMs: number): Promise<CpuSample | undefined> {
    return this.answer('cpuSample', node, [...pids], (n) => n.cpu).catch(() => undefined);
  }

  processState(node: NodeRecord, pid: number): Promise<string> {
    return this.answer('processState', node, [pid], (n) => {
      const p = n.processes?.find((x) => x.pid === pid);
      return p ? (p.root?.state ?? 'S') : 'gone';
    });
  }

  private answer<T>(op: string, node: NodeRecord, args: unknown[], read: (n: FakeNode) => T): Promise<T> {
    this.calls.push({ op, node: node.id, args });
    const n = this.nodes[node.id] ?? {};
    if (n.unreachable) return Promise.reject(new Error(`node ${node.id} is unreachable`));
    return Promise.resolve(read(n));
  }
}
