import { Inject, Injectable, Logger, type OnApplicationBootstrap, type OnModuleDestroy } from '@nestjs/common';
import type { Redis } from 'ioredis';
import {
  AzureScheduledEventsNoticeProvider,
  ClientNodeKubeApi,
  KubeNodeNoticeProvider,
  NoticeDeduplicator,
  watchNotices,
  type NoticeProvider,
} from '@spotlift/notices';
import { EvacuationRepository, NodeRepository } from '@spotlift/store';
import { NodeShell } from '@spotlift/transport';
import { AppConfig } from '../config/app-config.js';
import { REDIS } from '../core/core.module.js';
import { AzureAcknowledger } from './azure-acknowledger.js';
import { metadataProvider } from './metadata-providers.js';
import { NoticeIntake } from './notice-intake.service.js';

const AZURE_ACK_CHECK_MS = 1_000;
const KUBE_NAMES_REFRESH_MS = 30_000;

/**
 * Watches every configured node's metadata service over SSH (and the Kubernetes API when configured), in
 * replicas that run workers. Every such replica watches every node, so losing one loses no notice; the
 * Redis deduplicator makes the first sighting across replicas raise the evacuation and the rest nothing.
 */
@Injectable()
export class NoticeWatchers implements OnApplicationBootstrap, OnModuleDestroy {
  private readonly logger = new Logger('notices');
  private readonly abort = new AbortController();
  private readonly running: Promise<void>[] = [];
  private readonly timers: NodeJS.Timeout[] = [];
  private kubeNames = new Map<string, string>();

  constructor(
    private readonly config: AppConfig,
    private readonly shell: NodeShell,
    private readonly dedup: NoticeDeduplicator,
    private readonly intake: NoticeIntake,
    private readonly nodes: NodeRepository,
    private readonly evacuations: EvacuationRepository,
    @Inject(REDIS) private readonly redis: Redis,
  ) {}

  /** Nodes watched by this process (for health and tests). */
  readonly watched: string[] = [];

  onApplicationBootstrap(): void {
    if (!this.config.notices.watch) return;
    const acks = new AzureAcknowledger(
      this.redis,
      this.config.redisPrefix,
      this.evacuations,
      this.config.evacuation.azureAckLeadSeconds * 1000,
    );
    for (const spec of this.config.nodes) {
      if (!spec.metadata) continue;
      const provider = metadataProvider(this.shell, spec, spec.metadata, {
        pollIntervalMs: this.config.notices.pollIntervalMs,
      });
      this.start(provider, spec.id);
      if (provider instanceof AzureScheduledEventsNoticeProvider) {
        this.every(AZURE_ACK_CHECK_MS, () => acks.check(spec.id, provider));
      }
    }
    if (this.config.notices.kubernetes) void this.startKube();
  }

  async onModuleDestroy(): Promise<void> {
    this.abort.abort(new Error('orchestrator shutting down'));
    for (const t of this.timers) clearInterval(t);
    await Promise.allSettled(this.running);
  }

  private start(provider: NoticeProvider, label: string): void {
    this.watched.push(label);
    this.logger.log({ msg: 'watching notices', target: label, source: provider.source });
    const run = watchNotices(provider, {
      dedup: this.dedup,
      onNotice: (n) => this.intake.watched(n),
      onProblem: (p, repeats) => this.intake.problem(p, repeats),
      signal: this.abort.signal,
    }).catch((error: unknown) => {
      // A provider only throws on a bug (sources' failures are problems); say so loudly, keep the app up.
      if (!this.abort.signal.aborted)
        this.logger.error({ msg: 'notice watcher stopped', target: label, error: String(error) });
    });
    this.running.push(run);
  }

  private every(ms: number, fn: () => Promise<void>): void {
    let busy = false;
    const t = setInterval(() => {
      if (busy || this.abort.signal.aborted) return;
      busy = true;
      fn()
        .catch((error: unknown) => this.logger.warn({ msg: 'periodic notice task failed', error: String(error) }))
        .finally(() => (busy = false));
    }, ms);
    t.unref();
    this.timers.push(t);
  }

  /** Kubernetes Node watch: a Node maps to our node whose id or name equals the Node's name. */
  private async startKube(): Promise<void> {
    const k = this.config.notices.kubernetes!;
    const refresh = async () => {
      const nodes = await this.nodes.list();
      this.kubeNames = new Map(nodes.flatMap((n) => [[n.id, n.id] as const, [n.name, n.id] as const]));
      for (const spec of this.config.nodes) this.kubeNames.set(spec.name ?? spec.id, spec.id);
    };
    await refresh().catch(() => undefined);
    this.every(KUBE_NAMES_REFRESH_MS, refresh);
    const api = await ClientNodeKubeApi.forServer({
      server: k.apiUrl,
      ...(k.token ? { token: k.token } : {}),
      skipTLSVerify: k.skipTLSVerify,
    });
    this.start(new KubeNodeNoticeProvider({ api, nodeIdOf: (name) => this.kubeNames.get(name) }), `k8s ${k.apiUrl}`);
  }
}
