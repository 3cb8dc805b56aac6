import type { NodeCertificates } from '@spotlift/transport';
import type { MigrationContext } from '../engine.types.js';
import { type PageChannel, PageTransport, dataAddress } from './page-transport.port.js';

/**
 * CRIU's own TLS (GnuTLS), mutual: each node presents a certificate from spotlift's CA (issued, pushed and
 * rotated by NodeCertificates before any freeze). The dump checks the page-server's certificate against the
 * address it connects to. The page-server gets `--tls-no-cn-verify` because CRIU would compare the *client's*
 * certificate with the page-server's own listen address (checked on CRIU 4.2.1): the source is still
 * authenticated, by the CA signature, and a client with a certificate from another CA is refused.
 */
export class TlsPageTransport extends PageTransport {
  readonly name = 'tls' as const;

  constructor(private readonly certificates: NodeCertificates) {
    super();
  }

  async open(ctx: MigrationContext, port: number): Promise<PageChannel> {
    const [server, client] = await Promise.all([
      this.certificates.ensure(ctx.destination),
      this.certificates.ensure(ctx.source),
    ]).catch((error: Error) => {
      throw new Error(`TLS certificates for ${ctx.source.id} -> ${ctx.destination.id}: ${error.message}`);
    });
    const endpoint = { address: dataAddress(ctx.destination), port };
    const files = (t: typeof server) => ({ cacert: t.cacert, cert: t.cert, key: t.key });
    return {
      listen: endpoint,
      connect: endpoint,
      tls: { server: { ...files(server), noCnVerify: true }, client: files(client) },
      // After a TLS failure, look at both nodes' certificates again next time instead of trusting memory.
      failed: () => {
        this.certificates.forget(ctx.source.id);
        this.certificates.forget(ctx.destination.id);
      },
      close: () => Promise.resolve(),
    };
  }
}
