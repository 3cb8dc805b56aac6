import type { CriuTlsOptions } from '@spotlift/criu';
import type { Transport } from '@spotlift/domain';
import type { MigrationContext } from '../engine.types.js';

/**
 * How page traffic gets from the source's `criu dump` to the destination's `criu page-server` (or from the
 * source's lazy-pages server to the destination's daemon). Opened before the freeze, closed after.
 */
export interface PageChannel {
  /** Where the server side (destination page-server) listens. */
  listen: { address: string; port: number };
  /** What the client side (source criu) connects to. */
  connect: { address: string; port: number };
  /** CRIU TLS options per side, when the channel is CRIU's own TLS. */
  tls?: { server: CriuTlsOptions; client: CriuTlsOptions };
  /** Bytes relayed, when the channel can count them (a relay through the orchestrator). */
  bytesRelayed?(): number;
  /** Page traffic over this channel failed: the transport may drop what it cached (e.g. certificates). */
  failed?(error: Error): void;
  close(): Promise<void>;
}

export abstract class PageTransport {
  abstract readonly name: Transport;
  /** `port` is a free-looking port drawn by the engine; a transport may use it on either side. */
  abstract open(ctx: MigrationContext, port: number): Promise<PageChannel>;
}

export function dataAddress(node: { host: string; dataAddress?: string }): string {
  return node.dataAddress ?? node.host;
}

/**
 * The same migration seen from the other end: for page traffic that flows from the destination's side, i.e.
 * post-copy, where the source serves its pages (`dump --lazy-pages`) and the destination's lazy-pages daemon
 * connects to pull them. A transport opened on it listens on the source and is connected to from the
 * destination, with the same certificates, tunnels and relays as the usual direction.
 */
export function reversed(ctx: MigrationContext): MigrationContext {
  return {
    ...ctx,
    source: ctx.destination,
    destination: ctx.source,
    sourceDir: ctx.destinationDir,
    destinationDir: ctx.sourceDir,
  };
}
