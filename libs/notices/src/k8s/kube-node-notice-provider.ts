import type { NoticeProblem } from '../notice-problem.js';
import type { NoticeProvider, NoticeSink } from '../notice-provider.port.js';
import { abortableSleep } from '../abortable-sleep.js';
import { DEFAULT_MAX_PAST_MS, describeZodError, type ParseContext } from '../parse-context.js';
import { KubeApiError, kubeNodeSchema, type KubeNode, type KubeNodeApi } from './kube-node-api.port.js';
import { DEFAULT_KUBE_SIGNALS, evaluateKubeNode, type KubeSignal } from './kube-signals.js';

/** Options of {@link KubeNodeNoticeProvider}. */
export interface KubeNodeNoticeProviderOptions {
  api: KubeNodeApi;
  /** Maps a Node to our node id; undefined = not a node we manage (ignored). */
  nodeIdOf: (name: string, node: KubeNode) => string | undefined;
  signals?: readonly KubeSignal[];
  /** Reconnect backoff after repeated failures: client-node's ListWatch uses 1 s doubling to 30 s. */
  backoff?: { baseMs?: number; maxMs?: number };
  /** Server-side watch length; like client-go, 5 min plus jitter so replicas do not reconnect in step. */
  watchTimeoutSeconds?: number;
  /**
   * Give up on a watch that has been silent this long and reconnect from the last resourceVersion.
   * client-node 1.4's Watch has no working timeout of its own, so a half-open connection would otherwise
   * hang forever. Bookmarks keep a healthy quiet watch from tripping it often.
   */
  idleTimeoutMs?: number;
  maxPastMs?: number;
  now?: () => number;
  /**
   * A Node we manage was deleted from the cluster: a DELETED watch event, or a Node this provider had seen
   * missing from a relist (deleted while the watch was down). Kubernetes' word that the node is gone; a node
   * never seen in the cluster is not reported by its absence. A throw is reported as a problem.
   */
  onNodeDeleted?: (deletion: KubeNodeDeletion) => void | Promise<void>;
}

/** What {@link KubeNodeNoticeProviderOptions.onNodeDeleted} is told. */
export interface KubeNodeDeletion {
  nodeId: string;
  /** The Node's name in Kubernetes. */
  name: string;
  at: Date;
  /** Seen as a DELETED event, or inferred from a relist that no longer lists it. */
  how: 'watch' | 'relist';
}

type SessionEnd = { how: 'closed' | 'gone' | 'idle' | 'aborted' } | { how: 'error'; message: string; status?: number };

/**
 * Kubernetes Nodes: list, then watch from the list's resourceVersion; raise notices from configured taints
 * and conditions. Survives disconnects (reconnect from the last resourceVersion, with backoff when it keeps
 * failing) and 410 Gone (relist). One provider covers the whole cluster.
 */
export class KubeNodeNoticeProvider implements NoticeProvider {
  readonly source = 'k8s' as const;
  private readonly now: () => number;
  private readonly signals: readonly KubeSignal[];
  /** Counters for health checks and tests. */
  readonly stats = { lists: 0, watches: 0, relistsAfterGone: 0, reconnects: 0, idleTimeouts: 0, deletions: 0 };
  /** Nodes seen in the cluster (listed, added or modified) and not deleted since, by name. */
  private readonly present = new Map<string, KubeNode>();

  constructor(private readonly options: KubeNodeNoticeProviderOptions) {
    this.now = options.now ?? Date.now;
    this.signals = options.signals ?? DEFAULT_KUBE_SIGNALS;
  }

