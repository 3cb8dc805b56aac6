import type { ParseContext } from '../parse-context.js';
import { kubeNodeSchema, type KubeNode } from './kube-node-api.port.js';
import { DEFAULT_KUBE_SIGNALS, evaluateKubeNode } from './kube-signals.js';

const now = new Date('2026-11-20T10:00:00Z');
const ctx: ParseContext = { nodeId: 'k1', source: 'k8s', path: '/api/v1/nodes/n', receivedAt: now, maxPastMs: 5_000 };
const node = (o: { taints?: unknown[]; conditions?: unknown[]; annotations?: Record<string, string> } = {}): KubeNode =>
  kubeNodeSchema.parse({
    metadata: { name: 'n', resourceVersion: '9', annotations: o.annotations },
    spec: { taints: o.taints },
    status: { conditions: o.conditions },
  });

describe('evaluateKubeNode with the default signals', () => {
  it('raises nothing for a plain node', () => {
    expect(evaluateKubeNode(ctx, node(), DEFAULT_KUBE_SIGNALS)).toEqual({ notices: [], problems: [] });
  });

  it.each([
    ['aws-node-termination-handler/spot-itn', 'preemption', 120_000],
    ['aws-node-termination-handler/rebalance-recommendation', 'rebalance', 120_000],
    ['aws-node-termination-handler/scheduled-maintenance', 'maintenance', 120_000],
    ['aws-node-termination-handler/asg-lifecycle-termination', 'termination', 120_000],
    ['karpenter.sh/disrupted', 'termination', 30_000],
    ['cloud.google.com/impending-node-termination', 'preemption', 30_000],
    ['aks-node-termination-handler/preempt', 'preemption', 30_000],
  ])('taint %s -> %s', (key, kind, lead) => {
    const { notices } = evaluateKubeNode(ctx, node({ taints: [{ key, effect: 'NoSchedule' }] }), DEFAULT_KUBE_SIGNALS);
    expect(notices).toHaveLength(1);
    expect(notices[0]).toMatchObject({
      kind,
      source: 'k8s',
      deadline: new Date(now.getTime() + lead),
      deadlineEstimated: true,
    });
  });

  it('counts from the taint timeAdded when the API server set one, and calls an old one stale', () => {
    const recent = evaluateKubeNode(
      ctx,
      node({ taints: [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule', timeAdded: '2026-11-20T09:59:50Z' }] }),
      DEFAULT_KUBE_SIGNALS,
    );
    expect(recent.notices[0]?.deadline).toEqual(new Date('2026-11-20T10:00:20Z'));
    const old = evaluateKubeNode(
      ctx,
      node({ taints: [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule', timeAdded: '2026-11-20T09:00:00Z' }] }),
      DEFAULT_KUBE_SIGNALS,
    );
    expect(old.notices).toEqual([]);
    expect(old.problems[0]?.code).toBe('stale');
  });

  it('prefers the Karpenter termination timestamp annotation', () => {
    const r = evaluateKubeNode(
      ctx,
      node({
        taints: [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule' }],
        annotations: { 'karpenter.sh/nodeclaim-termination-timestamp': '2026-11-20T10:05:00Z' },
      }),
      DEFAULT_KUBE_SIGNALS,
    );
    expect(r.notices[0]).toMatchObject({ deadline: new Date('2026-11-20T10:05:00Z'), deadlineEstimated: false });
  });

  it('ignores the Karpenter key with another effect', () => {
    expect(
      evaluateKubeNode(
        ctx,
        node({ taints: [{ key: 'karpenter.sh/disrupted', effect: 'NoExecute' }] }),
        DEFAULT_KUBE_SIGNALS,
      ).notices,
    ).toEqual([]);
  });

  it('reads the AKS PreemptionScheduled condition deadline from its message', () => {
    const r = evaluateKubeNode(
      ctx,
      node({
        conditions: [
          {
            type: 'PreemptionScheduled',
            status: 'True',
            reason: 'SpotEvictionIncoming',
            message: 'Preempt Scheduled: Fri, 20 Nov 2026 10:00:25 GMT. EventId: abc',
          },
        ],
      }),
      DEFAULT_KUBE_SIGNALS,
    );
    expect(r.notices[0]).toMatchObject({
      kind: 'preemption',
      deadline: new Date('2026-11-20T10:00:25Z'),
      deadlineEstimated: false,
    });
  });

  it('ignores a condition that is False', () => {
    expect(
      evaluateKubeNode(
        ctx,
        node({ conditions: [{ type: 'PreemptionScheduled', status: 'False' }] }),
        DEFAULT_KUBE_SIGNALS,
      ).notices,
    ).toEqual([]);
  });

  it('raises one notice per kind, with the earliest deadline, when several handlers agree', () => {
    const r = evaluateKubeNode(
      ctx,
      node({
        taints: [
          { key: 'aws-node-termination-handler/spot-itn', effect: 'NoSchedule' },
          { key: 'cloud.google.com/impending-node-termination', effect: 'NoSchedule' },
        ],
      }),
      DEFAULT_KUBE_SIGNALS,
    );
    expect(r.notices).toHaveLength(1);
    expect(r.notices[0]!.deadline).toEqual(new Date(now.getTime() + 30_000));
  });

  it('honours a custom signal list', () => {
    const r = evaluateKubeNode(ctx, node({ taints: [{ key: 'example.com/going', effect: 'NoExecute' }] }), [
      { match: 'taint', key: 'example.com/going', kind: 'termination', leadMs: 10_000, origin: 'ours' },
    ]);
    expect(r.notices[0]).toMatchObject({ kind: 'termination', deadline: new Date(now.getTime() + 10_000) });
  });
});
