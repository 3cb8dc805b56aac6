import { openDirectTunnel, type NodeShell } from '@spotlift/transport';
import type { MigrationContext } from '../engine.types.js';
import { type PageChannel, PageTransport } from './page-transport.port.js';

export interface SshTunnelSettings {
  /**
   * `auto`: node to node (OpenSSH `-L` on the source, one hop; libs/transport/src/ssh-direct-tunnel.ts) where
   * the pair allows it, else relayed by the orchestrator (two hops; ssh-relay.ts). `relay`: always relayed.
   */
  mode: 'auto' | 'relay';
  /** The destination login's authorized_keys, where the one-time tunnel key goes (relative: under $HOME). */
  authorizedKeysFile: string;
  /** A pair whose direct tunnel failed is relayed without trying again for this long. */
  retryDirectAfterMs: number;
}

export const DEFAULT_SSH_TUNNEL: SshTunnelSettings = {
  mode: 'auto',
  authorizedKeysFile: '.ssh/authorized_keys',
  retryDirectAfterMs: 10 * 60_000,
};

/**
 * Page traffic tunnelled through SSH; chosen per node pair. The page-server listens on the destination's
 * 127.0.0.1:port only, and the dump connects to the source's 127.0.0.1, so nothing but the tunnel reaches it.
 * Direct first: it is one SSH hop like a hand-made `ssh -L`, about twice the relay's rate here
 * (bench/transport). When it cannot be set up (no route from the source to the destination's sshd, no
 * OpenSSH client, an sshd that refuses the key options, only a fingerprint pinned) the pair is relayed, the
 * reason is recorded on the job and the pair is not tried directly again for `retryDirectAfterMs`.
 */
export class SshPageTransport extends PageTransport {
  readonly name = 'ssh' as const;
  /** Pairs whose direct tunnel failed: when, and why. */
  private readonly directFailed = new Map<string, { at: number; why: string }>();

  constructor(
    private readonly shell: NodeShell,
    private readonly settings: SshTunnelSettings = DEFAULT_SSH_TUNNEL,
    private readonly now: () => number = Date.now,
  ) {
    super();
  }

  async open(ctx: MigrationContext, port: number): Promise<PageChannel> {
    const why = this.settings.mode === 'relay' ? 'configured to relay' : await this.whyNotDirect(ctx, port);
    if (typeof why !== 'string') return why;
    const relay = await this.shell.relayPort(ctx.source, ctx.destination, port).catch((error: Error) => {
      throw new Error(`cannot open the SSH page relay ${ctx.source.id} -> ${ctx.destination.id}: ${error.message}`);
    });
    ctx.migration.transportRoute = `relay: through the orchestrator's SSH connections (two hops); not direct: ${why}`;
    return {
      listen: { address: '127.0.0.1', port },
      connect: { address: '127.0.0.1', port: relay.sourcePort },
      bytesRelayed: () => relay.bytes(),
      close: () => relay.close(),
    };
  }

  /** The direct channel, or why this pair gets none. */
  private async whyNotDirect(ctx: MigrationContext, port: number): Promise<PageChannel | string> {
    const pair = `${ctx.source.id}>${ctx.destination.id}|${ctx.destination.dataAddress ?? ctx.destination.host}`;
    const failed = this.directFailed.get(pair);
    if (failed && this.now() - failed.at < this.settings.retryDirectAfterMs) return `${failed.why} (cached)`;
    try {
      const hostKey = /^SHA256:/.test(ctx.destination.hostKey)
        ? await this.shell.verifiedHostKey(ctx.destination)
        : ctx.destination.hostKey;
      if (!hostKey) throw new Error(`only a fingerprint of ${ctx.destination.id}'s host key is known`);
      // The source listens on the same port number as the page-server: both are loopback, on different nodes.
      const tunnel = await openDirectTunnel(
        this.shell,
        ctx.source,
        ctx.destination,
        { sourcePort: port, destPort: port },
        hostKey,
        { authorizedKeysFile: this.settings.authorizedKeysFile },
      );
      this.directFailed.delete(pair);
      ctx.migration.transportRoute = tunnel.route;
      return {
        listen: { address: '127.0.0.1', port },
        connect: { address: '127.0.0.1', port: tunnel.sourcePort },
        close: () => tunnel.close(),
      };
    } catch (error) {
      const why = (error as Error).message;
      // A port taken on the source says nothing about the pair: try directly again next time.
      if (!/in use|cannot listen|forwarding failed/i.test(why)) this.directFailed.set(pair, { at: this.now(), why });
      return why;
    }
  }
}
