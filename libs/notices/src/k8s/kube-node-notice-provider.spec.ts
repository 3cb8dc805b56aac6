import type { NoticeSink } from '../notice-provider.port.js';
import type { Notice } from '../notice.js';
import type { NoticeProblem } from '../notice-problem.js';
import {
  KubeApiError,
  KubeNodeApi,
  type KubeCordonResult,
  type KubeNodeList,
  type KubeWatchHandle,
  type KubeWatchParams,
} from './kube-node-api.port.js';
import { KubeNodeNoticeProvider, type KubeNodeDeletion } from './kube-node-notice-provider.js';

type Script = (
  params: KubeWatchParams,
  onEvent: (t: string, o: unknown) => void,
  onDone: (e?: KubeApiError) => void,
) => void;

/** A scripted KubeNodeApi: no HTTP and no @kubernetes/client-node. */
class ScriptedKubeApi extends KubeNodeApi {
  lists = 0;
  readonly watches: KubeWatchParams[] = [];
  constructor(
    /** The items of every list, or of the n-th list (1-based). */
    private readonly items: unknown[] | ((list: number) => unknown[]),
    private readonly script: Script,
  ) {
    super();
  }
  listNodes(): Promise<KubeNodeList> {
    this.lists++;
    const items = typeof this.items === 'function' ? this.items(this.lists) : this.items;
    return Promise.resolve({ resourceVersion: String(100 * this.lists), items });
  }
  watchNodes(
    params: KubeWatchParams,
    onEvent: (t: string, o: unknown) => void,
    onDone: (e?: KubeApiError) => void,
  ): Promise<KubeWatchHandle> {
    this.watches.push(params);
    setTimeout(() => this.script(params, onEvent, onDone), 5);
    return Promise.resolve({ abort: () => undefined });
  }
  cordonNode(): Promise<KubeCordonResult> {
    return Promise.reject(new Error('the notice provider never cordons'));
  }
  annotateNode(): Promise<void> {
    return Promise.reject(new Error('the notice provider never annotates'));
  }
}

const sink = () => {
  const notices: Notice[] = [];
  const problems: NoticeProblem[] = [];
  const s: NoticeSink = { notice: (n) => void notices.push(n), problem: (p) => void problems.push(p) };
  return { s, notices, problems };
};
const node = (name: string, taints: unknown[] = []) => ({ metadata: { name, resourceVersion: '1' }, spec: { taints } });
const runFor = async (p: KubeNodeNoticeProvider, s: NoticeSink, ms: number) => {
  const c = new AbortController();
  const done = p.watch(s, c.signal);
  await new Promise((r) => setTimeout(r, ms));
  c.abort();
  await done;
};

