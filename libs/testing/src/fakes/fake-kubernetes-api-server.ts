import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { FakeHttpServer } from './fake-http-server.js';

/** A Node object as the API server serves it (only the fields spotlift reads, plus identity). */
export interface FakeKubeNode {
  kind: 'Node';
  apiVersion: 'v1';
  metadata: {
    name: string;
    uid: string;
    resourceVersion: string;
    creationTimestamp: string;
    labels: Record<string, string>;
    annotations: Record<string, string>;
  };
  spec: {
    /** Set by a cordon (`kubectl cordon` / our cordon adapter). */
    unschedulable?: boolean;
    taints?: { key: string; value?: string; effect: string; timeAdded?: string }[];
  };
  status: {
    conditions: { type: string; status: string; reason?: string; message?: string; lastTransitionTime?: string }[];
  };
}

type EventType = 'ADDED' | 'MODIFIED' | 'DELETED';

interface Watcher {
  res: ServerResponse;
  since: number;
  bookmarks: boolean;
  timer?: NodeJS.Timeout;
}

/**
 * Fake Kubernetes API server for Nodes: `GET /api/v1/nodes` (a NodeList with a resourceVersion) and
 * `?watch=true` streaming newline-delimited JSON watch events (ADDED/MODIFIED/DELETED, BOOKMARK when
 * `allowWatchBookmarks=true`), honouring `resourceVersion` (replay after it) and `timeoutSeconds`. A watch
 * from a resourceVersion older than the compaction point gets an `ERROR` event with a 410 Status, as a
 * real API server does. Tests can drop watch connections, compact history, and expire live watches.
 * `PATCH /api/v1/nodes/{name}` applies a strategic-merge or JSON merge patch (`Content-Type`
 * `application/strategic-merge-patch+json` / `application/merge-patch+json`; for the Node fields a cordon
 * touches, both are RFC 7386 merges), answers the patched Node, and emits MODIFIED only when something
 * changed (a no-op patch keeps the resourceVersion, as on a real server). Other patch types get 415.
 */
export class FakeKubernetesApiServer extends FakeHttpServer {
  private rv = 1;
  private compactedThrough = 0;
  private readonly nodes = new Map<string, FakeKubeNode>();
  private readonly history: { rv: number; type: EventType; object: FakeKubeNode }[] = [];
  private readonly watchers = new Set<Watcher>();

  /** Requires `Authorization: Bearer <token>` when set (401 Status otherwise). */
  constructor(private readonly token?: string) {
    super();
  }

  /** The current resourceVersion of the collection. */
  get resourceVersion(): string {
    return String(this.rv);
  }

  /** Open watch streams. */
  get activeWatches(): number {
    return this.watchers.size;
  }

  addNode(
    name: string,
    init: { labels?: Record<string, string>; taints?: FakeKubeNode['spec']['taints'] } = {},
  ): FakeKubeNode {
    const node: FakeKubeNode = {
      kind: 'Node',
      apiVersion: 'v1',
      metadata: {
        name,
        uid: randomUUID(),
        resourceVersion: '',
        creationTimestamp: new Date().toISOString().replace(/\.\d{3}Z$/, 'Z'),
        labels: init.labels ?? {},
        annotations: {},
      },
      spec: init.taints ? { taints: init.taints } : {},
      status: {
        conditions: [
          { type: 'Ready', status: 'True', reason: 'KubeletReady', message: 'kubelet is posting ready status' },
        ],
      },
    };
    this.commit('ADDED', node);
    return node;
  }

  /** Changes a node and emits MODIFIED. */
  updateNode(name: string, mutate: (node: FakeKubeNode) => void): void {
    const node = this.nodes.get(name);
    if (!node) throw new Error(`no node ${name}`);
    const copy = structuredClone(node);
    mutate(copy);
    this.commit('MODIFIED', copy);
  }

