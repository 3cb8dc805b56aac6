import type { MigrationContext } from '../engine.types.js';
import { type PageChannel, PageTransport, dataAddress } from './page-transport.port.js';

/** Plain TCP: the source connects straight to the destination's data address. Fastest; no encryption. */
export class TcpPageTransport extends PageTransport {
  readonly name = 'tcp' as const;

  open(ctx: MigrationContext, port: number): Promise<PageChannel> {
    const endpoint = { address: dataAddress(ctx.destination), port };
    return Promise.resolve({ listen: endpoint, connect: endpoint, close: () => Promise.resolve() });
  }
}
