/**
 * The page-traffic PKI: real certificates from the openssl CLI (what production uses), the rotation rules
 * as a pure function, and NodeCertificates' reuse/rotate/push decisions against a scripted node.
 */
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, rmSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeTarget } from '@spotlift/domain';
import { NodeShell, type CommandResult, type ExecOptions, type RemoteProcess } from '../node-shell.port.js';
import { describeCertificate, rotationReason } from './certificate-policy.js';
import { NodeCertificates } from './node-certificates.js';
import { OpenSslCertificateAuthority } from './openssl-certificate-authority.js';

const DAY = 86_400_000;
let dir: string;
let ca: OpenSslCertificateAuthority;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'spotlift-pki-spec-'));
  ca = new OpenSslCertificateAuthority({ dir: join(dir, 'ca') });
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('OpenSslCertificateAuthority', () => {
  it('creates the CA on first use (key 0600) and keeps it', async () => {
    const pem = await ca.caCertPem();
    expect(statSync(join(dir, 'ca', 'ca.key')).mode & 0o777).toBe(0o600);
    expect(new X509Certificate(pem).ca).toBe(true);
    expect(await new OpenSslCertificateAuthority({ dir: join(dir, 'ca') }).caCertPem()).toBe(pem);
  });

  it('issues a node certificate with the data address as an IP SAN, for server and client use', async () => {
    const { certPem, keyPem } = await ca.issue({
      commonName: 'spotlift node node-b',
      ipAddresses: ['10.77.0.3'],
      dnsNames: ['node-b'],
      validForMs: 30 * DAY,
    });
    const facts = describeCertificate(certPem);
    expect(facts.ipAddresses).toEqual(['10.77.0.3']);
    expect(facts.dnsNames).toEqual(['node-b']);
    expect(facts.issuedBy(await ca.caCertPem())).toBe(true);
    expect(facts.notAfter.getTime() - Date.now()).toBeGreaterThan(29 * DAY);
    // Backdated, so a node whose clock runs behind accepts it at once.
    expect(facts.notBefore.getTime()).toBeLessThan(Date.now() - 50 * 60_000);
    expect(facts.notAfter.getTime() - Date.now()).toBeLessThanOrEqual(30 * DAY + 60_000);
    const x = new X509Certificate(certPem);
    expect(x.ca).toBe(false);
    expect(x.keyUsage).toEqual(expect.arrayContaining(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']));
    expect(x.checkPrivateKey((await import('node:crypto')).createPrivateKey(keyPem))).toBe(true);
  });

  it('refuses requests without a usable address', async () => {
    await expect(ca.issue({ commonName: 'x', ipAddresses: ['not-an-ip'], validForMs: DAY })).rejects.toThrow(
      /not an IP/,
    );
    await expect(ca.issue({ commonName: 'x', ipAddresses: [], validForMs: DAY })).rejects.toThrow(/subjectAltName/);
  });
});

describe('rotationReason', () => {
  let caPem: string;
  let good: string;
  beforeAll(async () => {
    caPem = await ca.caCertPem();
    good = (await ca.issue({ commonName: 'n', ipAddresses: ['10.0.0.5'], validForMs: 30 * DAY })).certPem;
  });
  const base = () => ({
    certPem: good,
    nodeCaPem: caPem,
    caCertPem: caPem,
    address: '10.0.0.5',
    now: new Date(),
    renewBeforeMs: 10 * DAY,
  });

  it('reuses a valid certificate for the same address', () => {
    expect(rotationReason(base())).toBeUndefined();
  });
  it('issues when there is none, or it is unreadable', () => {
    expect(rotationReason({ ...base(), certPem: undefined })).toMatch(/no certificate/);
    expect(rotationReason({ ...base(), certPem: 'garbage' })).toMatch(/unreadable/);
  });
  it('rotates when the node address changed', () => {
    expect(rotationReason({ ...base(), address: '10.0.0.6' })).toMatch(
      /address changed: the certificate is for 10\.0\.0\.5, the data address is 10\.0\.0\.6/,
    );
  });
  it('rotates inside the renewal window and after expiry, not before', () => {
    const notAfter = describeCertificate(good).notAfter.getTime();
    expect(rotationReason({ ...base(), now: new Date(notAfter - 10 * DAY - 60_000) })).toBeUndefined();
    expect(rotationReason({ ...base(), now: new Date(notAfter - 9 * DAY) })).toMatch(/within the renewal window/);
    expect(rotationReason({ ...base(), now: new Date(notAfter + 1000) })).toMatch(/expired/);
  });
  it('rotates a certificate from another CA, or when the node holds another CA certificate', async () => {
    const other = new OpenSslCertificateAuthority({ dir: join(dir, 'other-ca') });
    const foreign = (await other.issue({ commonName: 'n', ipAddresses: ['10.0.0.5'], validForMs: 30 * DAY })).certPem;
    expect(rotationReason({ ...base(), certPem: foreign })).toMatch(/another CA/);
    expect(rotationReason({ ...base(), nodeCaPem: await other.caCertPem() })).toMatch(/another CA certificate/);
  });
});

/** A node as far as NodeCertificates sees it: a directory it reads and writes with shell commands. */
class FakeNodeFiles extends NodeShell {
  readonly commands: string[] = [];
  current: { gen: string; ca: string; cert: string } | undefined;
  override exec(_node: NodeTarget, command: string, opts?: ExecOptions): Promise<CommandResult> {
    this.commands.push(command);
    if (command.includes('readlink') && command.includes('echo "GEN')) {
      const c = this.current;
      const b64 = (s: string) => Buffer.from(s).toString('base64');
      return Promise.resolve({
        code: 0,
        stderr: '',
        stdout: c ? `GEN ${c.gen}\nCA ${b64(c.ca)}\nCERT ${b64(c.cert)}\n` : '',
      });
    }
    const gen = /mkdir -m 0700 (gen-[0-9a-f]+)\.tmp/.exec(command)?.[1];
    const [ca, cert] = String(opts?.stdin ?? '')
      .split('\n')
      .map((l) => Buffer.from(l, 'base64').toString('utf8'));
    if (gen && ca && cert) this.current = { gen, ca, cert };
    return Promise.resolve({ code: 0, stdout: '', stderr: '' });
  }
  override spawn(): Promise<RemoteProcess> {
    return Promise.reject(new Error('not used'));
  }
  override connect(): Promise<void> {
    return Promise.resolve();
  }
  override close(): Promise<void> {
    return Promise.resolve();
  }
}

describe('NodeCertificates', () => {
  const node: NodeTarget = {
    id: 'node-b',
    host: '192.168.1.3',
    dataAddress: '10.77.0.3',
    port: 22,
    user: 'root',
    hostKey: 'SHA256:x',
  };
  let now = Date.now();
  const setup = () => {
    const shell = new FakeNodeFiles();
    const certs = new NodeCertificates(shell, ca, {
      remoteDir: '/var/lib/spotlift/tls',
      now: () => new Date(now),
      recheckAfterMs: 60_000,
    });
    return { shell, certs };
  };
  const pushes = (shell: FakeNodeFiles) => shell.commands.filter((c) => c.includes('IFS= read -r key')).length;

  it('issues and pushes once, through stdin, into a per-node generation; then reuses it', async () => {
    const { shell, certs } = setup();
    const first = await certs.ensure(node);
    expect(first.issued).toMatch(/no certificate/);
    expect(first.cert).toMatch(/^\/var\/lib\/spotlift\/tls\/node-b\/gen-[0-9a-f]{16}\/cert\.pem$/);
    expect(shell.commands.join('\n')).not.toMatch(/PRIVATE KEY/);
    expect(describeCertificate(shell.current!.cert).ipAddresses).toEqual(['10.77.0.3']);
    const again = await certs.ensure(node);
    expect(again.issued).toBeUndefined();
    expect(again.cert).toBe(first.cert);
    expect(pushes(shell)).toBe(1);
    expect(shell.commands).toHaveLength(2); // one read, one push; the second call was answered from memory
  });

  it('after the recheck interval (or forget) reads the node again and adopts a good certificate', async () => {
    const { shell, certs } = setup();
    const first = await certs.ensure(node);
    certs.forget('node-b');
    const second = await certs.ensure(node);
    expect(second.issued).toBeUndefined();
    expect(second.cert).toBe(first.cert);
    expect(second.issued).toBeUndefined();
    expect(pushes(shell)).toBe(1);
  });

  it('rotates when the node address changed', async () => {
    const { shell, certs } = setup();
    const first = await certs.ensure(node);
    const moved = await certs.ensure({ ...node, dataAddress: '10.77.0.30' });
    expect(moved.issued).toMatch(/address changed/);
    expect(moved.cert).not.toBe(first.cert);
    expect(describeCertificate(shell.current!.cert).ipAddresses).toEqual(['10.77.0.30']);
  });

  it('rotates when close to expiry', async () => {
    const { shell, certs } = setup();
    const first = await certs.ensure(node);
    now = first.notAfter.getTime() - 5 * DAY;
    try {
      const renewed = await certs.ensure(node);
      expect(renewed.issued).toMatch(/renewal window/);
      expect(pushes(shell)).toBe(2);
    } finally {
      now = Date.now();
    }
  });

  it('serialises concurrent ensure() calls for one node: one issue, not two', async () => {
    const { shell, certs } = setup();
    const [a, b] = await Promise.all([certs.ensure(node), certs.ensure(node)]);
    expect(a.cert).toBe(b.cert);
    expect(pushes(shell)).toBe(1);
  });
});
