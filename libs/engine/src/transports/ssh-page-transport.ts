import type { NodeShell } from '@spotlift/transport';
import type { MigrationContext } from '../engine.types.js';
import { type PageChannel, PageTransport } from './page-transport.port.js';

/**
 * Page traffic tunnelled through SSH, relayed by the orchestrator (design: libs/transport/src/ssh-relay.ts).
 * The page-server listens on the destination's 127.0.0.1:port; the source's sshd listens on its own
 * 127.0.0.1:P (picked by sshd) and the dump connects there. Nothing needs a route between the nodes.
 */
export class SshPageTransport extends PageTransport {
  readonly name = 'ssh' as const;

  constructor(private readonly shell: NodeShell) {
    super();
  }

  async open(ctx: MigrationContext, port: number): Promise<PageChannel> {
    const relay = await this.shell.relayPort(ctx.source, ctx.destination, port).catch((error: Error) => {
      throw new Error(`cannot open the SSH page relay ${ctx.source.id} -> ${ctx.destination.id}: ${error.message}`);
    });
    return {
      listen: { address: '127.0.0.1', port },
      connect: { address: '127.0.0.1', port: relay.sourcePort },
      bytesRelayed: () => relay.bytes(),
      close: () => relay.close(),
    };
  }
}
