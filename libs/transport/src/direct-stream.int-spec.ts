/**
 * The node-to-node stream's real commands (sh, busybox nc, bash /dev/tcp, openssl s_server/s_client, ss) on
 * this machine, both "nodes" on loopback: a directory arrives intact over tcp and over mutual TLS, a sender
 * with a certificate from another CA is refused, a failing sender fails the copy, and neither a cancel nor a
 * failure leaves anything listening. Through the lab's nodes with Podman: test/containers.e2e-spec.ts.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeTarget } from '@spotlift/domain';
import { UNPACK_TAR, tarCommand } from '@spotlift/node-commands';
import { type CommandResult, NodeShell, type RemoteProcess } from './node-shell.port.js';
import { type DirectRoute, DirectStreamer } from './direct-stream.js';

/** Every node is this machine: commands run by /bin/sh with their streams open, as over an SSH channel. */
class LoopbackShell extends NodeShell {
  exec(_node: NodeTarget, command: string): Promise<CommandResult> {
    return new Promise((resolve) => {
      const child = spawn('/bin/sh', ['-c', command], { stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d: Buffer) => (stdout += d.toString()));
      child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
      child.on('close', (code) => resolve({ code, stdout, stderr }));
    });
  }

  spawn(_node: NodeTarget, command: string): Promise<RemoteProcess> {
    const child = spawn('/bin/sh', ['-c', command], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.stdin.on('error', () => undefined);
    const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
      child.on('close', (code) => resolve({ code, stderr })),
    );
    return Promise.resolve({ stdin: child.stdin, stdout: child.stdout, done });
  }

  connect(): Promise<void> {
    return Promise.resolve();
  }

  close(): Promise<void> {
    return Promise.resolve();
  }
}

const A = { id: 'node-a', host: '127.0.0.1', port: 22, user: 'root', hostKey: '' } as NodeTarget;
const B = { id: 'node-b', host: '127.0.0.1', port: 22, user: 'root', hostKey: '' } as NodeTarget;
let dir: string;
const port = () => 47000 + Math.floor(Math.random() * 900);
const listening = (p: number) =>
  execFileSync('ss', ['-Htln', `sport = :${p}`])
    .toString()
    .trim();

/** A CA and a certificate signed by it for 127.0.0.1 (an IP SAN, as spotlift's node certificates carry). */
function pki(name: string): { cacert: string; cert: string; key: string } {
  const d = join(dir, name);
  mkdirSync(d);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { cwd: d, stdio: 'ignore' });
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'ca.key',
    '-out',
    'ca.pem',
    '-days',
    '1',
    '-subj',
    `/CN=${name}-ca`,
  );
  ssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-keyout',
    'key.pem',
    '-out',
    'req.pem',
    '-subj',
    '/CN=node',
  );
  writeFileSync(join(d, 'ext'), 'subjectAltName=IP:127.0.0.1\n');
  ssl(
    'x509',
    '-req',
    '-in',
    'req.pem',
    '-CA',
    'ca.pem',
    '-CAkey',
    'ca.key',
    '-CAcreateserial',
    '-out',
    'cert.pem',
    '-days',
    '1',
    '-extfile',
    'ext',
  );
  return { cacert: join(d, 'ca.pem'), cert: join(d, 'cert.pem'), key: join(d, 'key.pem') };
}

/** The file arrived with the same bytes (Buffer.equals: jest's deep equality walks 8 MiB byte by byte). */
const sameFile = (name: string) => readFileSync(join(dir, 'dst', name)).equals(readFileSync(join(dir, 'src', name)));

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'spotlift-direct-'));
  mkdirSync(join(dir, 'src'));
  writeFileSync(join(dir, 'src', 'pages.img'), randomBytes(8 << 20));
  writeFileSync(join(dir, 'src', 'small.img'), 'x');
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

async function copy(route: DirectRoute, from = join(dir, 'src')) {
  const streamer = new DirectStreamer(new LoopbackShell());
  return streamer.armPipe(
    A,
    tarCommand(from, []),
    B,
    { dir: join(dir, 'dst'), unpack: UNPACK_TAR, what: 'test stream' },
    route,
  );
}

describe('DirectStreamer on loopback, real commands', () => {
  it('tcp: the directory arrives intact, hashes compared, nothing listening after', async () => {
    const p = port();
    const endpoint = { address: '127.0.0.1', port: p };
    const armed = await copy({ listen: endpoint, connect: endpoint, timeoutS: 60 });
    expect(listening(p)).not.toBe(''); // armed: the listener is up before start
    const r = await armed.start();
    expect(r.bytes).toBeGreaterThan(8 << 20);
    expect(sameFile('pages.img')).toBe(true);
    expect(listening(p)).toBe('');
  }, 60_000);

  it('tls: mutual, with the CA both certificates come from; a sender from another CA is refused', async () => {
    const ours = pki('ours');
    const p = port();
    const endpoint = { address: '127.0.0.1', port: p };
    const good = await copy({ listen: endpoint, connect: endpoint, tls: { server: ours, client: ours }, timeoutS: 60 });
    await good.start();
    expect(sameFile('pages.img')).toBe(true);

    const stranger = pki('stranger');
    rmSync(join(dir, 'dst'), { recursive: true });
    const q = port();
    const other = { address: '127.0.0.1', port: q };
    const bad = await copy({ listen: other, connect: other, tls: { server: ours, client: stranger }, timeoutS: 60 });
    await expect(bad.start()).rejects.toThrow(/sending failed|receiving failed|checksum mismatch/);
    expect(listening(q)).toBe('');
  }, 60_000);

  it('a sender that fails fails the copy and ends the listener; a cancel before start leaves nothing listening', async () => {
    const p = port();
    const endpoint = { address: '127.0.0.1', port: p };
    const failing = await copy({ listen: endpoint, connect: endpoint, timeoutS: 60 }, join(dir, 'missing'));
    await expect(failing.start()).rejects.toThrow(/sending failed/);
    expect(listening(p)).toBe('');

    const q = port();
    const other = { address: '127.0.0.1', port: q };
    const cancelled = await copy({ listen: other, connect: other, timeoutS: 60 });
    expect(listening(q)).not.toBe('');
    await cancelled.cancel();
    expect(listening(q)).toBe('');
  }, 60_000);
});
