/**
 * Transport selection in the engine, with a scripted node shell: the migration's `transport` decides the
 * page-server and dump flags (tls), the addresses (ssh: loopback on both nodes, through the relay), what is
 * recorded on the job, and that an unconfigured transport fails before any freeze. Real CRIU over each
 * transport: test/transports.e2e-spec.ts.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MigrationRecord, NodeTarget, WorkloadRecord } from '@spotlift/domain';
import { InMemoryRecords } from '@spotlift/store';
import { DirectoryStreamer, type EnsuredTls, type NodeCertificates } from '@spotlift/transport';
import { ScriptedNodeShell, aMigration, aNode, aWorkload, scriptHealthyPreflight } from '@spotlift/testing';
import { SystemClock } from '../clock.js';
import { DEFAULT_ENGINE_CONFIG, type MigrationContext } from '../engine.types.js';
import { MigrationEngine } from '../migration-engine.js';
import { NodeOps } from '../node-ops/node-ops.js';
import type { PageTransport } from './page-transport.port.js';
import { DEFAULT_SSH_TUNNEL, SshPageTransport } from './ssh-page-transport.js';
import { TcpPageTransport } from './tcp-page-transport.js';
import { TlsPageTransport } from './tls-page-transport.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../../../criu/test/fixtures/images/page-server/${name}`, import.meta.url));
const TAR = Buffer.from('scripted tar stream');
const NODE_B_KEY = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIG6kQlzlwx67JwB8SLGmwN/HexEI5YUHtIUiWgPM2z+Q';

/** The node-to-node tunnel's steps as real nodes answer them; `tunnelSays` is what the source's ssh printed. */
function scriptDirectTunnel(shell: ScriptedNodeShell, tunnelSays = 'spotlift-tunnel-ready'): void {
  shell
    .on({
      node: 'node-a',
      match: /ssh-keygen -q -t ed25519/,
      reply: { stdout: '/tmp/spotlift-tunnel.Ab12Cd\nssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIPub spotlift-tunnel-x\n' },
    })
    .on({ node: 'node-a', match: /ssh -F \/dev\/null -N/, reply: { stdout: `${tunnelSays}\n` } });
}

/** NodeCertificates without a CA or a node: fixed paths per node, and a record of what was forgotten. */
class StubCertificates {
  readonly forgotten: string[] = [];
  ensure(node: NodeTarget): Promise<EnsuredTls> {
    const d = `/var/lib/spotlift/tls/${node.id}/gen-1`;
    return Promise.resolve({
      cacert: `${d}/ca.pem`,
      cert: `${d}/cert.pem`,
      key: `${d}/key.pem`,
      notAfter: new Date(0),
    });
  }
  forget(nodeId: string): void {
    this.forgotten.push(nodeId);
  }
}

/** `first` scripts answers that win over the happy path's (the first matching rule answers). */
function setup(
  migration: MigrationRecord,
  make: (shell: ScriptedNodeShell) => PageTransport[],
  first?: (shell: ScriptedNodeShell) => void,
  nodeB: Partial<ReturnType<typeof aNode>> = {},
) {
  const shell = new ScriptedNodeShell();
  const migrations = new InMemoryRecords<MigrationRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<ReturnType<typeof aNode>>();
  void nodes.save(aNode('node-a'));
  void nodes.save(aNode('node-b', { dataAddress: '192.168.7.3', ...nodeB }));
  void migrations.save(migration);
  void workloads.save(aWorkload());
  const ops = new NodeOps(shell);
  const engine = new MigrationEngine(
    migrations,
    workloads,
    nodes,
    ops,
    new DirectoryStreamer(shell),
    new SystemClock(),
    DEFAULT_ENGINE_CONFIG,
    make(shell),
  );
  first?.(shell);
  scriptHealthyPreflight(shell)
    .on({ node: 'node-a', match: /echo TREE/, reply: { stdout: 'TREE 4242\nRSS_KB 65536\n' } })
    .on({ node: 'node-b', match: /echo TREE/, reply: { stdout: 'TREE 777\nRSS_KB 65536\n' } })
    .on({ node: 'node-a', match: /criu dump/, reply: { stdout: 'SPOTLIFT_TIMES 1000000000000 1001000000000 0\n' } })
    .on({ node: 'node-a', match: /(?:^|; )tar -C/, reply: { stdout: TAR.toString() } })
    .on({
      node: 'node-b',
      match: /sha256sum/,
      reply: { stdout: `${createHash('sha256').update(TAR).digest('hex')}\n` },
    })
    .on({
      node: 'node-b',
      match: /criu restore/,
      reply: { stdout: 'RESTORED_PID 777\nSPOTLIFT_TIMES 1001100000000 1001300000000 0\n' },
    })
    .on({ node: 'node-a', match: /kill -KILL/, reply: { stdout: 'STATE gone\n' } })
    .on({ node: 'node-a', match: /kill -CONT/, reply: { stdout: 'STATE S\n' } })
    .on({ node: 'node-b', match: /kill -KILL/, reply: { stdout: 'STATE gone\n' } })
    .on({ node: 'node-b', match: /State:/, reply: { stdout: 'STATE S\n' } })
    .on({
      node: 'node-a',
      match: /base64 -w0 .*stats-dump/,
      reply: { stdout: fixture('stats-dump').toString('base64') },
    })
    .on({
      node: 'node-b',
      match: /base64 -w0 .*stats-restore/,
      reply: { stdout: fixture('stats-restore').toString('base64') },
    });
  return { shell, engine };
}

