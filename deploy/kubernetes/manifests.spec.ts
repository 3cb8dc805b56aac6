/**
 * The kustomize base, checked against the Kubernetes API's own schemas without a cluster: every resource the
 * kustomization lists is validated by the `kubernetes-models` validators (generated from the Kubernetes OpenAPI
 * spec; prometheus-operator's CRD schema for the ServiceMonitor), and walked against @kubernetes/client-node's
 * model field tables, which catch what the schemas let through: a misspelt field (`imagePullPolicy` as
 * `imagePulPolicy`) is silently dropped by the API server. Then what matters for this project: no root, the
 * RBAC verbs on nodes, the roles of the two Deployments, the selectors reaching their pods.
 */
import * as k8s from '@kubernetes/client-node';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseAllDocuments } from 'yaml';
import { ClusterRole, ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { DaemonSet, Deployment } from 'kubernetes-models/apps/v1';
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import { ServiceMonitor } from '@kubernetes-models/prometheus-operator/monitoring.coreos.com/v1';

const base = join(dirname(fileURLToPath(import.meta.url)), 'base');
type Obj = Record<string, unknown> & { kind: string; metadata: { name: string; namespace?: string } };

/** kind -> [schema validator, client-node model name (absent for CRDs)] */
const KINDS: Record<string, [{ new (data: never): { validate(): void } }, string?]> = {
  Namespace: [Namespace, 'V1Namespace'],
  ServiceAccount: [ServiceAccount, 'V1ServiceAccount'],
  ClusterRole: [ClusterRole, 'V1ClusterRole'],
  ClusterRoleBinding: [ClusterRoleBinding, 'V1ClusterRoleBinding'],
  Secret: [Secret, 'V1Secret'],
  ConfigMap: [ConfigMap, 'V1ConfigMap'],
  Deployment: [Deployment, 'V1Deployment'],
  DaemonSet: [DaemonSet, 'V1DaemonSet'],
  Service: [Service, 'V1Service'],
  ServiceMonitor: [ServiceMonitor],
};

/** What `kustomize build` does with this base: the listed files, the namespace set on namespaced objects. */
function build(): Obj[] {
  const kustomization = parseAllDocuments(readFileSync(join(base, 'kustomization.yaml'), 'utf8'))[0]!.toJS() as {
    namespace: string;
    resources: string[];
  };
  return kustomization.resources.flatMap((file) =>
    parseAllDocuments(readFileSync(join(base, file), 'utf8')).map((doc) => {
      if (doc.errors.length) throw new Error(`${file}: ${doc.errors.map((e) => e.message).join('; ')}`);
      const obj = doc.toJS() as Obj;
      const clusterScoped = ['Namespace', 'ClusterRole', 'ClusterRoleBinding'].includes(obj.kind);
      return clusterScoped ? obj : { ...obj, metadata: { ...obj.metadata, namespace: kustomization.namespace } };
    }),
  );
}

type Attr = { baseName: string; type: string };
const models = k8s as unknown as Record<string, { attributeTypeMap?: Attr[] } | undefined>;

/** Paths of fields the client-node model of `type` does not know, under `path`. */
function unknownFields(value: unknown, type: string, path: string): string[] {
  if (value === null || value === undefined) return [];
  const array = /^Array<(.+)>$/.exec(type);
  if (array) return Array.isArray(value) ? value.flatMap((v, i) => unknownFields(v, array[1]!, `${path}[${i}]`)) : [];
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map) return Object.entries(value).flatMap(([k, v]) => unknownFields(v, map[1]!, `${path}.${k}`));
  const attrs = models[type]?.attributeTypeMap;
  if (!attrs || typeof value !== 'object') return [];
  return Object.entries(value).flatMap(([k, v]) => {
    const a = attrs.find((x) => x.baseName === k);
    return a ? unknownFields(v, a.type, `${path}.${k}`) : [`${path}.${k}`];
  });
}

const objects = build();
const byName = (kind: string, name: string) => objects.find((o) => o.kind === kind && o.metadata.name === name)!;

