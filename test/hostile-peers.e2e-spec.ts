/**
 * Peers that misbehave, against the real orchestrator (in this process, real Redis, real lab sshd):
 * - `POST /nodes` at hosts that are silent, reset, hang up mid-banner, send garbage, or refuse: the
 *   orchestrator lives, answers one generic 502 that tells nothing about the host, and stores nothing;
 * - a node printing 600 MB: the command is killed at the output cap, memory stays bounded, the connection
 *   keeps working;
 * - 50 concurrent commands to an sshd with stock MaxSessions 10: all succeed over one connection;
 * - a terminating node stays terminating through probes and re-registration until clear-notice.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { EvacuationRecord, NodeRecord, NodeTarget } from '@spotlift/domain';
import { FakeImdsServer, HostilePeers, LAB_HOST_ADDRESS, labDir, netnsPath, nodeAddress } from '@spotlift/testing';
import { NodeShell, OutputLimitError, SshNodeShell } from '@spotlift/transport';
import { type E2eEnv, setupE2e } from './support/e2e-env.js';
import { until } from './support/poll.js';

let env: E2eEnv;
const hostile = new HostilePeers();
const escaped: unknown[] = [];
const onEscape = (error: unknown) => escaped.push(error);

beforeAll(async () => {
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  env = await setupE2e({ nodes: 3, redisPort: 6411 });
}, 240_000);

afterAll(async () => {
  await hostile.close();
  await env?.teardown();
  process.off('uncaughtException', onEscape);
  process.off('unhandledRejection', onEscape);
}, 120_000);

/** Established TCP connections from this process to addr:port (`ss` with owning pids). */
function connectionsTo(addr: string, port: number): number {
  const out = execFileSync('ss', ['-tnpH', 'state', 'established', 'dst', `${addr}:${port}`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l.includes(`pid=${process.pid},`)).length;
}

const lab = (id: string) => env.lab.nodes.find((n) => n.id === id)!;

describe('POST /nodes at hostile peers', () => {
  const peers: [string, () => Promise<number>][] = [
    ['refuses', () => hostile.closedPort()],
    ['stays silent', () => hostile.peer(() => undefined)],
    ['resets', () => hostile.peer((s) => s.resetAndDestroy())],
    ['hangs up mid-banner', () => hostile.peer((s) => s.end('SSH-2.'))],
    ['sends garbage', () => hostile.peer((s) => s.end(randomBytes(8192)))],
    ['sends a banner, then garbage', () => hostile.peer((s) => s.write(`SSH-2.0-OpenSSH_9.2\r\n${'x'.repeat(9000)}`))],
  ];

  it.each(peers)(
    'a host that %s: 502 with a log id only, nothing stored, the orchestrator lives',
    async (label, start) => {
      const port = await start();
      const id = `hostile-${label.split(' ')[0]!.replace(/[^a-z]/g, '')}`;
      const res = await env.orch.api<{ code: string; message: string; errorId: string }>('POST', '/nodes', {
        id,
        host: '127.0.0.1',
        port,
        hostKey: lab('node-a').hostKey,
      });
      expect(res.status).toBe(502);
      expect(res.body.message).toBe(
        `node '${id}' could not be reached over SSH (see the orchestrator log, id ${res.body.errorId})`,
      );
      expect((await env.orch.api('GET', `/nodes/${id}`)).status).toBe(404);
      expect((await fetch(`${env.orch.baseUrl}/health/live`)).status).toBe(200);
      await new Promise((r) => setTimeout(r, 300)); // late events of the dead connection
      expect(escaped).toEqual([]);
    },
  );

  it('a real sshd presenting another key: the same answer, no fingerprint', async () => {
    const res = await env.orch.api<{ message: string }>('POST', '/nodes', {
      ...lab('node-b'),
      id: 'hostile-imposter',
      hostKey: lab('node-c').hostKey,
    });
    expect(res.status).toBe(502);
    expect(res.body.message).toMatch(
      /^node 'hostile-imposter' could not be reached over SSH \(see the orchestrator log/,
    );
    expect(JSON.stringify(res.body)).not.toMatch(/SHA256|host key/);
    expect((await env.orch.api('GET', '/nodes/hostile-imposter')).status).toBe(404);
  });

  it('a typo in a field is a 400 naming it', async () => {
    const res = await env.orch.api<{ message: string }>('POST', '/nodes', {
      ...lab('node-b'),
      id: 'typo',
      dataAdress: '10.77.0.3',
    });
    expect(res.status).toBe(400);
    expect(res.body.message).toMatch(/dataAdress/);
  });
});

describe('output cap', () => {
  it('a node printing 600 MB: killed at the cap, memory bounded, the connection still works', async () => {
    const shell = env.orch.app.get(NodeShell);
    const node = lab('node-a');
    await shell.exec(node, 'true');
    const connections = connectionsTo(node.host, node.port);
    global.gc?.();
    const before = process.memoryUsage();
    const t0 = Date.now();
    const error = await shell.exec(node, 'yes | head -c 600000000').catch((e: unknown) => e);
    const after = process.memoryUsage();
    const mib = (n: number) => (n / 2 ** 20).toFixed(1);
    console.log(
      `output cap: 600 MB flood stopped after ${Date.now() - t0} ms; rss +${mib(after.rss - before.rss)} MiB, ` +
        `heap +${mib(after.heapUsed - before.heapUsed)} MiB`,
    );
    expect(error).toBeInstanceOf(OutputLimitError);
    expect((error as Error).message).toMatch(/wrote more than 8388608 bytes to stdout; it was killed/);
    expect(after.rss - before.rss).toBeLessThan(150 * 2 ** 20);
    expect(after.heapUsed - before.heapUsed).toBeLessThan(100 * 2 ** 20);
    // The same connection serves the next command; no process was left printing on the node.
    expect(await shell.exec(node, 'echo ok')).toMatchObject({ code: 0, stdout: 'ok\n' });
    expect(connectionsTo(node.host, node.port)).toBe(connections);
    const left = await shell.exec(node, 'pgrep -x yes | wc -l');
    expect(left.stdout.trim()).toBe('0');
  });

  it('a spawned command flooding stderr is killed at the cap, and says so', async () => {
    const shell = env.orch.app.get(NodeShell);
    const proc = await shell.spawn(lab('node-a'), 'yes >&2');
    proc.stdout.resume();
    const done = await proc.done;
    expect(done.code).not.toBe(0); // killed, or SIGPIPE once its channel closed: it ended either way
    expect(done.stderr).toMatch(/stderr passed 1048576 bytes \(output cap\); the command was killed/);
    expect(done.stderr.length).toBeLessThan(1.1 * 2 ** 20);
  });
});

describe('channels per connection', () => {
  let dir: string;
  let sshdPid = 0;
  const PORT = 2210;

  /** An sshd in node-a's namespace as a distribution ships it: MaxSessions 10. */
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'spotlift-stock-sshd-'));
    const cfg = readFileSync(join(labDir(), 'nodes', 'node-a', 'sshd_config'), 'utf8')
      .replace(/^ListenAddress .*$/m, `ListenAddress ${nodeAddress('node-a')}:${PORT}`)
      .replace(/^PidFile .*$/m, `PidFile ${dir}/sshd.pid`)
      .replace(/^MaxSessions .*$/m, 'MaxSessions 10')
      .replace(/^MaxStartups .*$/m, 'MaxStartups 10:30:100');
    writeFileSync(join(dir, 'sshd_config'), cfg);
    const started = spawnSync('nsenter', [
      `--net=${netnsPath('node-a')}`,
      '/usr/sbin/sshd',
      '-f',
      join(dir, 'sshd_config'),
      '-E',
      join(dir, 'sshd.log'),
    ]);
    expect(started.status).toBe(0);
    sshdPid = await until(
      'the stock sshd',
      () => {
        try {
          return Promise.resolve(Number(readFileSync(join(dir, 'sshd.pid'), 'utf8').trim()) || undefined);
        } catch {
          return Promise.resolve(undefined);
        }
      },
      20_000,
    );
  }, 60_000);

  afterAll(() => {
    if (sshdPid) process.kill(sshdPid, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
  });

  it('50 concurrent commands to one node all succeed, over one connection', async () => {
    const shell = new SshNodeShell({ privateKey: readFileSync(env.lab.ssh.privateKeyPath) });
    const node: NodeTarget = { ...lab('node-a'), id: 'node-a-stock', port: PORT };
    try {
      const results = await Promise.all(
        Array.from({ length: 50 }, (_, i) => shell.exec(node, `sleep 0.2; echo ${i}`, { timeoutMs: 60_000 })),
      );
      expect(results.map((r) => [r.code, r.stdout])).toEqual(results.map((_, i) => [0, `${i}\n`]));
      expect(connectionsTo(nodeAddress('node-a'), PORT)).toBe(1);
      expect(shell.openConnections).toBe(1);
    } finally {
      await shell.close();
    }
  });
});

