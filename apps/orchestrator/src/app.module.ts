import { BullModule } from '@nestjs/bullmq';
import { type DynamicModule, Injectable, Logger, Module, type OnApplicationBootstrap } from '@nestjs/common';
import { APP_FILTER, DiscoveryModule } from '@nestjs/core';
import { QueueName } from '@spotlift/queue';
import { authControllers, authProviders } from './auth/auth.providers.js';
import { DomainExceptionFilter } from './common/domain-exception.filter.js';
import { AppConfig } from './config/app-config.js';
import { bullConnection } from './config/redis-config.js';
import { CoreModule } from './core/core.module.js';
import { StoreResync } from './core/store-resync.js';
import { RedisDurabilityCheck } from './core/redis-durability.js';
import { RecordRetention } from './core/record-retention.js';
import { checkpointControllers, checkpointProviders, checkpointQueues } from './checkpoints/checkpoints.providers.js';
import { eventControllers, eventProviders } from './events/events.providers.js';
import { evacuationControllers, evacuationProviders, evacuationQueues } from './evacuations/evacuations.providers.js';
import { HealthController } from './health/health.controller.js';
import { MetricsController } from './metrics/metrics.controller.js';
import { MigrationMetrics } from './metrics/migration-metrics.js';
import { MigrationQueue } from './migrations/migration-queue.js';
import { MigrationsController } from './migrations/migrations.controller.js';
import { MigrationCancelService } from './migrations/migration-cancel.service.js';
import { MigrationReconciler } from './migrations/migration-reconciler.js';
import { MigrationsProcessor } from './migrations/migrations.processor.js';
import { MigrationsService } from './migrations/migrations.service.js';
import { NodesController } from './nodes/nodes.controller.js';
import { NodeEvents } from './nodes/node-events.js';
import { NodesService } from './nodes/nodes.service.js';
import { rebalanceControllers, rebalanceProviders } from './rebalance/rebalance.providers.js';
import { sweeperControllers, sweeperImports, sweeperProviders } from './sweeper/sweeper.providers.js';
import { WorkloadsController } from './workloads/workloads.controller.js';
import { WorkloadsService } from './workloads/workloads.service.js';

/** Registers the nodes of the config file at boot (probing each), so a fresh orchestrator knows its fleet. */
@Injectable()
class ConfigNodesLoader implements OnApplicationBootstrap {
  private readonly logger = new Logger('nodes');
  constructor(
    private readonly config: AppConfig,
    private readonly nodes: NodesService,
  ) {}

  async onApplicationBootstrap(): Promise<void> {
    await Promise.all(
      this.config.nodes.map(async (spec) => {
        try {
          const node = await this.nodes.register(spec, { keepUnreachable: true });
          this.logger.log({ msg: 'node registered', node: node.id, state: node.state, criu: node.probe?.criuVersion });
        } catch (error) {
          this.logger.error({ msg: 'node refused', node: spec.id, error: (error as Error).message });
        }
      }),
    );
  }
}

/** The orchestrator; the role decides whether this process serves the API, runs migrations, or both. */
@Module({})
export class AppModule {
  static forRoot(config: AppConfig): DynamicModule {
    const configModule: DynamicModule = {
      module: class ConfigModule {},
      global: true,
      providers: [{ provide: AppConfig, useValue: config }],
      exports: [AppConfig],
    };
    return {
      module: AppModule,
      imports: [
        configModule,
        CoreModule,
        DiscoveryModule,
        BullModule.forRoot({
          prefix: `${config.redisPrefix}-bull`,
          // The same connection as every other client (TLS, ACL user, password, db, sentinels: redis-config.ts).
          connection: bullConnection(config.redis),
        }),
        BullModule.registerQueue({ name: QueueName.Migrations }),
        ...evacuationQueues,
        ...checkpointQueues,
        ...sweeperImports,
      ],
      controllers: [
        HealthController,
        NodesController,
        WorkloadsController,
        MigrationsController,
        MetricsController,
        ...evacuationControllers,
        ...checkpointControllers,
        ...authControllers,
        ...sweeperControllers,
        ...eventControllers,
        ...rebalanceControllers,
      ],
      providers: [
        ...authProviders,
        { provide: APP_FILTER, useClass: DomainExceptionFilter },
        MigrationMetrics,
        MigrationQueue,
        NodeEvents,
        NodesService,
        WorkloadsService,
        MigrationsService,
        RedisDurabilityCheck,
        ConfigNodesLoader,
        StoreResync,
        RecordRetention,
        MigrationCancelService,
        ...(config.runsWorker ? [MigrationsProcessor, MigrationReconciler] : []),
        ...evacuationProviders(config),
        ...checkpointProviders(config),
        ...sweeperProviders,
        ...eventProviders,
        ...rebalanceProviders,
      ],
    };
  }
}