describe('page transports in the engine', () => {
  it('tcp: records the transport and the measured throughput (pages over CRIU memwrite time)', async () => {
    const { engine } = setup(aMigration(), () => [new TcpPageTransport()]);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.transport).toBe('tcp');
    const d = m.criu.dump!;
    expect(m.throughput?.pagesBytesPerSec).toBe(Math.round((d.pagesWritten * 4096) / (d.memwriteTimeUs / 1e6)));
    expect(m.throughput?.imagesBytesPerSec).toBeGreaterThan(0);
    expect(m.bytes.relayed).toBeUndefined();
  });

  it('ssh relay: page-server on the destination loopback, the dump to the relay port on the source loopback', async () => {
    const { shell, engine } = setup(aMigration({ transport: 'ssh' }), (s) => [
      new TcpPageTransport(),
      new SshPageTransport(s, { ...DEFAULT_SSH_TUNNEL, mode: 'relay' }),
    ]);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.transport).toBe('ssh');
    const [ps] = shell.ran('node-b', /criu page-server/);
    const port = Number(/--address 127\.0\.0\.1 --port (\d+)/.exec(ps!)?.[1]);
    expect(shell.ran('node-a', /^relay node-b:\d+$/)).toEqual([`relay node-b:${port}`]);
    // ScriptedNodeShell's relay listens on destPort + 1.
    expect(
      shell.ran('node-a', new RegExp(`criu dump .*--page-server --address 127\\.0\\.0\\.1 --port ${port + 1}\\b`)),
    ).toHaveLength(1);
    expect(m.bytes.relayed).toBe(0);
    expect(m.transportRoute).toMatch(/^relay: .*not direct: configured to relay$/);
    expect(shell.ran('node-a', /ssh-keygen/)).toEqual([]);
  });

  it('ssh direct: a one-time key, OpenSSH -L on the source to the destination data address, revoked once up', async () => {
    const { shell, engine } = setup(
      aMigration({ transport: 'ssh' }),
      (s) => [new SshPageTransport(s)],
      scriptDirectTunnel,
      { hostKey: NODE_B_KEY },
    );
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.transportRoute).toMatch(/^direct: OpenSSH -L on node-a to node-b's sshd at 192\.168\.7\.3:22/);
    expect(m.bytes.relayed).toBeUndefined();
    expect(shell.ran('node-a', /^relay /)).toEqual([]);
    const [ps] = shell.ran('node-b', /criu page-server/);
    const port = Number(/--address 127\.0\.0\.1 --port (\d+)/.exec(ps!)?.[1]);
    // The source's pinned view of the destination, the key restricted to the page-server's port.
    expect(shell.ran('node-a', /ssh-keygen/)[0]).toContain(`spotlift-destination %s\\n' '${NODE_B_KEY}'`);
    const [authorize] = shell.ran('node-b', /permitopen/);
    expect(authorize).toContain(`permitopen="127.0.0.1:${port}"`);
    const [tunnel] = shell.ran('node-a', /ssh -F \/dev\/null/);
    expect(tunnel).toContain(`-L 127.0.0.1:${port}:127.0.0.1:${port} 192.168.7.3`);
    expect(tunnel).toMatch(/StrictHostKeyChecking=yes .*HostKeyAlias=spotlift-destination/);
    expect(shell.ran('node-b', /mv -f "\$tmp" "\$f"/).length).toBeGreaterThanOrEqual(1);
    expect(
      shell.ran('node-a', new RegExp(`criu dump .*--page-server --address 127\\.0\\.0\\.1 --port ${port}\\b`)),
    ).toHaveLength(1);
  });

  it('ssh: a pair whose direct tunnel fails is relayed with the reason, and not tried again for a while', async () => {
    const shell = new ScriptedNodeShell();
    scriptDirectTunnel(shell, 'spotlift-tunnel-exit 255 ssh: connect to host 192.168.7.3 port 22: No route to host');
    let now = 1_000_000;
    const transport = new SshPageTransport(shell, DEFAULT_SSH_TUNNEL, () => now);
    const ctx = () =>
      ({
        migration: aMigration({ transport: 'ssh' }),
        source: aNode('node-a'),
        destination: aNode('node-b', { dataAddress: '192.168.7.3', hostKey: NODE_B_KEY }),
      }) as unknown as MigrationContext;
    const first = ctx();
    const channel = await transport.open(first, 40100);
    expect(channel.connect).toEqual({ address: '127.0.0.1', port: 40101 }); // the scripted relay's port
    expect(first.migration.transportRoute).toMatch(/^relay: .*not direct: .*No route to host/);
    expect(shell.ran('node-b', /mv -f/).length).toBe(1); // the key was revoked after the failed login
    const second = ctx();
    await transport.open(second, 40200);
    expect(second.migration.transportRoute).toMatch(/No route to host \(cached\)$/);
    expect(shell.ran('node-a', /ssh-keygen/)).toHaveLength(1);
    now += DEFAULT_SSH_TUNNEL.retryDirectAfterMs;
    await transport.open(ctx(), 40300);
    expect(shell.ran('node-a', /ssh-keygen/)).toHaveLength(2);
  });

  it('tls: mutual; the dump checks the page-server name, the page-server checks the CA only', async () => {
    const certs = new StubCertificates();
    const { shell, engine } = setup(aMigration({ transport: 'tls' }), () => [
      new TlsPageTransport(certs as unknown as NodeCertificates),
    ]);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(m.transport).toBe('tls');
    const [ps] = shell.ran('node-b', /criu page-server/);
    expect(ps).toMatch(/--address 192\.168\.7\.3 /);
    expect(ps).toMatch(
      /--tls --tls-cacert \S+node-b\/gen-1\/ca\.pem --tls-cert \S+node-b\/gen-1\/cert\.pem --tls-key \S+node-b\/gen-1\/key\.pem --tls-no-cn-verify/,
    );
    const [dump] = shell.ran('node-a', /criu dump/);
    expect(dump).toMatch(/--page-server --address 192\.168\.7\.3 /);
    expect(dump).toMatch(
      /--tls --tls-cacert \S+node-a\/gen-1\/ca\.pem --tls-cert \S+node-a\/gen-1\/cert\.pem --tls-key \S+node-a\/gen-1\/key\.pem/,
    );
    expect(dump).not.toMatch(/no-cn-verify/);
    expect(certs.forgotten).toEqual([]);
  });

  it('tls: a failed dump (CRIU aborts on a name mismatch) rolls back and makes both nodes be checked again', async () => {
    const certs = new StubCertificates();
    const { shell, engine } = setup(
      aMigration({ transport: 'tls' }),
      () => [new TlsPageTransport(certs as unknown as NodeCertificates)],
      (s) =>
        s.on({ node: 'node-a', match: /criu dump/, reply: { code: 134, stdout: 'SPOTLIFT_TIMES 1 2 134\n' } }).on({
          node: 'node-a',
          match: /tail -n 200 .*dump\.log/,
          reply: {
            stdout:
              '(00.11) Error (criu/tls.c:205): tls: The certificate is NOT trusted. The name in the certificate does not match the expected.\n',
          },
        }),
    );
    const m = await engine.run('mig-1');
    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/criu dump failed on node-a/);
    expect(shell.ran('node-a', /kill -CONT/).length).toBeGreaterThanOrEqual(1);
    expect(shell.ran('node-b', /criu restore/)).toEqual([]);
    expect(certs.forgotten.sort()).toEqual(['node-a', 'node-b']);
  });

  it('a transport this orchestrator lacks fails the job before any freeze', async () => {
    const { shell, engine } = setup(aMigration({ transport: 'ssh' }), () => [new TcpPageTransport()]);
    const m = await engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/page transport 'ssh' is not configured on this orchestrator \(available: tcp\)/);
    expect(shell.ran('node-a', /criu dump|kill -/)).toEqual([]);
  });
});