describe('KubeNodeNoticeProvider (scripted API)', () => {
  it('raises from listed nodes and follows resourceVersions of events, including bookmarks', async () => {
    let call = 0;
    const api = new ScriptedKubeApi(
      [node('a', [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule' }])],
      (_p, onEvent, onDone) => {
        if (call++ === 0) {
          onEvent('BOOKMARK', { metadata: { resourceVersion: '150' } });
          onDone();
        }
      },
    );
    const { s, notices } = sink();
    await runFor(new KubeNodeNoticeProvider({ api, nodeIdOf: (n) => n }), s, 100);
    expect(notices.map((n) => n.nodeId)).toEqual(['a']);
    expect(api.watches.map((w) => w.resourceVersion)).toEqual(['100', '150']);
  });

  it('does not spin when the server keeps closing watches at once', async () => {
    const api = new ScriptedKubeApi([], (_p, _e, onDone) => onDone());
    const p = new KubeNodeNoticeProvider({ api, nodeIdOf: (n) => n, backoff: { baseMs: 100, maxMs: 1_000 } });
    await runFor(p, sink().s, 500);
    // Immediate, then 100, 200, ... : a handful of attempts, not hundreds.
    expect(api.watches.length).toBeGreaterThanOrEqual(3);
    expect(api.watches.length).toBeLessThanOrEqual(6);
  });

  it('relists on an HTTP 410 and on an ERROR 410 event, and reports other errors', async () => {
    let call = 0;
    const api = new ScriptedKubeApi([], (_p, onEvent, onDone) => {
      call++;
      if (call === 1) onDone(new KubeApiError('Gone', 410));
      else if (call === 2) onEvent('ERROR', { kind: 'Status', code: 410, reason: 'Expired' });
      else if (call === 3) onEvent('ERROR', { kind: 'Status', code: 500, message: 'etcd is sad' });
    });
    const p = new KubeNodeNoticeProvider({ api, nodeIdOf: (n) => n, backoff: { baseMs: 10 } });
    const { s, problems } = sink();
    await runFor(p, s, 150);
    expect(api.lists).toBe(3);
    expect(p.stats.relistsAfterGone).toBe(2);
    expect(problems.map((x) => x.message)).toEqual([expect.stringMatching(/ERROR event 500 etcd is sad/)]);
  });

  it('reports an object that is not a Node, and keeps going', async () => {
    let call = 0;
    const api = new ScriptedKubeApi([], (_p, onEvent) => {
      if (call++ > 0) return;
      onEvent('MODIFIED', { metadata: { resourceVersion: '101' } });
      onEvent('MODIFIED', node('b', [{ key: 'aws-node-termination-handler/spot-itn', effect: 'NoSchedule' }]));
    });
    const { s, notices, problems } = sink();
    await runFor(new KubeNodeNoticeProvider({ api, nodeIdOf: (n) => n }), s, 100);
    expect(problems[0]?.message).toMatch(/does not look like a Node: metadata.name/);
    expect(notices.map((n) => n.nodeId)).toEqual(['b']);
  });

  describe('a Node deleted from the cluster', () => {
    const managed = (name: string) => (name.startsWith('spot-') ? `id-${name}` : undefined);
    const deletions = () => {
      const seen: KubeNodeDeletion[] = [];
      return { seen, onNodeDeleted: (d: KubeNodeDeletion) => void seen.push(d) };
    };

    it('reports a DELETED event of a Node we manage, and ignores other Nodes', async () => {
      let call = 0;
      const api = new ScriptedKubeApi([node('spot-1'), node('system-1')], (_p, onEvent, onDone) => {
        if (call++ > 0) return;
        // As on the wire: {"type":"DELETED","object":<the Node's last state>}.
        const event = JSON.parse(
          JSON.stringify({ type: 'DELETED', object: { kind: 'Node', apiVersion: 'v1', ...node('system-1') } }),
        ) as { type: string; object: unknown };
        onEvent(event.type, event.object);
        onEvent('DELETED', { kind: 'Node', apiVersion: 'v1', metadata: { name: 'spot-1', resourceVersion: '120' } });
        onDone();
      });
      const d = deletions();
      const p = new KubeNodeNoticeProvider({ api, nodeIdOf: managed, onNodeDeleted: d.onNodeDeleted });
      await runFor(p, sink().s, 100);
      expect(d.seen).toEqual([{ nodeId: 'id-spot-1', name: 'spot-1', at: expect.any(Date), how: 'watch' }]);
      // The deleted Node's resourceVersion is followed like any event's.
      expect(api.watches.map((w) => w.resourceVersion)).toEqual(['100', '120']);
    });

    it('reports a seen Node missing from a relist, never a Node it never saw', async () => {
      // The first list reports nothing (no Node was seen before it); the relist after a 410 lacks spot-1.
      const api = new ScriptedKubeApi(
        (list) => (list === 1 ? [node('spot-1')] : [node('system-1')]),
        (_p, _e, onDone) => {
          if (api.lists === 1) onDone(new KubeApiError('Gone', 410));
        },
      );
      const d = deletions();
      const p = new KubeNodeNoticeProvider({ api, nodeIdOf: managed, onNodeDeleted: d.onNodeDeleted });
      await runFor(p, sink().s, 100);
      expect(api.lists).toBe(2);
      expect(d.seen.map(({ nodeId, how }) => ({ nodeId, how }))).toEqual([{ nodeId: 'id-spot-1', how: 'relist' }]);
    });

    it('reports a failure to record the deletion as a problem and keeps watching', async () => {
      let call = 0;
      const api = new ScriptedKubeApi([], (_p, onEvent) => {
        if (call++ > 0) return;
        onEvent('DELETED', node('spot-1'));
        onEvent('ADDED', node('spot-2', [{ key: 'karpenter.sh/disrupted', effect: 'NoSchedule' }]));
      });
      const { s, notices, problems } = sink();
      const onNodeDeleted = () => Promise.reject(new Error("node 'id-spot-1' not found"));
      await runFor(new KubeNodeNoticeProvider({ api, nodeIdOf: managed, onNodeDeleted }), s, 100);
      expect(problems.map((x) => x.message)).toEqual([
        expect.stringMatching(/Node spot-1 deleted, but recording it failed: node 'id-spot-1' not found/),
      ]);
      expect(notices.map((n) => n.nodeId)).toEqual(['id-spot-2']);
    });
  });
});