  addTaint(name: string, taint: { key: string; value?: string; effect?: string; timeAdded?: string }): void {
    this.updateNode(name, (n) => {
      n.spec.taints = [...(n.spec.taints ?? []).filter((t) => t.key !== taint.key), { effect: 'NoSchedule', ...taint }];
    });
  }

  removeTaint(name: string, key: string): void {
    this.updateNode(name, (n) => {
      n.spec.taints = (n.spec.taints ?? []).filter((t) => t.key !== key);
      if (n.spec.taints.length === 0) delete n.spec.taints;
    });
  }

  setCondition(name: string, condition: FakeKubeNode['status']['conditions'][number]): void {
    this.updateNode(name, (n) => {
      n.status.conditions = [...n.status.conditions.filter((c) => c.type !== condition.type), condition];
    });
  }

  deleteNode(name: string): void {
    const node = this.nodes.get(name);
    if (!node) return;
    this.commit('DELETED', structuredClone(node));
  }

  /** A copy of a node as stored now (undefined if there is none). */
  node(name: string): FakeKubeNode | undefined {
    const node = this.nodes.get(name);
    return node && structuredClone(node);
  }

  /** Forgets history up to now: a watch from any older resourceVersion gets 410 Gone. */
  compact(): void {
    this.compactedThrough = this.rv;
  }

  /** Sends ERROR 410 to every live watch and closes it (the server's watch cache moved on). */
  expireWatches(): void {
    this.compact();
    for (const w of [...this.watchers]) {
      this.write(w, { type: 'ERROR', object: goneStatus(w.since, this.rv) });
      this.close(w);
    }
  }

  /** Sends a BOOKMARK with the current resourceVersion to watches that allow bookmarks. */
  sendBookmarks(): void {
    for (const w of this.watchers) {
      if (w.bookmarks)
        this.write(w, {
          type: 'BOOKMARK',
          object: { kind: 'Node', apiVersion: 'v1', metadata: { resourceVersion: String(this.rv) } },
        });
    }
  }

  /** Writes a line that is not JSON to every live watch (a corrupted stream). */
  sendGarbage(line = '{"type":"MODIFIED","object":'): void {
    for (const w of this.watchers) w.res.write(`${line}\n`);
  }

  protected override onStop(): void {
    for (const w of [...this.watchers]) this.close(w);
  }

