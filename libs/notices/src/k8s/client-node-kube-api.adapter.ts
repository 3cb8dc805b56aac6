// The only file that touches @kubernetes/client-node (ESM-only, heavy). It is loaded with a dynamic
// import() on first use, so importing @spotlift/notices never pulls it in by itself.
import type { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import {
  KubeApiError,
  KubeNodeApi,
  type KubeCordonResult,
  type KubeNodeList,
  type KubeWatchHandle,
  type KubeWatchParams,
} from './kube-node-api.port.js';

type ClientNode = typeof import('@kubernetes/client-node');

/** Options of {@link ClientNodeKubeApi.forServer}. */
export interface KubeServerOptions {
  /** API server URL, e.g. `https://10.0.0.1:6443` or a fake's `http://127.0.0.1:port`. */
  server: string;
  token?: string;
  caData?: string;
  skipTLSVerify?: boolean;
}

/** Adapter: {@link KubeNodeApi} on `@kubernetes/client-node` (CoreV1Api listNode/readNode/patchNode + Watch). */
export class ClientNodeKubeApi extends KubeNodeApi {
  private readonly core: CoreV1Api;

  private constructor(
    private readonly k8s: ClientNode,
    private readonly kubeConfig: KubeConfig,
  ) {
    super();
    this.core = kubeConfig.makeApiClient(k8s.CoreV1Api);
  }

  /** From a kubeconfig: `configure` loads it (default: `loadFromDefault()`, i.e. KUBECONFIG or in-cluster). */
  static async create(configure?: (kc: KubeConfig) => void): Promise<ClientNodeKubeApi> {
    const k8s = await import('@kubernetes/client-node');
    const kc = new k8s.KubeConfig();
    if (configure) configure(kc);
    else kc.loadFromDefault();
    return new ClientNodeKubeApi(k8s, kc);
  }

  /** For one API server URL and an optional bearer token. */
  static forServer(options: KubeServerOptions): Promise<ClientNodeKubeApi> {
    return ClientNodeKubeApi.create((kc) =>
      kc.loadFromClusterAndUser(
        {
          name: 'spotlift',
          server: options.server,
          caData: options.caData,
          skipTLSVerify: options.skipTLSVerify ?? false,
        },
        { name: 'spotlift', token: options.token },
      ),
    );
  }

  async listNodes(): Promise<KubeNodeList> {
    let list: unknown;
    try {
      list = await this.core.listNode();
    } catch (err) {
      throw apiError('list nodes', err);
    }
    // The generated client turns timestamps into Date objects; round-trip to the wire's JSON so listed and
    // watched nodes look the same to the parser.
    const plain = JSON.parse(JSON.stringify(list)) as { metadata?: { resourceVersion?: string }; items?: unknown[] };
    return { resourceVersion: plain.metadata?.resourceVersion ?? '', items: plain.items ?? [] };
  }

  async cordonNode(name: string): Promise<KubeCordonResult> {
    try {
      const node = await this.core.readNode({ name });
      if (node.spec?.unschedulable === true) return { alreadyCordoned: true };
      // The generated client would send a JSON Patch by default; kubectl cordon sends this strategic merge.
      await this.core.patchNode(
        { name, body: { spec: { unschedulable: true } } },
        this.k8s.setHeaderOptions('Content-Type', this.k8s.PatchStrategy.StrategicMergePatch),
      );
      return { alreadyCordoned: false };
    } catch (err) {
      throw apiError(`cordon node ${name}`, err);
    }
  }

  async annotateNode(name: string, key: string, value: string | null): Promise<void> {
    try {
      await this.core.patchNode(
        { name, body: { metadata: { annotations: { [key]: value } } } },
        this.k8s.setHeaderOptions('Content-Type', this.k8s.PatchStrategy.MergePatch),
      );
    } catch (err) {
      throw apiError(`annotate node ${name}`, err);
    }
  }

  async watchNodes(
    params: KubeWatchParams,
    onEvent: (type: string, object: unknown) => void,
    onDone: (err?: KubeApiError) => void,
  ): Promise<KubeWatchHandle> {
    const watch = new this.k8s.Watch(this.kubeConfig);
    let aborted = false;
    const controller = await watch.watch(
      '/api/v1/nodes',
      {
        resourceVersion: params.resourceVersion,
        timeoutSeconds: params.timeoutSeconds,
        allowWatchBookmarks: params.allowWatchBookmarks,
      },
      (type: string, object: unknown) => onEvent(type, object),
      (err: unknown) => {
        // Our own abort surfaces as an AbortError: that is a clean end, not a failure.
        if (!err || aborted) return onDone();
        const status = (err as { statusCode?: unknown }).statusCode;
        const message = err instanceof Error ? err.message : JSON.stringify(err);
        onDone(
          new KubeApiError(`watch nodes: ${message}`, typeof status === 'number' ? status : undefined, { cause: err }),
        );
      },
    );
    return {
      abort: () => {
        aborted = true;
        controller.abort();
      },
    };
  }
}

/** client-node's ApiException carries the HTTP status as `code`. */
function apiError(what: string, err: unknown): KubeApiError {
  const code = (err as { code?: unknown }).code;
  return new KubeApiError(
    `${what}: ${err instanceof Error ? err.message : String(err)}`,
    typeof code === 'number' ? code : undefined,
    {
      cause: err,
    },
  );
}