describe('notice states survive probes', () => {
  it('a terminating node stays terminating when probed and re-registered; clear-notice makes it ready', async () => {
    const notice = await env.orch.api<{ evacuation?: { id: string } }>('POST', '/notices', {
      nodeId: 'node-c',
      kind: 'termination',
      secondsUntil: 120,
    });
    expect(notice.status).toBe(202);
    const terminating = await until(
      'node-c terminating',
      async () => {
        const n = (await env.orch.api<NodeRecord>('GET', '/nodes/node-c')).body;
        return n.state === 'terminating' ? n : undefined;
      },
      30_000,
    );
    expect(terminating.state).toBe('terminating');
    expect((await env.orch.api<NodeRecord>('POST', '/nodes/node-c/probe')).body.state).toBe('terminating');
    const again = await env.orch.api<NodeRecord>('POST', '/nodes', lab('node-c'));
    expect([again.status, again.body.state]).toEqual([201, 'terminating']);

    // Nothing to move from node-c: its evacuation ends; only then may the notice be cleared.
    const evacuations = (await env.orch.api<EvacuationRecord[]>('GET', '/evacuations')).body;
    const evac = evacuations.find((e) => e.nodeId === 'node-c')!;
    await until(
      'the evacuation of node-c to end',
      async () => {
        const e = (await env.orch.api<EvacuationRecord>('GET', `/evacuations/${evac.id}`)).body;
        return ['completed', 'partial', 'failed'].includes(e.state) ? e : undefined;
      },
      60_000,
    );
    const cleared = await env.orch.api<NodeRecord>('POST', '/nodes/node-c/clear-notice');
    expect([cleared.status, cleared.body.state]).toEqual([200, 'ready']);
    expect((await env.orch.api<NodeRecord>('GET', '/nodes/node-c')).body.state).toBe('ready');
  });

  it('a removed node is watched for notices no more', async () => {
    const imds = await new FakeImdsServer().start({ host: LAB_HOST_ADDRESS });
    try {
      const spec = { ...lab('node-b'), id: 'node-b-watched', metadata: { provider: 'aws', baseUrl: imds.url } };
      expect((await env.orch.api('POST', '/nodes', spec)).status).toBe(201);
      await until('node-b-watched polled', () => Promise.resolve(imds.requests.length > 2 || undefined), 15_000);
      expect((await env.orch.api('DELETE', '/nodes/node-b-watched')).status).toBe(204);
      // Removed through this process: its watch stops at once (other replicas follow the store every 5 s); the
      // loop on the node ends at its next tick into the closed channel. After that, no request for 2 s.
      await new Promise((r) => setTimeout(r, 3_000));
      const seen = imds.requests.length;
      await new Promise((r) => setTimeout(r, 2_000));
      expect(imds.requests.length).toBe(seen);
    } finally {
      await imds.stop();
    }
  });

  it('DELETE /nodes/:id forgets an unused node; 404 for an unknown one', async () => {
    const add = await env.orch.api<NodeRecord>('POST', '/nodes', { ...lab('node-b'), id: 'node-b-alias' });
    expect(add.status).toBe(201);
    expect((await env.orch.api('DELETE', '/nodes/node-b-alias')).status).toBe(204);
    expect((await env.orch.api('GET', '/nodes/node-b-alias')).status).toBe(404);
    expect((await env.orch.api('DELETE', '/nodes/node-b-alias')).status).toBe(404);
  });
});
