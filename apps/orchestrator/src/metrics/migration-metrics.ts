import { Injectable } from '@nestjs/common';
import { Counter, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { MigrationRecord } from '@spotlift/domain';

/** Prometheus metrics of this process (prom-client), served at GET /metrics. */
@Injectable()
export class MigrationMetrics {
  readonly registry = new Registry();
  private readonly outcomes = new Counter({
    name: 'spotlift_migrations_total',
    help: 'Migrations that reached an end state, by outcome and strategy',
    labelNames: ['state', 'strategy'] as const,
    registers: [this.registry],
  });
  private readonly downtime = new Histogram({
    name: 'spotlift_migration_downtime_seconds',
    help: 'Freeze to resume, measured on the nodes',
    labelNames: ['strategy'] as const,
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60],
    registers: [this.registry],
  });
  private readonly phase = new Histogram({
    name: 'spotlift_migration_phase_seconds',
    help: 'Duration of each migration phase',
    labelNames: ['phase'] as const,
    buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 120],
    registers: [this.registry],
  });
  private readonly bytes = new Counter({
    name: 'spotlift_migration_bytes_total',
    help: 'Bytes moved by migrations (pages and other image files)',
    labelNames: ['kind'] as const,
    registers: [this.registry],
  });

  constructor() {
    collectDefaultMetrics({ register: this.registry });
  }

  record(m: MigrationRecord): void {
    this.outcomes.inc({ state: m.state, strategy: m.strategy });
    if (m.downtimeMs !== undefined) this.downtime.observe({ strategy: m.strategy }, m.downtimeMs / 1000);
    for (const p of m.phases)
      if (p.durationMs !== undefined) this.phase.observe({ phase: p.name }, p.durationMs / 1000);
    this.bytes.inc({ kind: 'pages' }, m.bytes.pages);
    this.bytes.inc({ kind: 'images' }, m.bytes.images);
  }
}
