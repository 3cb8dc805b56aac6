/**
 * The annotation adapter (capacity rebalancing's `spotlift.io/releasable`) with the real @kubernetes/client-node
 * over HTTP against FakeKubernetesApiServer: a JSON merge patch of that one annotation, set and removed.
 */
import { FakeKubernetesApiServer } from '../../../testing/src/fakes/index.js';
import { ClientNodeKubeApi } from './client-node-kube-api.adapter.js';
import { KubeApiError } from './kube-node-api.port.js';

describe('ClientNodeKubeApi.annotateNode against FakeKubernetesApiServer', () => {
  let kube: FakeKubernetesApiServer;
  let api: ClientNodeKubeApi;

  beforeEach(async () => {
    kube = await new FakeKubernetesApiServer('test-token').start();
    kube.addNode('node-c', { labels: { 'kubernetes.io/hostname': 'node-c' } });
    kube.updateNode('node-c', (n) => void (n.metadata.annotations['other.io/keep'] = 'yes'));
    api = await ClientNodeKubeApi.forServer({ server: kube.url, token: 'test-token', skipTLSVerify: true });
  });
  afterEach(() => kube.stop());

  const patches = () => kube.requests.filter((r) => r.method === 'PATCH');

  it('sets then removes one annotation with merge patches, leaving the others', async () => {
    await api.annotateNode('node-c', 'spotlift.io/releasable', 'true');
    expect(kube.node('node-c')!.metadata.annotations).toEqual({
      'other.io/keep': 'yes',
      'spotlift.io/releasable': 'true',
    });
    await api.annotateNode('node-c', 'spotlift.io/releasable', null);
    expect(kube.node('node-c')!.metadata.annotations).toEqual({ 'other.io/keep': 'yes' });

    expect(
      patches().map((p): unknown[] => [p.headers['content-type'], JSON.parse(p.body) as unknown, p.status]),
    ).toEqual([
      ['application/merge-patch+json', { metadata: { annotations: { 'spotlift.io/releasable': 'true' } } }, 200],
      ['application/merge-patch+json', { metadata: { annotations: { 'spotlift.io/releasable': null } } }, 200],
    ]);
    expect(patches()[0]!.headers.authorization).toBe('Bearer test-token');
  });

  it('a node the API does not know is a 404 KubeApiError', async () => {
    const err = await api.annotateNode('nope', 'spotlift.io/releasable', 'true').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(KubeApiError);
    expect((err as KubeApiError).status).toBe(404);
  });
});
