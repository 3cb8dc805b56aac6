import { Injectable } from '@nestjs/common';
import { Counter } from 'prom-client';
import { MigrationMetrics } from '../metrics/migration-metrics.js';

/** Rebalancing's Prometheus metrics, on the process's one registry (GET /metrics). */
@Injectable()
export class RebalanceMetrics {
  readonly plans: Counter<'trigger'>;
  readonly moves: Counter<'policy' | 'outcome'>;
  readonly released: Counter;
  readonly downtime: Counter<'policy'>;

  constructor(metrics: MigrationMetrics) {
    const registers = [metrics.registry];
    this.plans = new Counter({
      name: 'spotlift_rebalance_plans_total',
      help: 'Rebalancing plans made, by trigger (schedule, request)',
      labelNames: ['trigger'],
      registers,
    });
    this.moves = new Counter({
      name: 'spotlift_rebalance_moves_total',
      help: 'Rebalancing moves by policy and outcome (completed, failed, skipped, cancelled)',
      labelNames: ['policy', 'outcome'],
      registers,
    });
    this.released = new Counter({
      name: 'spotlift_rebalance_nodes_released_total',
      help: 'Nodes consolidation emptied and marked releasable',
      registers,
    });
    this.downtime = new Counter({
      name: 'spotlift_rebalance_downtime_seconds_total',
      help: 'Downtime spent on rebalancing moves, measured on the nodes, by policy',
      labelNames: ['policy'],
      registers,
    });
  }
}