  protected handle(req: IncomingMessage, res: ServerResponse, body: string, url: URL): void {
    if (this.token && req.headers.authorization !== `Bearer ${this.token}`) {
      return this.status(res, 401, 'Unauthorized', 'Unauthorized');
    }
    const single = /^\/api\/v1\/nodes\/([^/]+)$/.exec(url.pathname);
    if (single && req.method === 'PATCH') return this.patch(req, res, decodeURIComponent(single[1]!), body);
    if (req.method !== 'GET') return this.status(res, 405, 'MethodNotAllowed', 'method not allowed');
    if (single) {
      const node = this.nodes.get(decodeURIComponent(single[1]!));
      if (!node) return this.status(res, 404, 'NotFound', `nodes "${single[1]}" not found`);
      return this.json(res, 200, node);
    }
    if (url.pathname !== '/api/v1/nodes')
      return this.status(res, 404, 'NotFound', 'the server could not find the requested resource');
    if (url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1') return this.watch(res, url);
    this.json(res, 200, {
      kind: 'NodeList',
      apiVersion: 'v1',
      metadata: { resourceVersion: String(this.rv) },
      items: [...this.nodes.values()],
    });
  }

  private patch(req: IncomingMessage, res: ServerResponse, name: string, body: string): void {
    const type = (req.headers['content-type'] ?? '').split(';')[0]!.trim();
    if (!MERGE_PATCH_TYPES.has(type)) {
      const detail =
        type === 'application/json-patch+json' || type === 'application/apply-patch+yaml'
          ? `${type} is not implemented by this fake`
          : `the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json`;
      return this.status(res, 415, 'UnsupportedMediaType', detail);
    }
    const node = this.nodes.get(name);
    if (!node) return this.status(res, 404, 'NotFound', `nodes "${name}" not found`);
    let patch: unknown;
    try {
      patch = JSON.parse(body);
    } catch (err) {
      return this.status(res, 400, 'BadRequest', `error decoding patch: ${(err as Error).message}`);
    }
    if (!isObject(patch)) return this.status(res, 400, 'BadRequest', 'patch is not a JSON object');
    const patched = mergePatch(structuredClone(node), patch) as FakeKubeNode;
    // Identity is the server's: a patch cannot rename a node or set its resourceVersion.
    patched.metadata = {
      ...patched.metadata,
      name,
      uid: node.metadata.uid,
      resourceVersion: node.metadata.resourceVersion,
    };
    if (JSON.stringify(patched) !== JSON.stringify(node)) this.commit('MODIFIED', patched);
    this.json(res, 200, this.nodes.get(name));
  }

  private watch(res: ServerResponse, url: URL): void {
    const rvParam = url.searchParams.get('resourceVersion');
    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Transfer-Encoding': 'chunked',
      'Cache-Control': 'no-cache, private',
    });
    res.flushHeaders();
    const watcher: Watcher = { res, since: this.rv, bookmarks: url.searchParams.get('allowWatchBookmarks') === 'true' };
    if (rvParam === null || rvParam === '' || rvParam === '0') {
      // "Start at most recent": synthetic ADDED for every existing node, then live changes.
      for (const node of this.nodes.values()) res.write(`${JSON.stringify({ type: 'ADDED', object: node })}\n`);
    } else {
      const since = Number(rvParam);
      if (!Number.isInteger(since) || since < this.compactedThrough) {
        res.end(`${JSON.stringify({ type: 'ERROR', object: goneStatus(since, this.rv) })}\n`);
        return;
      }
      watcher.since = since;
      for (const h of this.history)
        if (h.rv > since) res.write(`${JSON.stringify({ type: h.type, object: h.object })}\n`);
    }
    this.watchers.add(watcher);
    const timeoutSeconds = Number(url.searchParams.get('timeoutSeconds'));
    if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0)
      watcher.timer = setTimeout(() => this.close(watcher), timeoutSeconds * 1000);
    res.on('close', () => {
      clearTimeout(watcher.timer);
      this.watchers.delete(watcher);
    });
  }

  private commit(type: EventType, node: FakeKubeNode): void {
    this.rv++;
    node.metadata.resourceVersion = String(this.rv);
    if (type === 'DELETED') this.nodes.delete(node.metadata.name);
    else this.nodes.set(node.metadata.name, node);
    const object = structuredClone(node);
    this.history.push({ rv: this.rv, type, object });
    for (const w of this.watchers) this.write(w, { type, object });
  }

  private write(w: Watcher, event: unknown): void {
    if (!w.res.writableEnded) w.res.write(`${JSON.stringify(event)}\n`);
  }

  private close(w: Watcher): void {
    clearTimeout(w.timer);
    this.watchers.delete(w);
    if (!w.res.writableEnded) w.res.end();
  }

  private json(res: ServerResponse, status: number, data: unknown): void {
    res.writeHead(status, { 'Content-Type': 'application/json' });
    res.end(JSON.stringify(data));
  }

  private status(res: ServerResponse, code: number, reason: string, message: string): void {
    this.json(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message, reason, code });
  }
}

function goneStatus(requested: number, current: number) {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message: `too old resource version: ${requested} (${current})`,
    reason: 'Expired',
    code: 410,
  };
}

const MERGE_PATCH_TYPES = new Set(['application/strategic-merge-patch+json', 'application/merge-patch+json']);

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** RFC 7386 JSON merge patch: objects merge, `null` deletes, anything else replaces. */
function mergePatch(target: unknown, patch: unknown): unknown {
  if (!isObject(patch)) return patch;
  const out: Record<string, unknown> = isObject(target) ? { ...target } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete out[key];
    else out[key] = mergePatch(out[key], value);
  }
  return out;
}
