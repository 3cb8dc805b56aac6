/**
 * A fake of the node-operations layer for the engine's unit specs: every named operation of NodeOps (the
 * process kind's `dump`, `restore`, `startPageServer`, `listImageFiles`..., and the shared `inspectTree`,
 * `tail`, `makeDir`...) answers from scripted rules and is recorded, so a spec says "the destination's
 * page-server failed to start" and checks "restore ran once on node-b" instead of matching shell text. What
 * each name runs on a node is checked once, in the layer's golden tables (libs/engine node-ops
 * process-ops.golden.spec.ts, node-commands.golden.spec.ts). The raw runners throw: the engine calls none.
 */
import { type NodeRecord, NodeUnreachableError } from '@spotlift/domain';
import { type ArmedCommand, NodeOps, ProcessNodeOps, type TimedResult } from '@spotlift/engine';

const RUNNERS = new Set(['run', 'runTimed', 'armTimed', 'stream', 'streamIn']);

/**
 * What the operations that never throw answer when their node does not (node-ops.ts catches the error there):
 * an unreachable node's cleanup, log keeping and reads give these instead of rejecting.
 */
const WHEN_UNREACHABLE: Partial<Record<string, unknown>> = {
  reachable: false,
  removeDir: false,
  removeEmptyDir: undefined,
  keepLogs: 0,
  memAvailableBytes: undefined,
  cpuSample: undefined,
  processFacts: undefined,
};

/** The named operations: every method of NodeOps but its runners. */
export type OpName = Exclude<
  { [K in keyof NodeOps]: NodeOps[K] extends (...args: never[]) => unknown ? K : never }[keyof NodeOps],
  'run' | 'runTimed' | 'armTimed' | 'stream' | 'streamIn'
>;
type Args<K extends OpName> = Parameters<NodeOps[K]>;
type Answer<K extends OpName> = Awaited<ReturnType<NodeOps[K]>>;

/**
 * A scripted answer: the value, an Error (the operation rejects with it), or a function of the call's arguments
 * (which may return a promise: an operation that takes as long as the spec wants).
 */
export type FakeReply<K extends OpName> =
  Answer<K> | Error | ((...args: Args<K>) => Answer<K> | Error | Promise<Answer<K>>);

export interface FakeRuleOptions<K extends OpName> {
  /** Only calls on this node (default: any). */
  node?: string;
  /** Only calls whose arguments pass. */
  when?: (...args: Args<K>) => boolean;
  /** Used once, then the next matching rule answers. */
  once?: boolean;
}

interface Rule {
  op: OpName;
  reply: unknown;
  opts: FakeRuleOptions<OpName>;
  used: boolean;
}

export interface FakeProcessCall {
  /** The operation, or `<op>.fire` when an armed command it returned (fakeArmed) was fired. */
  op: OpName | `${OpName}.fire`;
  node: string;
  /** The arguments after the node. */
  args: unknown[];
}

export class FakeProcessOps {
  readonly calls: FakeProcessCall[] = [];
  /** Operations called with no rule to answer them (they rejected; the engine may have swallowed that). */
  readonly unanswered: string[] = [];
  private readonly rules: Rule[] = [];
  /** node -> how many more calls find it unreachable (Infinity: until the spec says otherwise). */
  private readonly outages = new Map<string, number>();

  constructor() {
    const names = new Set([
      ...Object.getOwnPropertyNames(ProcessNodeOps.prototype),
      ...Object.getOwnPropertyNames(NodeOps.prototype),
    ]);
    names.delete('constructor');
    for (const name of names) {
      const self = this as unknown as Record<string, unknown>;
      self[name] = RUNNERS.has(name)
        ? () => Promise.reject(new Error(`FakeProcessOps: the raw runner ${name}() was called; use a named operation`))
        : (...args: unknown[]) => this.answer(name as OpName, args);
    }
  }

  /** Scripts `op`; the first matching rule that is not used up answers (rules added first win). */
  on<K extends OpName>(op: K, reply: FakeReply<K>, opts: FakeRuleOptions<K> = {}): this {
    this.rules.push({ op, reply, opts, used: false });
    return this;
  }

  /**
   * `node` does not answer for its next `calls` operations (default: all of them): each
   * rejects with NodeUnreachableError, as the SSH shell's do, before any rule is asked; the operations that
   * never throw give what they give for a silent node (false, 0, undefined). The calls are recorded.
   */
  unreachable(node: string, opts: { calls?: number } = {}): this {
    this.outages.set(node, opts.calls ?? Infinity);
    return this;
  }

  /** For constructors that take NodeOps. */
  asNodeOps(): NodeOps {
    return this as unknown as NodeOps;
  }

  /** The calls of `op` (on `node` if given), each as its arguments after the node. */
  argsOf<K extends OpName>(op: K, node?: string): Array<Args<K> extends [unknown, ...infer R] ? R : never> {
    return this.calls
      .filter((c) => c.op === op && (node === undefined || c.node === node))
      .map((c) => c.args as Args<K> extends [unknown, ...infer R] ? R : never);
  }

  /**
   * An armed command (armRestore's answer) whose fire() is recorded as `<op>.fire` and answers `result`;
   * cancel() does nothing.
   */
  armed(op: 'armRestore', node: string, result: TimedResult | Error): ArmedCommand {
    return {
      fire: () => {
        this.calls.push({ op: `${op}.fire`, node, args: [] });
        return result instanceof Error ? Promise.reject(result) : Promise.resolve(result);
      },
      cancel: () => Promise.resolve(),
    };
  }

  /** The operations called, in order, as `op@node`. */
  sequence(): string[] {
    return this.calls.map((c) => `${c.op}@${c.node}`);
  }

  private answer(op: OpName, args: unknown[]): Promise<unknown> {
    const node = (args[0] as NodeRecord | undefined)?.id ?? '?';
    this.calls.push({ op, node, args: args.slice(1) });
    const outage = this.outages.get(node) ?? 0;
    if (outage > 0) {
      if (outage === 1) this.outages.delete(node);
      else this.outages.set(node, outage - 1);
      return op in WHEN_UNREACHABLE
        ? Promise.resolve(WHEN_UNREACHABLE[op])
        : Promise.reject(new NodeUnreachableError(node, 'connect ECONNREFUSED'));
    }
    const rule = this.rules.find(
      (r) =>
        r.op === op &&
        !(r.opts.once && r.used) &&
        (r.opts.node === undefined || r.opts.node === node) &&
        (r.opts.when === undefined || (r.opts.when as (...a: unknown[]) => boolean)(...args)),
    );
    if (!rule) {
      this.unanswered.push(`${op}@${node}`);
      return Promise.reject(new Error(`FakeProcessOps: no answer scripted for ${op} on ${node}`));
    }
    rule.used = true;
    const out: unknown =
      typeof rule.reply === 'function' ? (rule.reply as (...a: unknown[]) => unknown)(...args) : rule.reply;
    return out instanceof Error ? Promise.reject(out) : Promise.resolve(out);
  }
}
