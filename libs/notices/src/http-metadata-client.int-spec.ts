/**
 * HttpMetadataClient against real HTTP servers on 127.0.0.1 that misbehave: a body without end, a declared
 * body far too large, a connection reset in the middle of the body or before any answer, a body that stalls.
 * Each request rejects with MetadataTransportError saying why, memory stays bounded, nothing escapes.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { HttpMetadataClient } from './http-metadata-client.adapter.js';
import { MetadataTransportError } from './metadata-client.port.js';

let server: Server;
let base: string;
const sockets = new Set<Socket>();
const escaped: unknown[] = [];
const onEscape = (e: unknown) => escaped.push(e);
const CHUNK = Buffer.alloc(64 * 1024, 'x');

const routes: Record<string, (req: IncomingMessage, res: ServerResponse) => void> = {
  '/ok': (_req, res) => res.end('{"action":"terminate"}'),
  // Writes until the client goes away: 64 KiB chunks, no Content-Length.
  '/flood': (_req, res) => {
    const more = () => {
      while (!res.destroyed && res.write(CHUNK));
      if (!res.destroyed) res.once('drain', more);
    };
    more();
  },
  '/declared-huge': (_req, res) => {
    res.writeHead(200, { 'content-length': String(2 ** 32) });
    res.write(CHUNK);
  },
  '/reset-mid-body': (req, res) => {
    res.writeHead(200, { 'content-length': '100000' });
    res.write('partial', () => (req.socket as Socket & { resetAndDestroy(): void }).resetAndDestroy());
  },
  '/reset-at-once': (req) => (req.socket as Socket & { resetAndDestroy(): void }).resetAndDestroy(),
  '/stall-mid-body': (_req, res) => {
    res.writeHead(200, { 'content-length': '100000' });
    res.write('partial');
  },
};

beforeAll(async () => {
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  server = createServer((req, res) => {
    const route = routes[req.url ?? ''];
    if (route) route(req, res);
    else res.writeHead(404).end();
  });
  server.on('connection', (s) => {
    sockets.add(s);
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterAll(async () => {
  for (const s of sockets) s.destroy();
  await new Promise((r) => server.close(r));
  process.off('uncaughtException', onEscape);
  process.off('unhandledRejection', onEscape);
});

describe('HttpMetadataClient against misbehaving servers', () => {
  const client = () => new HttpMetadataClient({ baseUrl: base, defaultTimeoutMs: 1_500, maxBodyBytes: 256 * 1024 });

  it('reads a normal answer', async () => {
    expect(await client().get('/ok')).toMatchObject({ status: 200, body: '{"action":"terminate"}' });
  });

  it('stops reading a body without end at the limit, with bounded memory', async () => {
    const before = process.memoryUsage().rss;
    const error = await client()
      .get('/flood', undefined, { timeoutMs: 30_000 })
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MetadataTransportError);
    expect((error as Error).message).toMatch(/exceeds the 262144-byte limit/);
    expect((error as MetadataTransportError).timedOut).toBe(false);
    expect(process.memoryUsage().rss - before).toBeLessThan(64 * 2 ** 20);
  });

  it.each([
    ['a declared body over the limit', '/declared-huge', /exceeds the 262144-byte limit/, false],
    ['a reset in the middle of the body', '/reset-mid-body', /.+/, false],
    ['a reset before any answer', '/reset-at-once', /.+/, false],
    ['a body that stalls', '/stall-mid-body', /timed out after 1500 ms/, true],
  ])('rejects %s with MetadataTransportError', async (_label, path, message, timedOut) => {
    const error = await client()
      .get(path)
      .catch((e: unknown) => e);
    expect(error).toBeInstanceOf(MetadataTransportError);
    expect((error as Error).message).toMatch(message);
    expect((error as MetadataTransportError).timedOut).toBe(timedOut);
    await new Promise((r) => setTimeout(r, 100));
    expect(escaped).toEqual([]);
  });
});
