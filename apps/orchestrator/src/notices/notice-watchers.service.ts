import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Redis } from 'ioredis';
import type { NodeMetadataSource, NodeTarget } from '@spotlift/domain';
import {
  AzureScheduledEventsNoticeProvider,
  KubeNodeApi,
  KubeNodeNoticeProvider,
  NoticeDeduplicator,
  RedisWatchLeases,
  WatchShardKeeper,
  watchNotices,
  type NoticeProvider,
} from '@spotlift/notices';
import { EvacuationRepository, NodeRepository } from '@spotlift/store';
import { NodeShell } from '@spotlift/transport';
import { AppConfig } from '../config/app-config.js';
import { REDIS } from '../core/core.module.js';
import { NodeEvents } from '../nodes/node-events.js';
import { NodesService } from '../nodes/nodes.service.js';
import { AzureAcknowledger } from './azure-acknowledger.js';
import { metadataProvider, nodeWatchSignal } from './metadata-providers.js';
import { NoticeIntake } from './notice-intake.service.js';

const AZURE_ACK_CHECK_MS = 1_000;
const KUBE_NAMES_REFRESH_MS = 30_000;
/** How soon a node registered through another replica (e.g. an `api` one) is watched here. */
const NODE_SYNC_MS = 5_000;

type WatchableNode = NodeTarget & { metadata?: NodeMetadataSource };

/** One node's metadata watch; restarted when how to reach the node or its metadata service changes. */
interface NodeWatch {
  fingerprint: string;
  stop: AbortController;
}

/**
 * Watches nodes' metadata services over SSH (and the Kubernetes API when configured), in replicas that run
 * workers. Nodes with a metadata source are sharded across those replicas by leases in Redis
 * (libs/notices shards): each is watched by the one live replica holding its lease, a killed replica's
 * nodes are taken by the others within lease + renew ms, and nodes registered (config file, `POST /nodes`
 * here or on another replica) or removed are picked up at the next period. The Redis deduplicator still
 * makes the first sighting raise the evacuation, should two replicas briefly watch one node (Redis away).
 */
