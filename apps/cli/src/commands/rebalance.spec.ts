import type { RebalancePlanRecord } from '@spotlift/domain';
import { planSummary } from './rebalance.js';

const plan = (over: Partial<RebalancePlanRecord> = {}): RebalancePlanRecord => ({
  id: 'p1',
  createdAt: '2026-12-07T09:00:00.000Z',
  trigger: 'request',
  mode: 'plan',
  policies: ['consolidate'],
  state: 'proposed',
  summary: '1 move, 1 node freed',
  totals: { nodesFreed: 1, costPerHourSaved: 0, riskRemoved: 0, predictedDowntimeMs: 900 },
  moves: [],
  skipped: [],
  releasable: ['node-c'],
  released: [],
  events: [],
  ...over,
});

describe('planSummary', () => {
  it('names each node whose measured outbound rate caps the moves leaving it at once', () => {
    const text = planSummary(plan({ maxMovesFrom: { 'node-a': 2, 'node-b': 1 } }));
    expect(text).toContain('moves at once from one node (its measured outbound rate): node-a 2, node-b 1');
  });

  it('says nothing of a cap where no node was measured', () => {
    expect(planSummary(plan())).not.toContain('moves at once');
    expect(planSummary(plan({ maxMovesFrom: {} }))).not.toContain('moves at once');
  });
});
