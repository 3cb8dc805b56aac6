import {
  Inject,
  Injectable,
  Logger,
  Optional,
  type OnApplicationBootstrap,
  type OnModuleDestroy,
} from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { NodeMetadataSource, NodeTarget } from '@spotlift/domain';
import {
  AzureScheduledEventsNoticeProvider,
  KubeNodeApi,
  KubeNodeNoticeProvider,
  NoticeDeduplicator,
  watchNotices,
  type NoticeProvider,
} from '@spotlift/notices';
import { EvacuationRepository, NodeRepository } from '@spotlift/store';
import { NodeShell } from '@spotlift/transport';
import { AppConfig } from '../config/app-config.js';
import { REDIS } from '../core/core.module.js';
import { NodeEvents } from '../nodes/node-events.js';
import { AzureAcknowledger } from './azure-acknowledger.js';
import { metadataProvider } from './metadata-providers.js';
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
 * Watches every node's metadata service over SSH (and the Kubernetes API when configured), in replicas
 * that run workers: the config file's nodes from boot, and nodes registered later (`POST /nodes`) as soon
 * as this process registers them or, registered through another replica, at the next sync with the store.
 * Every such replica watches every node, so losing one loses no notice; the Redis deduplicator makes the
 * first sighting across replicas raise the evacuation and the rest nothing.
 */
@Injectable()
export class NoticeWatchers implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('notices');
  private readonly abort = new AbortController();
  private readonly running: Promise<void>[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private readonly nodeWatches = new Map<string, NodeWatch>();
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
    // The config's nodes at once (before their probes end), then whatever registrations bring.
    for (const spec of this.config.nodes) this.watchNode(spec);
    this.unsubscribes.push(this.nodeEvents.onRegistered((node) => this.watchNode(node)));
    this.every(NODE_SYNC_MS, async () => {
      const nodes = await this.nodes.list();
      for (const node of nodes) this.watchNode(node);
      // A node removed (DELETE /nodes/:id on any replica) is watched no more; config nodes may still be registering.
      const known = new Set([...nodes, ...this.config.nodes].map((n) => n.id));
      for (const [id, watch] of this.nodeWatches) {
        if (known.has(id)) continue;
        watch.stop.abort(new Error('node removed'));
        this.nodeWatches.delete(id);
        this.logger.log({ msg: 'stopped watching notices: node removed', target: id });
      }
    });
    if (this.kubeApi) void this.startKube(this.kubeApi);
  }

  async onModuleDestroy(): Promise<void> {
    this.unsubscribes.forEach((unsubscribe) => unsubscribe());
    this.abort.abort(new Error('orchestrator shutting down'));
    for (const t of this.timers) clearInterval(t);
    await Promise.allSettled(this.running);
  }

  /** Starts, restarts (address, key or metadata changed) or stops (metadata removed) one node's watch. */
  private watchNode(node: WatchableNode): void {
    if (this.abort.signal.aborted) return;
    const current = this.nodeWatches.get(node.id);
    const fingerprint = node.metadata
      ? JSON.stringify([node.host, node.port, node.user, node.hostKey, node.metadata])
      : undefined;
    if (current?.fingerprint === fingerprint) return;
    if (current) {
      current.stop.abort(new Error('node re-registered'));
      this.nodeWatches.delete(node.id);
      this.logger.log({ msg: 'stopped watching notices', target: node.id });
    }
    if (!node.metadata || !fingerprint) return;
    const stop = new AbortController();
    this.nodeWatches.set(node.id, { fingerprint, stop });
    const signal = AbortSignal.any([this.abort.signal, stop.signal]);
    const provider = metadataProvider(this.shell, node, node.metadata, {
      pollIntervalMs: this.config.notices.pollIntervalMs,
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
      signal,
    }).catch((error: unknown) => {
      // A provider only throws on a bug (sources' failures are problems); say so loudly, keep the app up.
      if (!signal.aborted) this.logger.error({ msg: 'notice watcher stopped', target: label, error: String(error) });
    });
    this.running.push(run);
  }

  /** Runs `fn` every `ms`, never two at once, until `signal` (default: shutdown) aborts. */
  private every(ms: number, fn: () => Promise<void>, signal: AbortSignal = this.abort.signal): void {
    let busy = false;
    const t = setInterval(() => {
      if (signal.aborted) return clearInterval(t);
      if (busy) return;
      busy = true;
      fn()
        .catch((error: unknown) => this.logger.warn({ msg: 'periodic notice task failed', error: String(error) }))
        .finally(() => (busy = false));
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  /** Kubernetes Node watch: a Node maps to our node whose id or name equals the Node's name. */
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
    this.kubeLabel = `k8s ${this.config.notices.kubernetes?.apiUrl ?? ''}`.trim();
    this.start(
      new KubeNodeNoticeProvider({ api, nodeIdOf: (name) => this.kubeNames.get(name) }),
      this.kubeLabel,
      this.abort.signal,
    );
  }
}
