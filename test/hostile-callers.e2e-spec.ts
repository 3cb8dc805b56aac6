/**
 * Callers are trusted with their role only, against the real orchestrator (in-process, real Redis, the lab's
 * sshd nodes registered): an agent token speaks for its own node and nothing else, a viewer cannot move
 * anything, a revoked token stops working, /docs needs a token, and the audit log shows every call that
 * changed or tried to change something with its outcome, and never a secret. No migration runs: every
 * refusal happens before a node is touched, and the allowed agent path is one notice.
 * Also: the API over HTTPS with a private CA, reached by the CLI with --ca.
 */
import type { AuditEntry, EvacuationRecord, MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { issueTestCertificates, type LabConfig } from '@spotlift/testing';
import { run } from '../apps/cli/src/main.js';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import { startOrchestrator, type Orchestrator } from './support/orchestrator-harness.js';
import { until } from './support/poll.js';

const REDIS_PORT = 6412;
/** No config file and no token from the environment: every call names its URL and token. */
const CLI_ENV = { SPOTLIFT_CLI_CONFIG: '/nonexistent/spotlift-cli.json' };

let env: E2eEnv;
let lab: LabConfig;
let orch: Orchestrator;
/** Every secret this suite saw: none may appear in a listing or the audit log. */
const secrets: string[] = [];

interface Created {
  id: string;
  token: string;
  name: string;
  role: string;
  nodeId?: string;
}

async function call<T = unknown>(
  token: string | undefined,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; body: T }> {
  const res = await fetch(orch.baseUrl + path, {
    method,
    headers: {
      ...(token === undefined ? {} : { authorization: `Bearer ${token}` }),
      'content-type': 'application/json',
    },
    ...(body === undefined ? {} : { body: JSON.stringify(body) }),
  });
  const text = await res.text();
  let parsed: unknown = text;
  try {
    parsed = text ? JSON.parse(text) : undefined;
  } catch {
    /* HTML (the docs UI) */
  }
  return { status: res.status, body: parsed as T };
}

/** The CLI, in this process, against the orchestrator; returns what it printed (JSON mode), throws what it said. */
async function cli(args: string[]): Promise<unknown> {
  const out: string[] = [];
  const err: string[] = [];
  const io = { out: (s: string) => void out.push(s), err: (s: string) => void err.push(s), env: CLI_ENV };
  const code = await run(['--json', ...args], io);
  if (code !== 0) throw new Error(`exit ${code}: ${err.join('\n')}`);
  return JSON.parse(out.join('\n'));
}

async function mint(name: string, role: string, nodeId?: string): Promise<Created> {
  const res = await call<Created>(orch.token, 'POST', '/tokens', { name, role, ...(nodeId ? { nodeId } : {}) });
  expect(res.status).toBe(201);
  expect(res.body.token).toMatch(/^spl_[0-9a-f]{12}_[A-Za-z0-9_-]{43}$/);
  secrets.push(res.body.token, res.body.token.slice(17));
  return res.body;
}

async function audit(limit = 1000): Promise<AuditEntry[]> {
  const res = await call<AuditEntry[]>(orch.token, 'GET', `/audit?limit=${limit}`);
  expect(res.status).toBe(200);
  return res.body;
}

let viewer: Created;
let operator: Created;
let agentA: Created;

beforeAll(async () => {
  env = await setupE2e({ redisPort: REDIS_PORT });
  ({ lab, orch } = env);
  secrets.push(orch.token);
  viewer = await mint('grafana', 'viewer');
  operator = await mint('oncall', 'operator');
  agentA = await mint('agent-node-a', 'agent', 'node-a');
}, 240_000);

afterAll(async () => {
  await env?.teardown();
}, 60_000);

describe('an agent token', () => {
  it('pushing a notice for another node gets 403, and nothing is raised', async () => {
    const res = await call<{ message: string }>(agentA.token, 'POST', '/notices', {
      nodeId: 'node-b',
      kind: 'termination',
      secondsUntil: 120,
      source: 'aws',
    });
    expect(res.status).toBe(403);
    expect(res.body.message).toBe("agent token 'agent-node-a' may act for node 'node-a' only, not for 'node-b'");
    const evacuations = await call<EvacuationRecord[]>(orch.token, 'GET', '/evacuations');
    expect(evacuations.body).toEqual([]);
    const nodeB = await call<NodeRecord>(orch.token, 'GET', '/nodes/node-b');
    expect(nodeB.body.state).toBe('ready');
    // and the refused notice did not claim the (node, kind) dedup slot: an operator's same notice is new
    const op = await call<{ duplicate: boolean }>(operator.token, 'POST', '/notices', {
      nodeId: 'node-b',
      kind: 'rebalance',
      secondsUntil: 120,
      source: 'aws',
    });
    expect(op.status).toBe(202);
    expect(op.body.duplicate).toBe(false);
  });

  it('pushing a notice for its own node gets 202 and raises the evacuation', async () => {
    const res = await call<{ duplicate: boolean; evacuation?: EvacuationRecord }>(agentA.token, 'POST', '/notices', {
      nodeId: 'node-a',
      kind: 'termination',
      secondsUntil: 120,
      source: 'aws',
    });
    expect(res.status).toBe(202);
    expect(res.body.duplicate).toBe(false);
    expect(res.body.evacuation?.nodeId).toBe('node-a');
  });

  it('can do nothing else: no reads, no migrations, no tokens', async () => {
    for (const [method, path, body] of [
      ['GET', '/nodes'],
      ['GET', '/metrics'],
      ['POST', '/migrations', { workload: 'wl-x' }],
      ['POST', '/nodes/node-a/probe'],
      ['POST', '/tokens', { name: 'mine', role: 'admin' }],
    ] as const) {
      const res = await call<{ message: string }>(agentA.token, method, path, body);
      expect([method, path, res.status]).toEqual([method, path, 403]);
      expect(res.body.message).toMatch(/agent token/);
    }
  });
});

describe('a viewer token', () => {
  it('reads, but migrating gets 403 naming the operator role, and no migration is recorded', async () => {
    expect((await call(viewer.token, 'GET', '/nodes')).status).toBe(200);
    expect((await call(viewer.token, 'GET', '/metrics')).status).toBe(200);
    const workloads = await call<WorkloadRecord[]>(viewer.token, 'GET', '/workloads');
    expect(workloads.status).toBe(200);
    const res = await call<{ message: string }>(viewer.token, 'POST', '/migrations', {
      workload: 'wl-anything',
      destination: 'node-b',
    });
    expect(res.status).toBe(403);
    expect(res.body.message).toBe("this call needs the 'operator' role; token 'grafana' has 'viewer'");
    expect((await call<MigrationRecord[]>(orch.token, 'GET', '/migrations')).body).toEqual([]);
    const probe = await call<{ message: string }>(viewer.token, 'POST', '/nodes/node-a/probe');
    expect(probe.status).toBe(403);
    expect(probe.body.message).toMatch(/needs the 'admin' role/);
  });

  it('an operator cannot manage nodes, tokens or read the audit log', async () => {
    for (const [method, path] of [
      ['POST', '/nodes/node-a/probe'],
      ['GET', '/tokens'],
      ['GET', '/audit'],
    ] as const) {
      const res = await call<{ message: string }>(operator.token, method, path);
      expect([path, res.status, res.body.message]).toEqual([
        path,
        403,
        "this call needs the 'admin' role; token 'oncall' has 'operator'",
      ]);
    }
  });
});

describe('tokens', () => {
  it('no token, a garbage token or a forged secret gets 401', async () => {
    expect((await call(undefined, 'GET', '/nodes')).status).toBe(401);
    expect((await call('nope', 'GET', '/nodes')).status).toBe(401);
    const forged = `spl_${viewer.id}_${'x'.repeat(43)}`;
    secrets.push('x'.repeat(43));
    const res = await call<{ message: string }>(forged, 'POST', '/migrations', { workload: 'wl-1' });
    expect(res.status).toBe(401);
    expect(res.body.message).toBe('a valid bearer token is required (unknown token)');
  });

  it('a revoked token gets 401 at once (CLI: tokens create, list, revoke)', async () => {
    const url = orch.baseUrl;
    const created = (await cli([
      '--url',
      url,
      '--token',
      orch.token,
      'tokens',
      'create',
      '--name',
      'ci',
      '--role',
      'operator',
    ])) as Created;
    secrets.push(created.token);
    expect((await call(created.token, 'GET', '/migrations')).status).toBe(200);
    const listed = (await cli(['--url', url, '--token', orch.token, 'tokens', 'list'])) as Created[];
    expect(listed.map((t) => t.name)).toEqual(['grafana', 'oncall', 'agent-node-a', 'ci']);
    const revoked = (await cli(['--url', url, '--token', orch.token, 'tokens', 'revoke', created.id])) as {
      revokedAt?: string;
    };
    expect(revoked.revokedAt).toBeDefined();
    const res = await call<{ message: string }>(created.token, 'GET', '/migrations');
    expect(res.status).toBe(401);
    expect(res.body.message).toMatch(/revoked/);
    await expect(cli(['--url', url, '--token', created.token, 'migrations', 'list'])).rejects.toThrow(/HTTP 401/);
    expect((await call(orch.token, 'DELETE', '/tokens/000000000000')).status).toBe(404);
  });

  it('the list never shows a secret nor its digest', async () => {
    const res = await call<Array<Record<string, unknown>>>(orch.token, 'GET', '/tokens');
    expect(res.status).toBe(200);
    const text = JSON.stringify(res.body);
    for (const s of secrets) expect(text).not.toContain(s);
    expect(text).not.toMatch(/secret|sha256|"token"/i);
    expect(res.body.find((t) => t.name === 'agent-node-a')).toMatchObject({ role: 'agent', nodeId: 'node-a' });
  });

  it('bad token requests get 400 and create nothing', async () => {
    const before = (await call<unknown[]>(orch.token, 'GET', '/tokens')).body.length;
    for (const body of [
      { name: 'a', role: 'agent' },
      { name: 'a', role: 'root' },
      { name: 'a', role: 'viewer', nodeId: 'node-a' },
      { name: 'a', role: 'viewer', scopes: ['*'] },
      { name: 'a', role: 'viewer', expiresAt: '2001-01-01T00:00:00Z' },
    ]) {
      const res = await call(orch.token, 'POST', '/tokens', body);
      expect([body, res.status]).toEqual([body, 400]);
    }
    expect((await call<unknown[]>(orch.token, 'GET', '/tokens')).body).toHaveLength(before);
  });
});

describe('/docs', () => {
  it('needs a viewer token; the YAML copy outside /docs is not served', async () => {
    expect((await call(undefined, 'GET', '/docs')).status).toBe(401);
    expect((await call(undefined, 'GET', '/docs/openapi.json')).status).toBe(401);
    expect((await call(agentA.token, 'GET', '/docs/openapi.json')).status).toBe(403);
    const doc = await call<{ paths: Record<string, unknown> }>(viewer.token, 'GET', '/docs/openapi.json');
    expect(doc.status).toBe(200);
    expect(Object.keys(doc.body.paths)).toEqual(expect.arrayContaining(['/tokens', '/audit', '/migrations']));
    expect((await call(viewer.token, 'GET', '/docs')).status).toBe(200);
    expect((await call(undefined, 'GET', '/docs-yaml')).status).toBe(404);
  });
});

describe('the audit log', () => {
  it('shows who did what to which ids with the outcome, refusals included, and never a secret', async () => {
    const find = (entries: AuditEntry[], pred: (e: AuditEntry) => boolean) => entries.find(pred);
    // entries are written when each response closes: wait for the last call above to land
    const entries = await until(
      'the /docs refusals in the audit log',
      async () => {
        const all = await audit();
        return all.some((e) => e.route.startsWith('/docs') && e.status === 403) ? all : undefined;
      },
      5_000,
    );
    expect(find(entries, (e) => e.route === '/notices' && e.status === 403)).toMatchObject({
      tokenId: agentA.id,
      tokenName: 'agent-node-a',
      role: 'agent',
      method: 'POST',
      targets: { nodeId: 'node-b' },
      denied: expect.stringMatching(/may act for node 'node-a' only/),
    });
    expect(find(entries, (e) => e.route === '/notices' && e.status === 202 && e.tokenId === agentA.id)).toMatchObject({
      targets: { nodeId: 'node-a' },
    });
    expect(find(entries, (e) => e.route === '/migrations' && e.tokenId === viewer.id)).toMatchObject({
      method: 'POST',
      status: 403,
      targets: { workload: 'wl-anything', destination: 'node-b' },
    });
    // the forged secret: a 401 without principal
    expect(find(entries, (e) => e.method === 'POST' && e.route === '/migrations' && e.status === 401)).toMatchObject({
      denied: 'unknown token',
      targets: { workload: 'wl-1' },
    });
    const revocation = find(entries, (e) => e.method === 'DELETE' && e.route === '/tokens/:id' && e.status === 200);
    expect(revocation).toMatchObject({ tokenId: 'bootstrap', role: 'admin' });
    const revokedUse = find(entries, (e) => e.tokenId === revocation!.targets.id && e.status === 401);
    expect(revokedUse).toMatchObject({ method: 'GET', route: '/migrations', denied: expect.stringMatching(/revoked/) });
    expect(find(entries, (e) => e.route === '/tokens' && e.targets.token === viewer.id)).toMatchObject({
      method: 'POST',
      status: 201,
      tokenId: 'bootstrap',
    });
    expect(find(entries, (e) => e.route === '/tokens' && e.status === 400)).toBeDefined();
    expect(find(entries, (e) => e.route.startsWith('/docs') && e.status === 401)).toMatchObject({ method: 'GET' });
    // successful reads are not audited
    expect(entries.filter((e) => e.method === 'GET' && e.status === 200)).toEqual([]);
    const text = JSON.stringify(entries);
    for (const s of secrets) expect(text).not.toContain(s);
    // newest first, bounded; the CLI reads the same
    expect(await audit(2)).toHaveLength(2);
    expect((await call(orch.token, 'GET', '/audit?limit=0')).status).toBe(400);
    expect((await call(orch.token, 'GET', '/audit?limit=100000')).status).toBe(400);
    const viaCli = (await cli(['--url', orch.baseUrl, '--token', orch.token, 'audit', '--limit', '3'])) as AuditEntry[];
    expect(viaCli).toHaveLength(3);
  });
});

describe('HTTPS', () => {
  it('serves the API over TLS (SPOTLIFT_TLS_CERT/KEY), reached by the CLI with --ca', async () => {
    const certs = issueTestCertificates();
    const tls = await startOrchestrator({
      nodesConfig: { ...lab, nodes: [] },
      redisPort: REDIS_PORT,
      env: { SPOTLIFT_TLS_CERT: certs.certPath, SPOTLIFT_TLS_KEY: certs.keyPath },
    });
    try {
      expect(tls.baseUrl).toMatch(/^https:/);
      const list = await cli(['--url', tls.baseUrl, '--token', tls.token, '--ca', certs.caPath, 'tokens', 'list']);
      expect(list).toEqual([]);
      // without the CA the certificate is refused
      await expect(cli(['--url', tls.baseUrl, '--token', tls.token, 'tokens', 'list'])).rejects.toThrow(
        /self-signed|unable to (get|verify)/i,
      );
      // plain HTTP to the TLS port is no way in
      await expect(fetch(tls.baseUrl.replace('https:', 'http:') + '/nodes')).rejects.toThrow();
    } finally {
      await tls.close();
    }
  });
});
