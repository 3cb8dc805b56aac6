import { makeDedupKey, type Notice, type NoticeKind } from '../notice.js';
import type { NoticeBatch } from '../notice-problem.js';
import { batch, problem, staleProblem, type ParseContext } from '../parse-context.js';
import { parseRfc1123, parseRfc3339 } from '../time-formats.js';
import type { KubeNode } from './kube-node-api.port.js';

interface SignalBase {
  kind: NoticeKind;
  /**
   * Taints and conditions carry no deadline: it is the signal's own timestamp (`timeAdded`,
   * `lastTransitionTime`) or, failing that, when we saw it, plus this.
   */
  leadMs: number;
  /** Who sets it, for the notice's reason (e.g. "aws-node-termination-handler"). */
  origin: string;
  /** An annotation on the Node holding an RFC 3339 deadline that beats the estimate when present. */
  deadlineAnnotation?: string;
}

/** A taint that means "this node is going". Matches on key, and on effect if given. */
export interface KubeTaintSignal extends SignalBase {
  match: 'taint';
  key: string;
  effect?: string;
}

/** A node condition that means "this node is going". */
export interface KubeConditionSignal extends SignalBase {
  match: 'condition';
  type: string;
  /** Default `True`. */
  status?: string;
  reason?: string;
  /** A regex over the condition message whose first group is an RFC 1123 deadline (AKS NPD style). */
  deadlineInMessage?: RegExp;
}

/** One configured Kubernetes signal. */
export type KubeSignal = KubeTaintSignal | KubeConditionSignal;

const NTH = 'aws-node-termination-handler';

/**
 * Known taints and conditions of the termination handlers (reference §4.1). Lead times: NTH's 120 s is the
 * Spot ITN; Karpenter's taint does not say why, so it gets the 30 s lower bound unless Karpenter's own
 * termination timestamp annotation is present; GCP/AKS handlers use their clouds' 30 s.
 */
export const DEFAULT_KUBE_SIGNALS: readonly KubeSignal[] = [
  { match: 'taint', key: `${NTH}/spot-itn`, kind: 'preemption', leadMs: 120_000, origin: NTH },
  { match: 'taint', key: `${NTH}/asg-lifecycle-termination`, kind: 'termination', leadMs: 120_000, origin: NTH },
  { match: 'taint', key: `${NTH}/scheduled-maintenance`, kind: 'maintenance', leadMs: 120_000, origin: NTH },
  { match: 'taint', key: `${NTH}/rebalance-recommendation`, kind: 'rebalance', leadMs: 120_000, origin: NTH },
  {
    match: 'taint',
    key: 'karpenter.sh/disrupted',
    effect: 'NoSchedule',
    kind: 'termination',
    leadMs: 30_000,
    origin: 'karpenter',
    deadlineAnnotation: 'karpenter.sh/nodeclaim-termination-timestamp',
  },
  {
    match: 'taint',
    key: 'cloud.google.com/impending-node-termination',
    kind: 'preemption',
    leadMs: 30_000,
    origin: 'gcp k8s-node-termination-handler',
  },
  {
    match: 'taint',
    key: 'aks-node-termination-handler/preempt',
    kind: 'preemption',
    leadMs: 30_000,
    origin: 'aks-node-termination-handler',
  },
  {
    match: 'taint',
    key: 'aks-node-termination-handler/terminate',
    kind: 'termination',
    leadMs: 30_000,
    origin: 'aks-node-termination-handler',
  },
  {
    match: 'taint',
    key: 'remediator.kubernetes.azure.com/unschedulable',
    kind: 'termination',
    leadMs: 30_000,
    origin: 'aks node auto-drain',
  },
  {
    match: 'condition',
    type: 'PreemptionScheduled',
    status: 'True',
    kind: 'preemption',
    leadMs: 30_000,
    origin: 'aks node-problem-detector',
    // "Preempt Scheduled: Sat, 01 Aug 2026 05:41:02 GMT. … EventId: <guid>"
    deadlineInMessage:
      /Scheduled: ((?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{1,2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT)/,
  },
];

/** What matched on a node, with its deadline. */
interface Match {
  signal: KubeSignal;
  what: string;
  deadline: Date;
  estimated: boolean;
}

/**
 * Evaluates one Node against the signals: at most one notice per kind (the earliest deadline wins when
 * several signals of a kind match), so the Karpenter taint and an NTH taint on one node raise one notice.
 */
export function evaluateKubeNode(ctx: ParseContext, node: KubeNode, signals: readonly KubeSignal[]): NoticeBatch {
  const out = batch();
  const byKind = new Map<NoticeKind, Match>();
  for (const signal of signals) {
    const found = findMatch(ctx, node, signal);
    if (!found) continue;
    if ('code' in found) {
      out.problems.push(found);
      continue;
    }
    const prev = byKind.get(signal.kind);
    if (!prev || found.deadline < prev.deadline) byKind.set(signal.kind, found);
  }
  for (const [kind, m] of byKind) {
    const stale = staleProblem(ctx, m.deadline, `${m.what} deadline`);
    if (stale) {
      out.problems.push(stale);
      continue;
    }
    const notice: Notice = {
      nodeId: ctx.nodeId,
      source: 'k8s',
      kind,
      action: m.what,
      deadline: m.deadline,
      deadlineEstimated: m.estimated,
      receivedAt: ctx.receivedAt,
      dedupKey: makeDedupKey(ctx.nodeId, 'k8s', kind),
      reason: `Kubernetes node ${node.metadata.name}: ${m.what} (set by ${m.signal.origin})`,
      raw: { name: node.metadata.name, resourceVersion: node.metadata.resourceVersion, signal: m.what },
    };
    out.notices.push(notice);
  }
  return out;
}

function findMatch(
  ctx: ParseContext,
  node: KubeNode,
  signal: KubeSignal,
): Match | ReturnType<typeof problem> | undefined {
  let what: string;
  let since: string | null | undefined;
  let fromMessage: string | undefined;
  if (signal.match === 'taint') {
    const taint = node.spec?.taints?.find(
      (t) => t.key === signal.key && (!signal.effect || t.effect === signal.effect),
    );
    if (!taint) return undefined;
    what = `taint ${taint.key}${taint.value ? `=${taint.value}` : ''}:${taint.effect}`;
    since = taint.timeAdded;
  } else {
    const want = signal.status ?? 'True';
    const cond = node.status?.conditions?.find(
      (c) => c.type === signal.type && c.status === want && (!signal.reason || c.reason === signal.reason),
    );
    if (!cond) return undefined;
    what = `condition ${cond.type}=${cond.status}${cond.reason ? ` (${cond.reason})` : ''}`;
    since = cond.lastTransitionTime;
    fromMessage =
      signal.deadlineInMessage && cond.message ? signal.deadlineInMessage.exec(cond.message)?.[1] : undefined;
  }
  const annotated = signal.deadlineAnnotation ? node.metadata.annotations?.[signal.deadlineAnnotation] : undefined;
  if (annotated !== undefined) {
    const d = parseRfc3339(annotated);
    if (!d)
      return problem(ctx, 'invalid_payload', `annotation ${signal.deadlineAnnotation}='${annotated}' is not RFC 3339`);
    return { signal, what, deadline: d, estimated: false };
  }
  if (fromMessage !== undefined) {
    const d = parseRfc1123(fromMessage);
    if (d) return { signal, what, deadline: d, estimated: false };
  }
  const base = (since ? parseRfc3339(since) : undefined) ?? ctx.receivedAt;
  return { signal, what, deadline: new Date(base.getTime() + signal.leadMs), estimated: true };
}
