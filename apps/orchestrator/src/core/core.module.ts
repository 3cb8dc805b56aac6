import { Global, Inject, Module, type OnApplicationShutdown } from '@nestjs/common';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { EvacuationRecord, MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import {
  Clock,
  MIGRATION_COPY_ORDER,
  MigrationEngine,
  NodeOps,
  PodmanOps,
  NodeProber,
  SshPageTransport,
  DEFAULT_SSH_TUNNEL,
  SystemClock,
  TcpPageTransport,
  TlsPageTransport,
  WORKLOAD_COPY_ORDER,
  type PageTransport,
} from '@spotlift/engine';
import {
  ForgetOnDelete,
  IndexedWorkloadRepository,
  JournalCopies,
  JournaledRepository,
  LocalJournal,
  MigrationFlags,
  MigrationRepository,
  NodeRepository,
  OutageTolerantFlags,
  PostCopyTrials,
  ProcessIndex,
  RedisMigrationFlags,
  RedisWorkloadClaims,
  WorkloadClaims,
  PairLinks,
  RedisPairLinks,
  RedisPostCopyTrials,
  RedisProcessIndex,
  RedisRecords,
  type RecordOrder,
  type Repository,
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
import { type RedisSettings, redisOptions } from '../config/redis-config.js';
import { EventPublisher, eventStreamKey } from '../events/event-publisher.js';
import { EventedRepository } from '../events/evented-repository.js';
import { migrationEvents, nodeEvents, nodeRemoved } from '../events/record-events.js';
import { RedisLink, isRedisUnreachableError } from './redis-link.js';

export const REDIS = Symbol('REDIS');
/**
 * A second client with ioredis's patient defaults (commands wait in an offline queue until Redis is back),
 * for the checkpoint jobs' records: their flow has no journal, so through an outage it waits as it always
 * did instead of failing mid-take. Its errors are reported to the same RedisLink (logged once per outage).
 */
export const REDIS_PATIENT = Symbol('REDIS_PATIENT');
/** The engine's migration and workload records: Redis with the worker's local journal in front. */
export const ENGINE_MIGRATIONS = Symbol('ENGINE_MIGRATIONS');
export const ENGINE_WORKLOADS = Symbol('ENGINE_WORKLOADS');
/**
 * Node and evacuation records: Redis, each copy Redis took also journaled on this host (JournalCopies), so a
 * Redis that came back empty gets them back (StoreResync). These are the journals, for the restore.
 */
export const NODE_JOURNAL = Symbol('NODE_JOURNAL');
export const EVACUATION_JOURNAL = Symbol('EVACUATION_JOURNAL');

/**
 * Our Redis client. Fails fast while Redis is away instead of queueing commands for later: no offline
 * queue (a command on a broken link is refused at once), one retry, 1 s per command by default (a link that hangs
 * rather than breaks); the API turns those errors into 503s and the engine into journal entries. It
 * reconnects every second at most, so the end of an outage is noticed quickly. Boot waits up to 10 s for the
 * first connection; without one the process starts anyway and catches up when Redis answers.
 */
async function connectRedis(settings: RedisSettings): Promise<Redis> {
  const client = new Redis({
    ...redisOptions(settings),
    lazyConnect: true,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    commandTimeout: settings.commandTimeoutMs,
    connectTimeout: 2_000,
    retryStrategy: (times) => Math.min(times * 200, 1_000),
  });
  const link = new RedisLink(client);
  const ready = new Promise<void>((resolve) => client.once('ready', () => resolve()));
  void client.connect().catch(() => undefined);
  await Promise.race([ready, new Promise((r) => setTimeout(r, 10_000).unref())]);
  links.set(client, link);
  return client;
}
/** Each client's link watcher, made with it so that not one error event goes unheard. */
const links = new WeakMap<Redis, RedisLink>();

function journaled<T extends { id: string; updatedAt?: string }>(
  inner: Repository<T>,
  c: AppConfig,
  kind: string,
  link: RedisLink,
  /** Migrations and workloads: copies several worker hosts journal are ordered when written back. */
  order?: RecordOrder<T>,
): JournaledRepository<T> {
  return new JournaledRepository<T>(
    inner,
    new LocalJournal<T>(join(c.stateDir, c.redisPrefix, kind)),
    () => new Date(),
    (_id, error) => link.report('journal', error),
    isRedisUnreachableError,
    order,
  );
}
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
      // Not shared with BullMQ (which makes its own connections from BullModule's options).
      useFactory: (c: AppConfig) => connectRedis(c.redis),
    },
    { provide: RedisLink, inject: [REDIS], useFactory: (r: Redis) => links.get(r) ?? new RedisLink(r) },
    {
      provide: REDIS_PATIENT,
      inject: [AppConfig, RedisLink],
      useFactory: (c: AppConfig, l: RedisLink) => {
        const client = new Redis({
          ...redisOptions(c.redis),
          maxRetriesPerRequest: null,
          retryStrategy: (times) => Math.min(times * 200, 1_000),
        });
        client.on('error', (error: Error) => l.report('checkpoint records', error));
        return client;
      },
    },
    {
      // Events derived from record saves, appended to the Redis stream GET /events reads (see events/).
      provide: EventPublisher,
      inject: [REDIS, AppConfig, RedisLink],
      useFactory: (r: Redis, c: AppConfig, l: RedisLink) =>
        new EventPublisher(r, eventStreamKey(c.redisPrefix), c.events.retention, (e) => l.report('events', e)),
    },
    { provide: Clock, useClass: SystemClock },
    {
      provide: NodeShell,
      inject: [AppConfig],
      useFactory: (c: AppConfig) =>
        new SshNodeShell({
          privateKey: c.sshPrivateKey,
          maxChannelsPerNode: c.sshMaxChannels,
          maxConcurrentConnects: c.sshMaxConnects,
        }),
    },
    {
      provide: NODE_JOURNAL,
      inject: [REDIS, AppConfig, RedisLink],
      useFactory: (r: Redis, c: AppConfig, l: RedisLink) =>
        journaled(new RedisRecords<NodeRecord>(r, c.redisPrefix, 'node', { versioned: true }), c, 'node', l),
    },
    {
      // Versioned: a probe, a notice and a clear-notice write the same record (NodesService uses update).
      provide: NodeRepository,
      // Saves also publish what changed to the event stream (events/record-events.ts).
      inject: [REDIS, AppConfig, NODE_JOURNAL, EventPublisher],
      useFactory: (r: Redis, c: AppConfig, j: JournaledRepository<NodeRecord>, p: EventPublisher) =>
        new EventedRepository(
          new JournalCopies(new RedisRecords<NodeRecord>(r, c.redisPrefix, 'node', { versioned: true }), j),
          p,
          nodeEvents,
          (id) => nodeRemoved(id, new Date().toISOString()),
        ),
    },
    {
      provide: EVACUATION_JOURNAL,
      inject: [REDIS, AppConfig, RedisLink],
      useFactory: (r: Redis, c: AppConfig, l: RedisLink) =>
        journaled(
          new RedisRecords<EvacuationRecord>(r, c.redisPrefix, 'evacuation', { versioned: true }),
          c,
          'evacuation',
          l,
        ),
    },
    {
      // processKey -> workload id: one record per process (libs/store process-index.ts).
      provide: ProcessIndex,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) => new RedisProcessIndex(r, c.redisPrefix),
    },
    {
      // Every save keeps the process index in step, the engine's commits included.
      // A delete also forgets the worker's journal copy (not re-created when Redis comes back empty).
      provide: WorkloadRepository,
      inject: [REDIS, AppConfig, ProcessIndex, ENGINE_WORKLOADS],
      useFactory: (r: Redis, c: AppConfig, index: ProcessIndex, engine: JournaledRepository<WorkloadRecord>) =>
        new ForgetOnDelete(
          new IndexedWorkloadRepository(new RedisRecords(r, c.redisPrefix, 'workload', { versioned: true }), index),
          engine.journal,
        ),
    },
    {
      provide: MigrationRepository,
      inject: [REDIS, AppConfig, EventPublisher],
      useFactory: (r: Redis, c: AppConfig, p: EventPublisher) =>
        new EventedRepository(
          new RedisRecords<MigrationRecord>(r, c.redisPrefix, 'migration', { versioned: true }),
          p,
          migrationEvents,
        ),
    },
    {
      provide: ENGINE_MIGRATIONS,
      inject: [REDIS, AppConfig, RedisLink],
      useFactory: (r: Redis, c: AppConfig, l: RedisLink) =>
        journaled(
          new RedisRecords<MigrationRecord>(r, c.redisPrefix, 'migration', { versioned: true }),
          c,
          'migration',
          l,
          MIGRATION_COPY_ORDER,
        ),
    },
    {
      // The indexed repository under the journal: a write-back keeps the process index in step too.
      provide: ENGINE_WORKLOADS,
      inject: [REDIS, AppConfig, RedisLink, ProcessIndex],
      useFactory: (r: Redis, c: AppConfig, l: RedisLink, index: ProcessIndex) =>
        journaled(
          new IndexedWorkloadRepository(
            new RedisRecords<WorkloadRecord>(r, c.redisPrefix, 'workload', { versioned: true }),
            index,
          ),
          c,
          'workload',
          l,
          WORKLOAD_COPY_ORDER,
        ),
    },
    { provide: NodeOps, inject: [NodeShell], useFactory: (s: NodeShell) => new NodeOps(s) },
    {
      // The container kind's operations (inspect at registration; the engine builds its own from the same parts).
      provide: PodmanOps,
      inject: [NodeOps, NodeShell],
      useFactory: (o: NodeOps, s: NodeShell) => new PodmanOps(o, new DirectoryStreamer(s)),
    },
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
      // One claim per process across replicas before anything freezes it (libs/store workload-claims.ts).
      provide: WorkloadClaims,
      inject: [REDIS, AppConfig],
      useFactory: (r: Redis, c: AppConfig) => new RedisWorkloadClaims(r, c.redisPrefix),
    },
    {
      // The worker's flags: a migration under way reaches its end while Redis is away (see the class).
      provide: OutageTolerantFlags,
      inject: [MigrationFlags, RedisLink],
      useFactory: (f: MigrationFlags, l: RedisLink) =>
        new OutageTolerantFlags(f, (id, what, error) => l.report(`${what} of ${id}`, error)),
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
      // The engine drives a migration to its end even when Redis goes away: its records go through the journal.
      inject: [
        ENGINE_MIGRATIONS,
        ENGINE_WORKLOADS,
        NodeRepository,
        NodeOps,
        NodeShell,
        Clock,
        AppConfig,
        PAGE_TRANSPORTS,
        PostCopyTrials,
        PairLinks,
        EventPublisher,
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
        publisher: EventPublisher,
      ) =>
        new MigrationEngine(
          // The journal stays under the events: a save the journal took while Redis was away still publishes
          // (and that XADD fails quietly), and the engine never waits for an event.
          new EventedRepository(m, publisher, migrationEvents),
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
    EventPublisher,
    REDIS_PATIENT,
    RedisLink,
    ENGINE_MIGRATIONS,
    ENGINE_WORKLOADS,
    NODE_JOURNAL,
    EVACUATION_JOURNAL,
    PAGE_TRANSPORTS,
    Clock,
    NodeShell,
    NodeRepository,
    WorkloadRepository,
    ProcessIndex,
    MigrationRepository,
    NodeOps,
    PodmanOps,
    NodeProber,
    MigrationEngine,
    NodeCertificates,
    PostCopyTrials,
    PairLinks,
    MigrationFlags,
    WorkloadClaims,
    OutageTolerantFlags,
  ],
})
export class CoreModule implements OnApplicationShutdown {
  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    @Inject(REDIS_PATIENT) private readonly patient: Redis,
    private readonly shell: NodeShell,
    private readonly link: RedisLink,
  ) {}

  async onApplicationShutdown(): Promise<void> {
    this.link.closing = true;
    await this.shell.close();
    await this.redis.quit().catch(() => undefined);
    await this.patient.quit().catch(() => undefined);
  }
}
