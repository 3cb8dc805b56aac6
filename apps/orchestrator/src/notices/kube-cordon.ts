import { Injectable, Logger, Optional, type Provider } from '@nestjs/common';
import type { EvacuationCordon, NodeRecord } from '@spotlift/domain';
import { ClientNodeKubeApi, KubeApiError, KubeNodeApi, type Notice } from '@spotlift/notices';
import { Clock } from '@spotlift/engine';
import { AppConfig } from '../config/app-config.js';

/** A cordon that has not answered by then is recorded as failed (the evacuation never waits for it). */
const CORDON_TIMEOUT_MS = 10_000;

/** One Kubernetes API client for the process (the Node watch and the cordon), when one is configured. */
export function kubeApiProviders(config: AppConfig): Provider[] {
  const k = config.notices.kubernetes;
  if (!k) return [];
  return [
    {
      provide: KubeNodeApi,
      useFactory: () =>
        ClientNodeKubeApi.forServer({
          server: k.apiUrl,
          ...(k.token ? { token: k.token } : {}),
          skipTLSVerify: k.skipTLSVerify,
        }),
    },
  ];
}

/**
 * Cordons the Kubernetes Node of a node that is being evacuated, so the scheduler stops placing pods there
 * too. Which Node: the one the notice came from (a taint or condition), else the Node named like our node
 * (its name, then its id), the same mapping the Node watch uses. A 404 for every name means the node is not
 * a Kubernetes node. Never throws: every end is an {@link EvacuationCordon} to record.
 */
@Injectable()
export class KubeCordoner {
  private readonly logger = new Logger('notices');

  constructor(
    private readonly clock: Clock,
    @Optional() private readonly api?: KubeNodeApi,
  ) {}

  /** False when no Kubernetes API is configured: nothing to cordon. */
  get enabled(): boolean {
    return this.api !== undefined;
  }

  async cordon(node: NodeRecord, notice: Pick<Notice, 'source' | 'raw'>): Promise<EvacuationCordon | undefined> {
    if (!this.api) return undefined;
    const names = kubeNodeNames(node, notice);
    const at = () => this.clock.now().toISOString();
    for (const name of names) {
      try {
        const { alreadyCordoned } = await withTimeout(this.api.cordonNode(name), CORDON_TIMEOUT_MS);
        this.logger.log({ msg: 'kubernetes node cordoned', node: node.id, kubeNode: name, alreadyCordoned });
        return { kubeNode: name, at: at(), outcome: alreadyCordoned ? 'already-cordoned' : 'cordoned' };
      } catch (error) {
        if (error instanceof KubeApiError && error.status === 404) continue;
        const message = (error as Error).message;
        this.logger.warn({ msg: 'kubernetes cordon failed', node: node.id, kubeNode: name, error: message });
        return { kubeNode: name, at: at(), outcome: 'failed', error: message };
      }
    }
    return { kubeNode: names.join(', '), at: at(), outcome: 'not-a-kubernetes-node' };
  }
}

/** Node names to try, most specific first: the notice's own Node, our node's name, its id. */
export function kubeNodeNames(node: Pick<NodeRecord, 'id' | 'name'>, notice: Pick<Notice, 'source' | 'raw'>): string[] {
  const fromNotice = notice.source === 'k8s' ? (notice.raw as { name?: unknown } | undefined)?.name : undefined;
  const names = [typeof fromNotice === 'string' ? fromNotice : undefined, node.name, node.id];
  return [...new Set(names.filter((n): n is string => !!n))];
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from the Kubernetes API in ${ms} ms`)), ms);
    timer.unref();
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}
