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
import { DEFAULT_ENGINE_CONFIG } from '../engine.types.js';
import { MigrationEngine } from '../migration-engine.js';
import { NodeOps } from '../node-ops.js';
import type { PageTransport } from './page-transport.port.js';
import { SshPageTransport } from './ssh-page-transport.js';
import { TcpPageTransport } from './tcp-page-transport.js';
import { TlsPageTransport } from './tls-page-transport.js';

const fixture = (name: string) =>
  readFileSync(new URL(`../../../criu/test/fixtures/images/page-server/${name}`, import.meta.url));
const TAR = Buffer.from('scripted tar stream');

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
) {
  const shell = new ScriptedNodeShell();
  const migrations = new InMemoryRecords<MigrationRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<ReturnType<typeof aNode>>();
  void nodes.save(aNode('node-a'));
  void nodes.save(aNode('node-b', { dataAddress: '192.168.7.3' }));
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

  it('ssh: page-server on the destination loopback, the dump to the relay port on the source loopback', async () => {
    const { shell, engine } = setup(aMigration({ transport: 'ssh' }), (s) => [
      new TcpPageTransport(),
      new SshPageTransport(s),
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
