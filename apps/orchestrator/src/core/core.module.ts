import { Global, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { Redis } from 'ioredis';
import {
  Clock,
  MigrationEngine,
  NodeOps,
  NodeProber,
  SshPageTransport,
  DEFAULT_SSH_TUNNEL,
  SystemClock,
  TcpPageTransport,
  TlsPageTransport,
  type PageTransport,
} from '@spotlift/engine';
import {
  IndexedWorkloadRepository,
  MigrationFlags,
  MigrationRepository,
  NodeRepository,
  PostCopyTrials,
  ProcessIndex,
  RedisMigrationFlags,
  PairLinks,
  RedisPairLinks,
  RedisPostCopyTrials,
  RedisProcessIndex,
  RedisRecords,
  WorkloadRepository,
} from '@spotlift/store';
import {
  DirectoryStreamer,
  NodeCertificates,
  NodeShell,
  OpenSslCertificateAuthority,
  SshNodeShell,
} from '@spotlift/transport';
import { AppConfig } from '../config/app-config.js';

export const REDIS = Symbol('REDIS');
/** The page transports (tcp, tls, ssh) the engine and the checkpoint flow pick from. */
export const PAGE_TRANSPORTS = Symbol('PAGE_TRANSPORTS');

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
      // processKey -> workload id: one record per process (libs/store process-index.ts).
      provide: ProcessIndex,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) => new RedisProcessIndex(r, c.redisPrefix),
    },
    {
      // Every save keeps the process index in step, the engine's commits included.
      provide: WorkloadRepository,
      inject: [REDIS, AppConfig, ProcessIndex],
      useFactory: (r: Redis, c: AppConfig, index: ProcessIndex) =>
        new IndexedWorkloadRepository(new RedisRecords(r, c.redisPrefix, 'workload'), index),
    },
    {
      provide: MigrationRepository,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) => new RedisRecords(r, c.redisPrefix, 'migration'),
    },
    { provide: NodeOps, inject: [NodeShell], useFactory: (s: NodeShell) => new NodeOps(s) },
    {
      // Page-traffic TLS: the CA key stays in tlsCaDir on this host; nodes get certificates under tlsNodeDir.
      provide: NodeCertificates,
      inject: [NodeShell, AppConfig],
      useFactory: (s: NodeShell, c: AppConfig) =>
        new NodeCertificates(s, new OpenSslCertificateAuthority({ dir: c.tlsCaDir }), { remoteDir: c.tlsNodeDir }),
    },
    {
      provide: NodeProber,
      inject: [NodeShell, Clock, AppConfig],
      useFactory: (s: NodeShell, clock: Clock, c: AppConfig) => new NodeProber(s, clock, c.imageRoot),
    },
    {
      // Cancel requests and the commit claim, decided atomically in Redis (libs/store migration-flags.ts).
      provide: MigrationFlags,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) => new RedisMigrationFlags(r, c.redisPrefix),
    },
    {
      // Post-copy trial results per node pair, shared by every worker (libs/store post-copy-trials.ts).
      provide: PostCopyTrials,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) => new RedisPostCopyTrials(r, c.redisPrefix),
    },
    {
      // Page throughput measured per node pair and transport, read by `auto` (libs/store pair-links.ts).
      provide: PairLinks,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) => new RedisPairLinks(r, c.redisPrefix),
    },
    {
      // One set of page transports for migrations and checkpoints alike.
      provide: PAGE_TRANSPORTS,
      inject: [NodeShell, AppConfig, NodeCertificates],
      useFactory: (shell: NodeShell, c: AppConfig, certs: NodeCertificates): PageTransport[] => [
        new TcpPageTransport(),
        new TlsPageTransport(certs),
        new SshPageTransport(shell, { ...DEFAULT_SSH_TUNNEL, ...c.sshTunnel }),
      ],
    },
    {
      provide: MigrationEngine,
      inject: [
        MigrationRepository,
        WorkloadRepository,
        NodeRepository,
        NodeOps,
        NodeShell,
        Clock,
        AppConfig,
        PAGE_TRANSPORTS,
        PostCopyTrials,
        PairLinks,
      ],
      useFactory: (
        m: MigrationRepository,
        w: WorkloadRepository,
        n: NodeRepository,
        ops: NodeOps,
        shell: NodeShell,
        clock: Clock,
        c: AppConfig,
        transports: PageTransport[],
        trials: PostCopyTrials,
        links: PairLinks,
      ) =>
        new MigrationEngine(
          m,
          w,
          n,
          ops,
          new DirectoryStreamer(shell),
          clock,
          c.engine,
          transports,
          trials,
          c.live,
          links,
        ),
    },
  ],
  exports: [
    REDIS,
    PAGE_TRANSPORTS,
    Clock,
    NodeShell,
    NodeRepository,
    WorkloadRepository,
    ProcessIndex,
    MigrationRepository,
    NodeOps,
    NodeProber,
    MigrationEngine,
    NodeCertificates,
    PostCopyTrials,
    MigrationFlags,
  ],
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
