import type { NodeTarget } from '@spotlift/domain';
import { NodeShell } from '../node-shell.port.js';
import { installNodeTlsCommand, readNodeTlsCommand } from '@spotlift/node-commands';
import { CertificateAuthority } from './certificate-authority.port.js';
import { describeCertificate, rotationReason } from './certificate-policy.js';

/** Absolute paths of one node's TLS files, as CRIU's --tls-cacert/--tls-cert/--tls-key take them. */
export interface NodeTlsFiles {
  cacert: string;
  cert: string;
  key: string;
}

export interface EnsuredTls extends NodeTlsFiles {
  /** Set when this call (re)issued the certificate, with why. */
  issued?: string;
  notAfter: Date;
}

export interface NodeCertificatesOptions {
  /** Per-node directory root on the nodes; each node uses `<remoteDir>/<node id>` (lab nodes share one file system). */
  remoteDir: string;
  validForMs: number;
  renewBeforeMs: number;
  /** How long a certificate checked on (or pushed to) a node is trusted without looking again. */
  recheckAfterMs: number;
  now?: () => Date;
}

export const DEFAULT_NODE_CERTIFICATES: NodeCertificatesOptions = {
  remoteDir: '/var/lib/spotlift/tls',
  validForMs: 30 * 86_400_000,
  renewBeforeMs: 10 * 86_400_000,
  recheckAfterMs: 60 * 60_000,
};

interface Known {
  files: NodeTlsFiles;
  notAfter: Date;
  address: string;
  checkedAt: number;
}

function dataAddressOf(node: NodeTarget): string {
  return node.dataAddress ?? node.host;
}

/**
 * Issues, pushes, reuses and rotates per-node certificates for CRIU's page-traffic TLS. Each issue goes to a
 * new generation directory (`gen-<serial>`, files 0600) and `current` is switched atomically; the previous
 * generation is kept so a CRIU that already started with its paths keeps a consistent cert/key pair.
 */
export class NodeCertificates {
  private readonly known = new Map<string, Known>();
  private readonly locks = new Map<string, Promise<unknown>>();
  private readonly opts: NodeCertificatesOptions;

  constructor(
    private readonly shell: NodeShell,
    private readonly ca: CertificateAuthority,
    opts: Partial<NodeCertificatesOptions> = {},
  ) {
    this.opts = { ...DEFAULT_NODE_CERTIFICATES, ...opts };
  }

  /** A usable certificate for the node's current data address: the known one, the one on the node, or a new one. */
  ensure(node: NodeTarget): Promise<EnsuredTls> {
    // One check/issue per node at a time: two migrations to one node must not both rotate.
    const prev = this.locks.get(node.id) ?? Promise.resolve();
    const next = prev.catch(() => undefined).then(() => this.ensureLocked(node));
    this.locks.set(node.id, next);
    return next;
  }

  /** Forget what is known about a node (e.g. after a TLS failure), so the next ensure() looks at the node again. */
  forget(nodeId: string): void {
    this.known.delete(nodeId);
  }

  private now(): Date {
    return this.opts.now?.() ?? new Date();
  }

  private async ensureLocked(node: NodeTarget): Promise<EnsuredTls> {
    const address = dataAddressOf(node);
    const now = this.now();
    const k = this.known.get(node.id);
    if (
      k &&
      k.address === address &&
      now.getTime() - k.checkedAt < this.opts.recheckAfterMs &&
      k.notAfter.getTime() - now.getTime() >= this.opts.renewBeforeMs
    ) {
      return { ...k.files, notAfter: k.notAfter };
    }
    const caCertPem = await this.ca.caCertPem();
    const found = await this.read(node);
    const reason = rotationReason({ ...found, caCertPem, address, now, renewBeforeMs: this.opts.renewBeforeMs });
    let result: EnsuredTls;
    let files: NodeTlsFiles;
    if (!reason && found.gen && found.certPem) {
      files = this.paths(node, found.gen);
      result = { ...files, notAfter: describeCertificate(found.certPem).notAfter };
    } else {
      const issued = await this.ca.issue({
        commonName: `spotlift node ${node.id}`,
        ipAddresses: [address],
        validForMs: this.opts.validForMs,
      });
      const facts = describeCertificate(issued.certPem);
      const gen = `gen-${facts.fingerprint256.replace(/:/g, '').slice(0, 16).toLowerCase()}`;
      await this.push(node, gen, caCertPem, issued.certPem, issued.keyPem);
      files = this.paths(node, gen);
      result = { ...files, notAfter: facts.notAfter, issued: reason ?? 'no certificate on the node yet' };
    }
    this.known.set(node.id, { files, notAfter: result.notAfter, address, checkedAt: now.getTime() });
    return result;
  }

  private dir(node: NodeTarget): string {
    return `${this.opts.remoteDir}/${node.id}`;
  }

  private paths(node: NodeTarget, gen: string): NodeTlsFiles {
    const g = `${this.dir(node)}/${gen}`;
    return { cacert: `${g}/ca.pem`, cert: `${g}/cert.pem`, key: `${g}/key.pem` };
  }

  /** The current generation on the node: its name, CA and certificate (base64, one line each). */
  private async read(node: NodeTarget): Promise<{ gen?: string; certPem?: string; nodeCaPem?: string }> {
    const res = await this.shell.exec(node, readNodeTlsCommand(this.dir(node)), { timeoutMs: 15_000 });
    const line = (tag: string) => new RegExp(`^${tag} (\\S+)$`, 'm').exec(res.stdout)?.[1];
    const decode = (b64: string | undefined) => (b64 ? Buffer.from(b64, 'base64').toString('utf8') : undefined);
    const gen = line('GEN');
    if (!gen || !/^gen-[0-9a-f]+$/.test(gen)) return {};
    return { gen, nodeCaPem: decode(line('CA')), certPem: decode(line('CERT')) };
  }

  /**
   * Writes a generation through stdin (the key never appears in a command line), switches `current` to it
   * with a rename, and removes generations older than the previous one.
   */
  private async push(node: NodeTarget, gen: string, ca: string, cert: string, key: string): Promise<void> {
    const b64 = (s: string) => Buffer.from(s).toString('base64');
    const res = await this.shell.exec(node, installNodeTlsCommand(this.dir(node), gen), {
      timeoutMs: 15_000,
      stdin: `${b64(ca)}\n${b64(cert)}\n${b64(key)}\n`,
    });
    if (res.code !== 0) {
      throw new Error(
        `cannot install the TLS certificate on ${node.id}: ${(res.stderr || res.stdout).trim().slice(0, 300)}`,
      );
    }
  }
}