describe('deploy/kubernetes/base', () => {
  it('holds what a deployment needs', () => {
    expect(objects.map((o) => `${o.kind}/${o.metadata.name}`).sort()).toEqual(
      [
        'ClusterRole/spotlift-nodes',
        'ClusterRoleBinding/spotlift-nodes',
        'ConfigMap/spotlift-config',
        'DaemonSet/spotlift-node-agent',
        'Deployment/spotlift-api',
        'Deployment/spotlift-worker',
        'Namespace/spotlift',
        'Secret/spotlift-agent-tokens',
        'Secret/spotlift-env',
        'Secret/spotlift-metrics-token',
        'Secret/spotlift-page-ca',
        'Secret/spotlift-ssh',
        'Service/spotlift',
        'Service/spotlift-workers',
        'ServiceAccount/spotlift',
        'ServiceAccount/spotlift-node-agent',
        'ServiceMonitor/spotlift',
      ].sort(),
    );
  });

  it.each(objects.map((o) => [`${o.kind}/${o.metadata.name}`, o] as const))(
    '%s passes the Kubernetes schema and has no field the API would drop',
    (_name, obj) => {
      const [Model, clientModel] = KINDS[obj.kind] ?? [];
      if (!Model) throw new Error(`no schema for kind ${obj.kind}`);
      expect(() => new Model(obj as never).validate()).not.toThrow();
      if (clientModel) expect(unknownFields(obj, clientModel, obj.kind)).toEqual([]);
    },
  );

  it('the checks can fail: a wrong type, a missing required field, a misspelt field', () => {
    const api = byName('Deployment', 'spotlift-api') as unknown as { spec: { replicas: unknown; template: unknown } };
    expect(() => new Deployment({ ...api, spec: { ...api.spec, replicas: 'two' } } as never).validate()).toThrow(
      /replicas/,
    );
    const noSelector = { ...api, spec: { ...api.spec, selector: undefined } };
    expect(() => new Deployment(noSelector as never).validate()).toThrow(/selector/);
    const pod = structuredClone(api) as unknown as { spec: { template: { spec: { containers: object[] } } } };
    pod.spec.template.spec.containers[0] = { ...pod.spec.template.spec.containers[0], imagePulPolicy: 'Always' };
    expect(unknownFields(pod, 'V1Deployment', 'Deployment')).toEqual([
      'Deployment.spec.template.spec.containers[0].imagePulPolicy',
    ]);
  });

  it('runs nothing as root, with no capability and no privilege escalation', () => {
    for (const o of objects.filter((x) => x.kind === 'Deployment' || x.kind === 'DaemonSet')) {
      const pod = (o as unknown as { spec: { template: { spec: k8s.V1PodSpec } } }).spec.template.spec;
      expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
      expect(pod.securityContext?.runAsUser).toBeGreaterThan(0);
      expect(pod.hostNetwork ?? false).toBe(false);
      for (const c of pod.containers)
        expect(c.securityContext).toEqual({
          allowPrivilegeEscalation: false,
          readOnlyRootFilesystem: true,
          capabilities: { drop: ['ALL'] },
        });
    }
  });

  it('gives the workers get/list/watch/patch on nodes and nothing else; the agent no API access', () => {
    expect((byName('ClusterRole', 'spotlift-nodes') as unknown as k8s.V1ClusterRole).rules).toEqual([
      { apiGroups: [''], resources: ['nodes'], verbs: ['get', 'list', 'watch', 'patch'] },
    ]);
    const agent = byName('DaemonSet', 'spotlift-node-agent') as unknown as k8s.V1DaemonSet;
    expect(agent.spec?.template.spec?.automountServiceAccountToken).toBe(false);
  });

  it('runs the api and worker roles apart, and every Service and the ServiceMonitor reach pods', () => {
    const role = (name: string) =>
      (byName('Deployment', name) as unknown as k8s.V1Deployment).spec!.template.spec!.containers[0]!.env!.find(
        (e) => e.name === 'SPOTLIFT_ROLE',
      )?.value;
    expect([role('spotlift-api'), role('spotlift-worker')]).toEqual(['api', 'worker']);
    const podLabels = objects
      .filter((o) => o.kind === 'Deployment')
      .map((o) => (o as unknown as k8s.V1Deployment).spec!.template.metadata!.labels!);
    const reaches = (selector: Record<string, string>) =>
      podLabels.some((l) => Object.entries(selector).every(([k, v]) => l[k] === v));
    for (const s of objects.filter((o) => o.kind === 'Service'))
      expect(reaches((s as unknown as k8s.V1Service).spec!.selector!)).toBe(true);
    const monitor = byName('ServiceMonitor', 'spotlift') as unknown as {
      spec: { selector: { matchLabels: Record<string, string> } };
    };
    const services = objects.filter((o) => o.kind === 'Service') as unknown as k8s.V1Service[];
    expect(
      services.filter((s) =>
        Object.entries(monitor.spec.selector.matchLabels).every(([k, v]) => s.metadata!.labels?.[k] === v),
      ),
    ).toHaveLength(2);
  });
});
