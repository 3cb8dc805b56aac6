import type { CriuTlsOptions } from '@spotlift/criu';
import type { DirectRoute, DirectTlsFiles } from '@spotlift/transport';
import type { MigrationContext } from '../engine.types.js';
import type { PodmanOps } from '../node-ops/podman/podman-ops.js';
import type { PageChannel } from '../transports/page-transport.port.js';
import type { PageTransports } from '../transports/page-transports.js';

/**
 * How a container's image and checkpoint archive travel: node to node over the migration's own transport
 * (`direct`: tcp, tls with the nodes' certificates, or the ssh transport's node-to-node tunnel), or relayed
 * through the orchestrator's SSH channels (no `direct`, with the reason). `record` is what the job keeps.
 */
export interface ContainerRoute {
  direct?: DirectRoute;
  record: string;
  /** The route failed before the freeze (a listener that did not come up): the rest goes relayed. */
  fallBack(why: string): void;
  /** A direct stream failed: the transport may drop what it cached (tls: the nodes' certificates). */
  failed(error: Error): void;
  close(): Promise<void>;
}

/** A side's certificate files, when it has all three (openssl checks the peer against the CA). */
function files(t: CriuTlsOptions): DirectTlsFiles | undefined {
  return t.cacert && t.cert && t.key ? { cacert: t.cacert, cert: t.cert, key: t.key } : undefined;
}

/**
 * Decided before any freeze, per migration, in this order: the transport opens a channel for the pair (tls:
 * both nodes' certificates; ssh: the direct tunnel; the ssh transport's own fallback, a relay port on the
 * source, counts as no direct route since it is the orchestrator relaying anyway), then both nodes have the
 * tools of a direct stream (bash on the source, busybox nc or openssl and ss on the destination). Anything
 * missing: the orchestrator relay, with the reason recorded. An unconfigured transport fails the job, as for
 * processes.
 */
export async function openContainerRoute(
  ctx: MigrationContext,
  transports: PageTransports,
  podman: PodmanOps,
  port: number,
  timeoutMs: number,
): Promise<ContainerRoute> {
  const transport = transports.pick(ctx.migration.transport);
  ctx.migration.transport = transport.name;
  const relayed = (why: string): ContainerRoute => ({
    record: `relay: through the orchestrator's SSH channels; not direct: ${why}`,
    fallBack: () => undefined,
    failed: () => undefined,
    close: () => Promise.resolve(),
  });
  let channel: PageChannel;
  try {
    channel = await transport.open(ctx, port);
  } catch (error) {
    return relayed(`the ${transport.name} channel could not be opened: ${(error as Error).message}`);
  }
  if (channel.bytesRelayed) {
    await channel.close();
    return relayed(`the ssh transport relays this pair (${ctx.migration.transportRoute ?? 'no direct tunnel'})`);
  }
  const missing = await podman
    .directProblem(ctx.source, ctx.destination, !!channel.tls)
    .catch((error: Error) => `the tool check failed: ${error.message}`);
  if (missing) {
    await channel.close();
    return relayed(missing);
  }
  const tls = channel.tls && {
    server: files(channel.tls.server),
    client: files(channel.tls.client),
  };
  if (tls && (!tls.server || !tls.client)) {
    await channel.close();
    return relayed('the TLS channel has no CA certificate to check the other node against');
  }
  const via = transport.name === 'ssh' ? ` (${ctx.migration.transportRoute ?? 'tunnel'})` : '';
  const route: ContainerRoute = {
    direct: {
      listen: channel.listen,
      connect: channel.connect,
      ...(tls ? { tls: { server: tls.server!, client: tls.client! } } : {}),
      timeoutS: timeoutMs / 1000,
    },
    record: `direct ${transport.name}: ${ctx.source.id} -> ${ctx.destination.id} listening on ${channel.listen.address}:${channel.listen.port}${via}`,
    fallBack: (why) => {
      channel.failed?.(new Error(why));
      delete route.direct;
      route.record = `relay: through the orchestrator's SSH channels; the direct ${transport.name} route failed before the freeze: ${why}`;
    },
    failed: (error) => channel.failed?.(error),
    close: () => channel.close(),
  };
  return route;
}
