import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';

/**
 * TCP "peers" on 127.0.0.1 that behave as a dying or hostile node would (silent, reset, half a banner,
 * garbage): each `peer(behaviour)` is a server whose every connection gets `behaviour`. `close()` ends them all.
 */
export class HostilePeers {
  private readonly servers: Server[] = [];
  private readonly sockets = new Set<Socket>();

  async peer(behaviour: (socket: Socket) => void): Promise<number> {
    const server = createServer((socket) => {
      this.sockets.add(socket);
      socket.on('error', () => undefined);
      socket.on('close', () => this.sockets.delete(socket));
      behaviour(socket);
    });
    this.servers.push(server);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return (server.address() as AddressInfo).port;
  }

  /** A port nothing listens on (bound and closed again). */
  async closedPort(): Promise<number> {
    const port = await this.peer(() => undefined);
    await new Promise((r) => this.servers.pop()!.close(r));
    return port;
  }

  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await Promise.all(this.servers.splice(0).map((s) => new Promise((r) => s.close(r))));
  }
}
