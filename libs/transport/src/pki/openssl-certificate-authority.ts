import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmod, link, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { CertificateAuthority, type CertificateRequest, type IssuedCertificate } from './certificate-authority.port.js';

export interface OpenSslCaOptions {
  /** Directory holding `ca.key` (0600) and `ca.pem`; created (0700) with a new CA on first use. */
  dir: string;
  caValidDays?: number;
  openssl?: string;
}

const SKEW_MS = 60 * 60_000;

/** Just enough `openssl ca` configuration for one issue in a scratch directory. */
const CA_CONFIG = `[ca]
default_ca = d
[d]
database = index.txt
new_certs_dir = .
serial = serial
default_md = sha256
policy = p
unique_subject = no
copy_extensions = none
[p]
commonName = supplied
`;

/** GeneralizedTime for `openssl ca -startdate/-enddate`: YYYYMMDDHHMMSSZ. */
function asn1Time(d: Date): string {
  return d
    .toISOString()
    .replace(/[-:T]/g, '')
    .replace(/\.\d+Z$/, 'Z');
}

function run(bin: string, args: string[], cwd?: string): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(bin, args, { cwd, timeout: 30_000 }, (error, stdout, stderr) => {
      if (error)
        reject(new Error(`openssl ${args[0] ?? ''} failed: ${(stderr || error.message).trim().slice(0, 500)}`));
      else resolve(stdout);
    });
  });
}

/**
 * A private CA made with the `openssl` CLI (Debian's openssl package on the orchestrator host): EC P-256
 * keys, which GnuTLS (CRIU's TLS) accepts. The CLI rather than an npm library, because Node's crypto cannot
 * sign certificates and openssl is already a dependency of every host that runs sshd.
 */
export class OpenSslCertificateAuthority extends CertificateAuthority {
  private ready: Promise<{ certPath: string; keyPath: string; certPem: string }> | undefined;
  private readonly bin: string;

  constructor(private readonly opts: OpenSslCaOptions) {
    super();
    this.bin = opts.openssl ?? 'openssl';
  }

  override async caCertPem(): Promise<string> {
    return (await this.load()).certPem;
  }

  override async issue(request: CertificateRequest): Promise<IssuedCertificate> {
    const ca = await this.load();
    const sans = [
      ...request.ipAddresses.map((ip) => {
        if (!isIP(ip)) throw new Error(`'${ip}' is not an IP address`);
        return `IP:${ip}`;
      }),
      ...(request.dnsNames ?? []).map((d) => {
        if (!/^[A-Za-z0-9.-]{1,253}$/.test(d)) throw new Error(`'${d}' is not a DNS name`);
        return `DNS:${d}`;
      }),
    ];
    if (sans.length === 0) throw new Error('a node certificate needs at least one subjectAltName');
    const work = await mkdtemp(join(tmpdir(), 'spotlift-pki-'));
    try {
      // Both ends of a page transfer present this certificate: the page-server as server, the dump as client.
      const ext = [
        `subjectAltName=${sans.join(',')}`,
        'basicConstraints=critical,CA:FALSE',
        'keyUsage=critical,digitalSignature,keyEncipherment',
        'extendedKeyUsage=serverAuth,clientAuth',
      ].join('\n');
      await writeFile(join(work, 'ext.cnf'), `${ext}\n`, { mode: 0o600 });
      const cn = request.commonName.replace(/[^A-Za-z0-9 ._-]/g, '_').slice(0, 64);
      await run(
        this.bin,
        [
          'req',
          '-new',
          '-newkey',
          'ec',
          '-pkeyopt',
          'ec_paramgen_curve:P-256',
          '-nodes',
          '-keyout',
          'node.key',
          '-subj',
          `/CN=${cn}`,
          '-out',
          'node.csr',
        ],
        work,
      );
      // A random positive serial (reissues must not collide, no serial file is shared), and a notBefore an
      // hour back so a node whose clock runs behind ours still accepts a certificate issued a moment ago.
      // `openssl ca` because `openssl x509 -req` in OpenSSL 3.0 cannot set the start date.
      const serial = `${((randomBytes(1)[0]! & 0x3f) | 0x10).toString(16)}${randomBytes(15).toString('hex')}`;
      await writeFile(join(work, 'serial'), `${serial}\n`);
      await writeFile(join(work, 'index.txt'), '');
      await writeFile(join(work, 'ca.cnf'), CA_CONFIG);
      const start = new Date(Date.now() - SKEW_MS);
      const end = new Date(start.getTime() + SKEW_MS + request.validForMs);
      await run(
        this.bin,
        [
          'ca',
          '-batch',
          '-config',
          'ca.cnf',
          '-cert',
          ca.certPath,
          '-keyfile',
          ca.keyPath,
          '-notext',
          '-startdate',
          asn1Time(start),
          '-enddate',
          asn1Time(end),
          '-extfile',
          'ext.cnf',
          '-in',
          'node.csr',
          '-out',
          'node.pem',
        ],
        work,
      );
      const [certPem, keyPem] = await Promise.all([
        readFile(join(work, 'node.pem'), 'utf8'),
        readFile(join(work, 'node.key'), 'utf8'),
      ]);
      return { certPem, keyPem };
    } finally {
      await rm(work, { recursive: true, force: true });
    }
  }

  private load(): Promise<{ certPath: string; keyPath: string; certPem: string }> {
    this.ready ??= this.loadOrCreate().catch((error: Error) => {
      this.ready = undefined;
      throw new Error(`the TLS CA in ${this.opts.dir} is not usable: ${error.message}`);
    });
    return this.ready;
  }

  private async loadOrCreate(): Promise<{ certPath: string; keyPath: string; certPem: string }> {
    const { dir } = this.opts;
    const certPath = join(dir, 'ca.pem');
    const keyPath = join(dir, 'ca.key');
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const existing = await readFile(certPath, 'utf8').catch(() => undefined);
    if (existing) return { certPath, keyPath, certPem: existing };
    const tag = `${process.pid}-${randomBytes(4).toString('hex')}`;
    const tmpKey = join(dir, `.ca.key.${tag}`);
    const tmpCert = join(dir, `.ca.pem.${tag}`);
    await run(this.bin, [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:P-256',
      '-nodes',
      '-keyout',
      tmpKey,
      '-out',
      tmpCert,
      '-days',
      String(this.opts.caValidDays ?? 3650),
      '-subj',
      '/CN=spotlift page-traffic CA',
      '-addext',
      'basicConstraints=critical,CA:TRUE',
      '-addext',
      'keyUsage=critical,keyCertSign,cRLSign',
    ]);
    await chmod(tmpKey, 0o600);
    try {
      // link() fails if another orchestrator created the key first: its CA wins and ours is dropped.
      await link(tmpKey, keyPath);
      await rename(tmpCert, certPath);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      for (let i = 0; i < 50; i++) {
        const other = await readFile(certPath, 'utf8').catch(() => undefined);
        if (other) return { certPath, keyPath, certPem: other };
        await new Promise((r) => setTimeout(r, 100));
      }
      throw new Error(`${keyPath} exists but ${certPath} does not`);
    } finally {
      await rm(tmpKey, { force: true });
      await rm(tmpCert, { force: true });
    }
    return { certPath, keyPath, certPem: await readFile(certPath, 'utf8') };
  }
}