@Injectable()
export class NoticeWatchers implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('notices');
  private readonly abort = new AbortController();
  private readonly running: Promise<void>[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly nodeWatches = new Map<string, NodeWatch>();
  /** Nodes with a metadata source this process knows of (config, store, registrations), by id. */
  private readonly candidates = new Map<string, WatchableNode>();
  private keeper?: WatchShardKeeper;
  private readonly unsubscribes: (() => void)[] = [];
  private kubeNames = new Map<string, string>();
  private kubeLabel?: string;
  private acks?: AzureAcknowledger;

  constructor(
    private readonly config: AppConfig,
    private readonly shell: NodeShell,
    private readonly dedup: NoticeDeduplicator,
    private readonly intake: NoticeIntake,
    private readonly nodes: NodeRepository,
    private readonly evacuations: EvacuationRepository,
    @Inject(REDIS) private readonly redis: Redis,
    private readonly nodeEvents: NodeEvents,
    private readonly nodeService: NodesService,
    @Optional() private readonly kubeApi?: KubeNodeApi,
  ) {}

  /** Nodes (and the Kubernetes API) watched by this process now, for health and tests. */
  get watched(): string[] {
    return [...this.nodeWatches.keys(), ...(this.kubeLabel ? [this.kubeLabel] : [])];
  }

  onApplicationBootstrap(): void {
    if (!this.config.notices.watch) return;
    this.acks = new AzureAcknowledger(
      this.redis,
      this.config.redisPrefix,
      this.evacuations,
      this.config.evacuation.azureAckLeadSeconds * 1000,
    );
    for (const spec of this.config.nodes) this.consider(spec);
    this.unsubscribes.push(
      this.nodeEvents.onRegistered((node) => this.consider(node)),
      this.nodeEvents.onRemoved((id) => this.forget(id)),
    );
    this.every(NODE_SYNC_MS, async () => this.sync(await this.nodes.list()));
    const { leaseMs, renewMs, slack } = this.config.notices.lease;
    const self = `${hostname()}:${process.pid}:${randomBytes(3).toString('hex')}`;
    const leases = new RedisWatchLeases(this.redis, this.config.redisPrefix, self, { leaseMs, renewMs });
    this.keeper = new WatchShardKeeper(
      leases,
      (id) => this.watchNode(id),
      (id, why) => this.unwatch(id, why === 'lost' ? 'lease lost' : 'lease given back'),
      slack,
    );
    const keeper = this.keeper;
    let failing = false;
    const period = async () => {
      try {
        const p = await keeper.period([...this.candidates.keys()]);
        failing = false;
        if (!p.taken.length && !p.dropped.length) return;
        const { taken, dropped, liveReplicas } = p;
        this.logger.log({
          msg: 'watch shard changed',
          replica: self,
          taken,
          dropped,
          quota: p.plan.quota,
          liveReplicas,
        });
      } catch (error) {
        // Said once per outage, not every period; the nodes held stay watched (see WatchShardKeeper).
        if (!failing)
          this.logger.warn({ msg: 'watch leases not renewed: keeping current watches', error: String(error) });
        failing = true;
      }
    };
    // The first period at once, so the config's nodes are watched before their probes end.
    this.every(renewMs, period, this.abort.signal, true);
    if (this.kubeApi) void this.startKube(this.kubeApi);
  }

  async onModuleDestroy(): Promise<void> {
    this.unsubscribes.forEach((unsubscribe) => unsubscribe());
    this.abort.abort(new Error('orchestrator shutting down'));
    for (const t of this.timers) clearInterval(t);
    // Leases given back now: the other replicas take these nodes at their next period, not a lease later.
    await this.keeper?.leave().catch(() => undefined);
    await Promise.allSettled(this.running);
  }

  /** Nodes now in the store (plus the config's, which may still be registering); the rest are forgotten. */
  private sync(nodes: WatchableNode[]): void {
    for (const node of nodes) this.consider(node);
    const known = new Set([...nodes, ...this.config.nodes].map((n) => n.id));
    for (const id of this.candidates.keys()) if (!known.has(id)) this.candidates.delete(id);
  }

  /** A node removed here: unwatched now (its lease is given back at the next period), not at the next sync. */
  private forget(id: string): void {
    this.candidates.delete(id);
    this.unwatch(id, 'node removed');
  }

  /** A node seen (config, store, registration): a candidate if it has a metadata source; restarted if held and changed. */
  private consider(node: WatchableNode): void {
    if (!node.metadata) {
      this.candidates.delete(node.id);
      this.unwatch(node.id, 'metadata source removed');
      return;
    }
    this.candidates.set(node.id, node);
    const current = this.nodeWatches.get(node.id);
    if (current && current.fingerprint !== fingerprintOf(node)) this.unwatch(node.id, 'node re-registered');
    // Held here (also a node whose metadata source came back while its lease was kept): watched with the new spec.
    if (this.keeper?.holds(node.id)) this.watchNode(node.id);
  }

  private unwatch(id: string, why: string): void {
    const current = this.nodeWatches.get(id);
    if (!current) return;
    current.stop.abort(new Error(why));
    this.nodeWatches.delete(id);
    this.logger.log({ msg: `stopped watching notices: ${why}`, target: id });
  }

  /** Starts one node's watch (its lease is held here). */
  private watchNode(id: string): void {
    const node = this.candidates.get(id);
    if (this.abort.signal.aborted || !node?.metadata || this.nodeWatches.has(id)) return;
    const stop = new AbortController();
    this.nodeWatches.set(node.id, { fingerprint: fingerprintOf(node), stop });
    const signal = nodeWatchSignal(this.abort.signal, stop.signal);
    const provider = metadataProvider(this.shell, node, node.metadata, {
      pollIntervalMs: this.config.notices.pollIntervalMs,
      mode: this.config.notices.watchMode,
      signal,
    });
    this.start(provider, node.id, signal);
    const acks = this.acks!;
    if (provider instanceof AzureScheduledEventsNoticeProvider) {
      this.every(AZURE_ACK_CHECK_MS, () => acks.check(node.id, provider), signal);
    }
  }

  private start(provider: NoticeProvider, label: string, signal: AbortSignal): void {
    this.logger.log({ msg: 'watching notices', target: label, source: provider.source });
    const run = watchNotices(provider, {
      dedup: this.dedup,
      onNotice: (n) => this.intake.watched(n),
      onProblem: (p, repeats) => this.intake.problem(p, repeats),
      onRecovered: (r) => this.intake.recovered(r),
      signal,
    }).catch((error: unknown) => {
      // A provider only throws on a bug (sources' failures are problems); say so loudly, keep the app up.
      if (!signal.aborted) this.logger.error({ msg: 'notice watcher stopped', target: label, error: String(error) });
    });
    this.running.push(run);
  }

  /** Runs `fn` every `ms` (and at once if asked), never two at once, until `signal` (default: shutdown) aborts. */
  private every(ms: number, fn: () => Promise<void>, signal: AbortSignal = this.abort.signal, atOnce = false): void {
    let busy = false;
    const tick = () => {
      if (signal.aborted) return clearInterval(t);
      if (busy) return;
      busy = true;
      fn()
        .catch((error: unknown) => this.logger.warn({ msg: 'periodic notice task failed', error: String(error) }))
        .finally(() => (busy = false));
    };
    const t = setInterval(tick, ms);
    t.unref();
    if (atOnce) tick();
    this.timers.push(t);
  }

  /**
   * Kubernetes Node watch: a Node maps to our node whose id or name equals the Node's name. Its deletion
   * confirms the node lost, by the same path as `POST /nodes/:id/lost` (the guard pass then fences and restores).
   */
  private async startKube(api: KubeNodeApi): Promise<void> {
    const refresh = async () => {
      const nodes = await this.nodes.list();
      this.kubeNames = new Map(nodes.flatMap((n) => [[n.id, n.id] as const, [n.name, n.id] as const]));
      for (const spec of this.config.nodes) this.kubeNames.set(spec.name ?? spec.id, spec.id);
    };
    await refresh().catch(() => undefined);
    this.every(KUBE_NAMES_REFRESH_MS, refresh);
    // A node registered in this process maps at once, not at the next refresh.
    this.unsubscribes.push(
      this.nodeEvents.onRegistered((n) => {
        this.kubeNames.set(n.id, n.id);
        this.kubeNames.set(n.name, n.id);
      }),
    );
    const label = `k8s ${this.config.notices.kubernetes?.apiUrl ?? ''}`.trim();
    this.kubeLabel = label;
    this.start(
      new KubeNodeNoticeProvider({
        api,
        nodeIdOf: (name) => this.kubeNames.get(name),
        onNodeDeleted: async ({ nodeId, name }) => {
          await this.nodeService.confirmLost(nodeId, label, `Node ${name} deleted from the cluster`, 'kubernetes');
        },
      }),
      this.kubeLabel,
      this.abort.signal,
    );
  }
}

/** How to reach a node and its metadata service: a watch restarts when this changes. */
function fingerprintOf(node: WatchableNode): string {
  return JSON.stringify([node.host, node.port, node.user, node.hostKey, node.metadata]);
}
