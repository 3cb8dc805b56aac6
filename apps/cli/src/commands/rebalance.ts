/**
 * `spotlift rebalance plan|show|apply|cancel`: capacity rebalancing plans (README "Capacity rebalancing").
 * The plan's shape is the domain's RebalancePlanRecord, as GET /rebalance/plans/:id serves it.
 */
import type { RebalancePlanRecord } from '@spotlift/domain';
import type { Command } from 'commander';
import type { CliContext } from '../cli-context.js';
import { table } from '../format.js';

const enc = encodeURIComponent;

export function planSummary(p: RebalancePlanRecord): string {
  const lines = [`plan ${p.id} (${p.trigger}, ${p.createdAt}): ${p.state}`, p.summary];
  if (p.releasable.length)
    lines.push(`releasable: ${p.releasable.join(', ')}; released: ${p.released.join(', ') || '-'}`);
  if (p.moves.length)
    lines.push(
      table([
        ['WORKLOAD', 'FROM', 'TO', 'POLICY', 'STRATEGY', 'DOWNTIME', 'SCORE', 'STATE'],
        ...p.moves.map((m) => [
          m.workloadId,
          m.fromNodeId,
          m.toNodeId,
          m.policy,
          m.strategy,
          `${m.predictedDowntimeMs} ms`,
          m.score.toFixed(1),
          m.detail ? `${m.state}: ${m.detail}` : m.state,
        ]),
      ]),
    );
  const caps = Object.entries(p.maxMovesFrom ?? {});
  if (caps.length)
    lines.push(
      `moves at once from one node (its measured outbound rate): ${caps.map(([n, k]) => `${n} ${k}`).join(', ')}`,
    );
  for (const s of p.skipped)
    lines.push(
      `${s.deferred ? 'deferred' : 'not proposed'} (${s.policy}) ${s.workloadId ?? s.nodeId ?? ''}: ${s.reason}`,
    );
  return lines.join('\n');
}

export function registerRebalance(program: Command, cli: CliContext): void {
  const rebalance = program
    .command('rebalance')
    .description('capacity rebalancing: plans, applied by hand or in auto mode');
  rebalance
    .command('plan')
    .description('plan now (operator): the configured policies, or those given with --policy')
    .option('--policy <name>', 'consolidate | spread | de-risk (repeatable)', (v: string, prev: string[] = []) => [
      ...prev,
      v,
    ])
    .action(async (o: { policy?: string[] }) => {
      const p = await cli
        .client()
        .request<RebalancePlanRecord>('POST', '/rebalance/evaluate', o.policy?.length ? { policies: o.policy } : {});
      cli.print(p, () => planSummary(p));
    });
  rebalance
    .command('show [plan]')
    .description('one plan with its moves, or every plan (newest first)')
    .action(async (id?: string) => {
      if (id) {
        const p = await cli.client().request<RebalancePlanRecord>('GET', `/rebalance/plans/${enc(id)}`);
        return cli.print(p, () => planSummary(p));
      }
      const list = await cli.client().request<RebalancePlanRecord[]>('GET', '/rebalance/plans');
      cli.print(list, () =>
        table([
          ['PLAN', 'CREATED', 'TRIGGER', 'STATE', 'MOVES', 'SUMMARY'],
          ...list.map((p) => [p.id, p.createdAt, p.trigger, p.state, String(p.moves.length), p.summary]),
        ]),
      );
    });
  rebalance
    .command('apply <plan>')
    .description('apply a proposed plan once (operator); its moves start within the budgets')
    .action(async (id: string) => {
      const p = await cli.client().request<RebalancePlanRecord>('POST', `/rebalance/plans/${enc(id)}/apply`);
      cli.print(p, () => `plan ${p.id} is ${p.state}; follow it with: spotlift rebalance show ${p.id}`);
    });
  rebalance
    .command('cancel <plan>')
    .description('cancel the moves of a plan that have not started (operator)')
    .action(async (id: string) => {
      const p = await cli.client().request<RebalancePlanRecord>('POST', `/rebalance/plans/${enc(id)}/cancel`);
      cli.print(p, () => `plan ${p.id}: cancel requested (${p.state})`);
    });
}
