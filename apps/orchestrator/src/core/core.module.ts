import { Global, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import { Clock, DEFAULT_ENGINE_CONFIG, MigrationEngine, NodeOps, NodeProber, SystemClock } from '@spotlift/engine';
import { MigrationRepository, NodeRepository, RedisRecords, WorkloadRepository } from '@spotlift/store';
import { DirectoryStreamer, NodeShell, SshNodeShell } from '@spotlift/transport';
import { AppConfig } from '../config/app-config.js';

export const REDIS = Symbol('REDIS');

/**
 * Binds every port to its adapter: Redis records, the ssh2 node shell, the engine. Feature modules depend on
 * the ports only, so tests can swap any of them.
 */
@Global()
@Module({
  providers: [
    {
      provide: REDIS,
      inject: [AppConfig],
      // maxRetriesPerRequest: null is what BullMQ asks of connections it shares.
      useFactory: (c: AppConfig) => new Redis(c.redisUrl, { maxRetriesPerRequest: null }),
    },
    { provide: Clock, useClass: SystemClock },
    {
      provide: NodeShell,
      inject: [AppConfig],
      useFactory: (c: AppConfig) => new SshNodeShell({ privateKey: c.sshPrivateKey }),
    },
    {
      provide: NodeRepository,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) => new RedisRecords(r, c.redisPrefix, 'node'),
    },
    {
      provide: WorkloadRepository,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) => new RedisRecords(r, c.redisPrefix, 'workload'),
    },
    {
      provide: MigrationRepository,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) => new RedisRecords(r, c.redisPrefix, 'migration'),
    },
    { provide: NodeOps, inject: [NodeShell], useFactory: (s: NodeShell) => new NodeOps(s) },
    {
      provide: NodeProber,
      inject: [NodeShell, Clock, AppConfig],
      useFactory: (s: NodeShell, clock: Clock, c: AppConfig) => new NodeProber(s, clock, c.imageRoot),
    },
    {
      provide: MigrationEngine,
      inject: [MigrationRepository, WorkloadRepository, NodeRepository, NodeOps, NodeShell, Clock, AppConfig],
      useFactory: (
        m: MigrationRepository,
        w: WorkloadRepository,
        n: NodeRepository,
        ops: NodeOps,
        shell: NodeShell,
        clock: Clock,
        c: AppConfig,
      ) => new MigrationEngine(m, w, n, ops, new DirectoryStreamer(shell), clock, { ...DEFAULT_ENGINE_CONFIG, imageRoot: c.imageRoot }),
    },
  ],
  exports: [REDIS, Clock, NodeShell, NodeRepository, WorkloadRepository, MigrationRepository, NodeOps, NodeProber, MigrationEngine],
})
export class CoreModule implements OnApplicationShutdown {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly shell: NodeShell,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    await this.shell.close();
    await this.redis.quit().catch(() => undefined);
  }
}
