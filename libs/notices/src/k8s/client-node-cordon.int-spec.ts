/**
 * The cordon adapter with the real @kubernetes/client-node over HTTP against FakeKubernetesApiServer:
 * what goes on the wire must be what `kubectl cordon` sends (GET the Node, then a strategic-merge PATCH
 * of `spec.unschedulable` only when it is not set yet).
 */
import { FakeKubernetesApiServer } from '../../../testing/src/fakes/index.js';
import { ClientNodeKubeApi } from './client-node-kube-api.adapter.js';
import { KubeApiError } from './kube-node-api.port.js';

describe('ClientNodeKubeApi.cordonNode against FakeKubernetesApiServer', () => {
  let kube: FakeKubernetesApiServer;
  let api: ClientNodeKubeApi;

  beforeEach(async () => {
    kube = await new FakeKubernetesApiServer('test-token').start();
    kube.addNode('ip-10-0-0-1', { labels: { 'kubernetes.io/hostname': 'ip-10-0-0-1' } });
    api = await ClientNodeKubeApi.forServer({ server: kube.url, token: 'test-token', skipTLSVerify: true });
  });
  afterEach(() => kube.stop());

  const patches = () => kube.requests.filter((r) => r.method === 'PATCH');

  it('sets spec.unschedulable with a strategic-merge patch, authenticated, and nothing else', async () => {
    const rvBefore = Number(kube.resourceVersion);
    await expect(api.cordonNode('ip-10-0-0-1')).resolves.toEqual({ alreadyCordoned: false });

    const [patch] = patches();
    expect(patches()).toHaveLength(1);
    expect(patch!.path).toBe('/api/v1/nodes/ip-10-0-0-1');
    expect(patch!.headers['content-type']).toBe('application/strategic-merge-patch+json');
    expect(patch!.headers.authorization).toBe('Bearer test-token');
    expect(JSON.parse(patch!.body)).toEqual({ spec: { unschedulable: true } });
    expect(patch!.status).toBe(200);

    const node = kube.node('ip-10-0-0-1')!;
    expect(node.spec.unschedulable).toBe(true);
    expect(node.metadata.labels).toEqual({ 'kubernetes.io/hostname': 'ip-10-0-0-1' });
    expect(Number(node.metadata.resourceVersion)).toBe(rvBefore + 1);
  });

  it('is idempotent: an already cordoned Node is read, not patched again', async () => {
    await api.cordonNode('ip-10-0-0-1');
    const rv = kube.resourceVersion;
    await expect(api.cordonNode('ip-10-0-0-1')).resolves.toEqual({ alreadyCordoned: true });
    expect(patches()).toHaveLength(1);
    expect(kube.resourceVersion).toBe(rv);
  });

  it('rejects with the HTTP status: 404 for a Node that does not exist', async () => {
    const err = await api.cordonNode('no-such-node').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).status).toBe(404);
    expect((err as KubeApiError).message).toMatch(/^cordon node no-such-node: /);
    expect(patches()).toHaveLength(0);
  });

  it('rejects with 403 when the service account may not patch Nodes', async () => {
    kube.injectFault({
      method: 'PATCH',
      path: '/api/v1/nodes/',
      status: 403,
      headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({
        kind: 'Status',
        apiVersion: 'v1',
        metadata: {},
        status: 'Failure',
        message:
          'nodes "ip-10-0-0-1" is forbidden: User "system:serviceaccount:spotlift:spotlift" cannot patch resource "nodes"',
        reason: 'Forbidden',
        code: 403,
      }),
    });
    const err = await api.cordonNode('ip-10-0-0-1').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).status).toBe(403);
    expect(kube.node('ip-10-0-0-1')!.spec.unschedulable).toBeUndefined();
  });

  it('the fake answers other patch types with 415, like an API server given an unknown format', async () => {
    const res = await fetch(`${kube.url}/api/v1/nodes/ip-10-0-0-1`, {
      method: 'PATCH',
      headers: { authorization: 'Bearer test-token', 'content-type': 'application/json' },
      body: '{"spec":{"unschedulable":true}}',
    });
    expect(res.status).toBe(415);
    expect(((await res.json()) as { reason: string }).reason).toBe('UnsupportedMediaType');
    expect(kube.node('ip-10-0-0-1')!.spec.unschedulable).toBeUndefined();
  });
});