  async watch(sink: NoticeSink, signal: AbortSignal): Promise<void> {
    let resourceVersion: string | undefined;
    let failures = 0;
    const base = this.options.backoff?.baseMs ?? 1_000;
    const max = this.options.backoff?.maxMs ?? 30_000;
    // The first retry is immediate (a dropped connection is routine); then doubling from `base`.
    const delay = () => (failures <= 1 ? 0 : Math.min(max, base * 2 ** (failures - 2)));

    while (!signal.aborted) {
      if (resourceVersion === undefined) {
        try {
          this.stats.lists++;
          const list = await this.options.api.listNodes(signal);
          if (signal.aborted) return;
          for (const item of list.items) await this.handleObject(item, sink);
          await this.missingFromList(list.items, sink);
          resourceVersion = list.resourceVersion;
        } catch (err) {
          if (signal.aborted) return;
          failures++;
          sink.problem(this.problem(`listing nodes failed: ${errorText(err)}`, statusOf(err)));
          await abortableSleep(Math.max(delay(), base), signal);
          continue;
        }
      }
      this.stats.watches++;
      const startedAt = this.now();
      // An object, not a let: the flag is set from a callback and TS would otherwise narrow it to false.
      const seen = { event: false };
      const outcome = await this.session(
        resourceVersion,
        sink,
        signal,
        (rv) => (resourceVersion = rv),
        () => {
          seen.event = true;
          failures = 0;
        },
      );
      if (signal.aborted || outcome.how === 'aborted') return;
      if (outcome.how === 'gone') {
        // Our resourceVersion was compacted away: only a fresh list can tell us the current state.
        this.stats.relistsAfterGone++;
        resourceVersion = undefined;
        continue;
      }
      this.stats.reconnects++;
      if (outcome.how === 'idle') this.stats.idleTimeouts++;
      if (outcome.how === 'error') {
        failures++;
        sink.problem(this.problem(`node watch ended: ${outcome.message}; reconnecting`, outcome.status));
      } else if (!seen.event && this.now() - startedAt < base) {
        // A watch that closes at once without a single event is failing, even if it closes cleanly.
        failures++;
      }
      await abortableSleep(delay(), signal);
    }
  }

  /** One watch request, until it closes, fails, goes stale (410), idles out or the signal aborts. */
  private async session(
    resourceVersion: string,
    sink: NoticeSink,
    signal: AbortSignal,
    setRv: (rv: string) => void,
    healthy: () => void,
  ): Promise<SessionEnd> {
    const idleMs = this.options.idleTimeoutMs ?? 90_000;
    const timeoutSeconds = this.options.watchTimeoutSeconds ?? 300 + Math.floor(Math.random() * 300);
    // Events are delivered in order even though the sink may be async.
    let chain: Promise<void> = Promise.resolve();
    return new Promise<SessionEnd>((resolve) => {
      let ended = false;
      let handle: { abort(): void } | undefined;
      let idle: NodeJS.Timeout | undefined;
      const end = (how: SessionEnd) => {
        if (ended) return;
        ended = true;
        clearTimeout(idle);
        signal.removeEventListener('abort', onAbort);
        handle?.abort();
        void chain.then(() => resolve(how));
      };
      const armIdle = () => {
        clearTimeout(idle);
        idle = setTimeout(() => end({ how: 'idle' }), idleMs);
      };
      const onAbort = () => end({ how: 'aborted' });
      signal.addEventListener('abort', onAbort, { once: true });
      armIdle();
      const onEvent = (type: string, object: unknown) => {
        if (ended) return;
        armIdle();
        if (type === 'ERROR') {
          const status = statusOfObject(object);
          if (status === 410) return end({ how: 'gone' });
          return end({ how: 'error', message: `ERROR event ${status ?? ''} ${messageOfObject(object)}`.trim() });
        }
        healthy();
        const rv = resourceVersionOf(object);
        if (rv) setRv(rv);
        if (type === 'ADDED' || type === 'MODIFIED') chain = chain.then(() => this.handleObject(object, sink));
        if (type === 'DELETED') chain = chain.then(() => this.handleDeleted(object, sink));
      };
      const onDone = (err?: KubeApiError) => {
        if (!err) return end({ how: 'closed' });
        if (err.status === 410) return end({ how: 'gone' });
        const http = err.status === undefined ? '' : ` (HTTP ${err.status})`;
        end({ how: 'error', message: `${err.message}${http}`, status: err.status });
      };
      this.options.api
        .watchNodes({ resourceVersion, timeoutSeconds, allowWatchBookmarks: true }, onEvent, onDone)
        .then((h) => {
          handle = h;
          if (ended) h.abort();
        })
        .catch((err: unknown) => end({ how: 'error', message: errorText(err) }));
    });
  }

