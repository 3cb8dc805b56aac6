import type { Duplex } from 'node:stream';
import type { Client, ClientChannel, TcpConnectionDetails } from 'ssh2';
import type { PortRelay } from './node-shell.port.js';

/**
 * Page traffic through SSH, for nodes that cannot reach each other directly. Design: relayed by the
 * orchestrator, which already holds an authenticated ssh2 connection to every node (no node-to-node keys,
 * nothing listening on a node's public address):
 *
 *   source criu dump --> 127.0.0.1:P on the source (its sshd, `tcpip-forward`, i.e. ssh2 forwardIn)
 *     --> forwarded-tcpip channel to the orchestrator --> direct-tcpip channel (forwardOut) to the
 *     destination's sshd --> 127.0.0.1:Q on the destination, where the page-server listens.
 *
 * Both listeners are on loopback inside each node's network namespace. Every byte is encrypted twice
 * (source sshd -> orchestrator, orchestrator -> destination sshd) and crosses the orchestrator once: the
 * price of needing no direct route. Bytes are counted in both directions for the job's record.
 */

/** The listening side: where incoming connections appear (the source's sshd, in production). */
export interface RelayListener {
  /** Starts listening; each incoming connection is offered to `onConnection`. */
  listen(
    onConnection: (accept: () => Duplex, reject: () => void) => void,
  ): Promise<{ port: number; stop(): Promise<void> }>;
}

/** The connecting side: opens a stream to a port (on the destination's loopback, in production). */
export interface RelayConnector {
  connect(port: number): Promise<Duplex>;
}

/** Pipes every connection accepted by `listener` to a new connection of `connector` to `destPort`. */
export async function startRelay(
  listener: RelayListener,
  connector: RelayConnector,
  destPort: number,
): Promise<PortRelay> {
  let forward = 0;
  let back = 0;
  let closed = false;
  const open = new Set<Duplex>();
  const track = (s: Duplex) => {
    open.add(s);
    s.once('close', () => open.delete(s));
  };
  const bound = await listener.listen((accept, reject) => {
    if (closed) {
      reject();
      return;
    }
    let inbound: Duplex;
    try {
      inbound = accept();
    } catch {
      return; // the source's connection went away under us: nothing to relay
    }
    track(inbound);
    // Swallowed here: a broken relay shows up to CRIU as a broken connection, which it reports itself.
    inbound.on('error', () => inbound.destroy());
    connector.connect(destPort).then(
      (outbound) => {
        track(outbound);
        outbound.on('error', () => outbound.destroy());
        if (closed || inbound.destroyed) {
          outbound.destroy();
          inbound.destroy();
          return;
        }
        inbound.on('data', (chunk: Buffer) => (forward += chunk.length));
        outbound.on('data', (chunk: Buffer) => (back += chunk.length));
        // pipe() keeps backpressure (SSH windows) and forwards EOF, so CRIU's half-close reaches the peer.
        inbound.pipe(outbound);
        outbound.pipe(inbound);
        // A side that ended cleanly has had pipe() end the other, which closes once its buffered bytes are
        // through (destroying it now would drop them: a peer without half-open closes right after its last
        // write); a side that broke takes the other down at once.
        inbound.once('close', () => inbound.readableEnded || outbound.destroy());
        outbound.once('close', () => outbound.readableEnded || inbound.destroy());
      },
      () => inbound.destroy(),
    );
  });
  let stopping: Promise<void> | undefined;
  return {
    sourcePort: bound.port,
    bytes: () => forward,
    bytesBack: () => back,
    close(): Promise<void> {
      closed = true;
      stopping ??= bound.stop().finally(() => {
        for (const s of open) s.destroy();
        open.clear();
      });
      return stopping;
    },
  };
}

/** ssh2: a remote forward (`tcpip-forward`) on the node's sshd, bound to its 127.0.0.1 and a port it picks. */
export function sshRemoteListener(client: Client, bindAddress = '127.0.0.1'): RelayListener {
  return {
    listen(onConnection) {
      return new Promise((resolve, reject) => {
        try {
          client.forwardIn(bindAddress, 0, (error, port) => {
            if (error) {
              reject(new Error(`remote forward on ${bindAddress}:0 refused: ${error.message}`));
              return;
            }
            // The connection is pooled and may carry other relays: take only this port's connections.
            const handler = (info: TcpConnectionDetails, accept: () => ClientChannel, rejectConn: () => void) => {
              if (info.destPort === port) onConnection(accept, rejectConn);
            };
            client.on('tcp connection', handler);
            resolve({
              port,
              stop: () =>
                new Promise<void>((done) => {
                  client.off('tcp connection', handler);
                  try {
                    client.unforwardIn(bindAddress, port, () => done());
                  } catch {
                    done(); // the connection is gone, and the forward with it
                  }
                }),
            });
          });
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    },
  };
}

/** ssh2: a `direct-tcpip` channel from the node's sshd to 127.0.0.1:port on that node. */
export function sshLocalConnector(client: Client, host = '127.0.0.1'): RelayConnector {
  return {
    connect(port) {
      return new Promise((resolve, reject) => {
        try {
          client.forwardOut('127.0.0.1', 0, host, port, (error, channel) => (error ? reject(error) : resolve(channel)));
        } catch (error) {
          reject(error instanceof Error ? error : new Error(String(error)));
        }
      });
    },
  };
}
