import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';

/** A fault to inject into the next matching requests. */
export interface FakeFault {
  /** Only requests whose pathname starts with this (default: all). */
  path?: string;
  method?: string;
  /** Answer with this status instead of the normal handler (e.g. 401, 503, or 200 with a bad body). */
  status?: number;
  body?: string;
  headers?: Record<string, string>;
  /** Wait this long before answering (normally, or with `status`): a slow metadata service. */
  delayMs?: number;
  /** Destroy the connection without an answer. */
  drop?: boolean;
  /** How many requests it applies to (default: until cleared). */
  times?: number;
}

/** One request as received, for assertions. */
export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
  /** Status sent back (set when the response finishes; undefined while a hanging GET waits). */
  status?: number;
}

/**
 * Base of the fake metadata servers: a real node:http server on 127.0.0.1 and an ephemeral port, with
 * request recording, fault injection and connection tracking (so tests can drop connections and close
 * promptly). Subclasses implement `handle`.
 */
export abstract class FakeHttpServer {
  /** Every request received, oldest first. */
  readonly requests: RecordedRequest[] = [];
  private server?: Server;
  private readonly sockets = new Set<Socket>();
  private faults: (FakeFault & { left: number })[] = [];

  /** Base URL once started, e.g. `http://127.0.0.1:40123`. */
  get url(): string {
    const address = this.server?.address() as AddressInfo | null | undefined;
    if (!address) throw new Error(`${this.constructor.name} is not started`);
    return `http://${address.address}:${address.port}`;
  }

  /**
   * Listens on `host` (default loopback; e.g. the lab bridge 10.77.0.1 so a lab node's namespace can reach
   * the fake, as a node reaches its link-local metadata service) and `port` (default ephemeral).
   */
  async start(opts: { host?: string; port?: number } = {}): Promise<this> {
    const server = createServer((req, res) => void this.dispatch(req, res));
    server.on('connection', (socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
    });
    this.server = server;
    return this;
  }

  async stop(): Promise<void> {
    const server = this.server;
    if (!server) return;
    this.server = undefined;
    this.onStop();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Injects a fault; faults are checked in the order they were added. */
  injectFault(fault: FakeFault): void {
    this.faults.push({ ...fault, left: fault.times ?? Number.POSITIVE_INFINITY });
  }

  clearFaults(): void {
    this.faults = [];
  }

  /** Requests received, optionally only for a pathname (exact) and method. */
  requestCount(path?: string, method?: string): number {
    return this.requests.filter(
      (r) => (path === undefined || r.path === path) && (method === undefined || r.method === method),
    ).length;
  }

  /** Destroys every open connection (keep-alive and hanging ones included). */
  dropConnections(): void {
    for (const socket of this.sockets) socket.destroy();
  }

  /** Serves one request; `body` is the full request body. */
  protected abstract handle(req: IncomingMessage, res: ServerResponse, body: string, url: URL): void | Promise<void>;

  /** Called on stop, before connections are destroyed (release waiters, timers). */
  protected onStop(): void {}

  private async dispatch(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const url = new URL(req.url ?? '/', 'http://fake');
    const method = req.method ?? 'GET';
    const record: RecordedRequest = {
      method,
      path: url.pathname,
      query: url.searchParams,
      headers: req.headers,
      body,
      at: Date.now(),
    };
    this.requests.push(record);
    res.on('finish', () => (record.status = res.statusCode));
    const fault = this.faults.find(
      (f) =>
        f.left > 0 &&
        (f.path === undefined || url.pathname.startsWith(f.path)) &&
        (f.method === undefined || f.method === method),
    );
    if (fault) {
      fault.left--;
      if (fault.delayMs) await new Promise((r) => setTimeout(r, fault.delayMs));
      if (fault.drop) {
        req.socket.destroy();
        return;
      }
      if (fault.status !== undefined) {
        res.writeHead(fault.status, { 'Content-Type': 'text/plain; charset=utf-8', ...fault.headers });
        res.end(fault.body ?? '');
        return;
      }
    }
    try {
      await this.handle(req, res, body, url);
    } catch (err) {
      if (!res.headersSent) res.writeHead(500, { 'Content-Type': 'text/plain' });
      res.end(`fake server error: ${err instanceof Error ? err.message : String(err)}`);
    }
  }
}