  private async handleObject(object: unknown, sink: NoticeSink): Promise<void> {
    const parsed = kubeNodeSchema.safeParse(object);
    if (!parsed.success) {
      sink.problem(this.problem(`node object does not look like a Node: ${describeZodError(parsed.error)}`));
      return;
    }
    const node = parsed.data;
    this.present.set(node.metadata.name, node);
    const nodeId = this.options.nodeIdOf(node.metadata.name, node);
    if (nodeId === undefined) return;
    const ctx: ParseContext = {
      nodeId,
      source: 'k8s',
      path: `/api/v1/nodes/${node.metadata.name}`,
      receivedAt: new Date(this.now()),
      maxPastMs: this.options.maxPastMs ?? DEFAULT_MAX_PAST_MS,
    };
    const result = evaluateKubeNode(ctx, node, this.signals);
    result.problems.forEach((p) => sink.problem(p));
    for (const n of result.notices) await sink.notice(n);
  }

  /** A DELETED event carries the Node's last state: a node we manage is reported gone. */
  private async handleDeleted(object: unknown, sink: NoticeSink): Promise<void> {
    const parsed = kubeNodeSchema.safeParse(object);
    if (!parsed.success) {
      sink.problem(this.problem(`deleted object does not look like a Node: ${describeZodError(parsed.error)}`));
      return;
    }
    await this.deleted(parsed.data, 'watch', sink);
  }

  /** Nodes seen before and absent from a (re)list were deleted while no watch ran (client-go says the same). */
  private async missingFromList(items: unknown[], sink: NoticeSink): Promise<void> {
    const listed = new Set(items.map((item) => field(field(item, 'metadata'), 'name')));
    for (const [name, node] of [...this.present]) if (!listed.has(name)) await this.deleted(node, 'relist', sink);
  }

  private async deleted(node: KubeNode, how: KubeNodeDeletion['how'], sink: NoticeSink): Promise<void> {
    const name = node.metadata.name;
    this.present.delete(name);
    const nodeId = this.options.nodeIdOf(name, node);
    if (nodeId === undefined || !this.options.onNodeDeleted) return;
    this.stats.deletions++;
    try {
      await this.options.onNodeDeleted({ nodeId, name, at: new Date(this.now()), how });
    } catch (err) {
      sink.problem(this.problem(`Node ${name} deleted, but recording it failed: ${errorText(err)}`));
    }
  }

  private problem(message: string, status?: number): NoticeProblem {
    return {
      source: 'k8s',
      code: 'watch',
      message: `/api/v1/nodes: ${message}`,
      path: '/api/v1/nodes',
      status,
      at: new Date(this.now()),
    };
  }
}

function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

function statusOf(err: unknown): number | undefined {
  return err instanceof KubeApiError ? err.status : undefined;
}

function field(object: unknown, key: string): unknown {
  return object && typeof object === 'object' ? (object as Record<string, unknown>)[key] : undefined;
}

function statusOfObject(object: unknown): number | undefined {
  const code = field(object, 'code');
  return typeof code === 'number' ? code : undefined;
}

function messageOfObject(object: unknown): string {
  const message = field(object, 'message');
  return typeof message === 'string' ? message : '';
}

function resourceVersionOf(object: unknown): string | undefined {
  const rv = field(field(object, 'metadata'), 'resourceVersion');
  return typeof rv === 'string' && rv !== '' ? rv : undefined;
}
