/**
 * ApiClient.download against a real HTTP server on loopback: the archive streamed to a file, an error answer
 * read as the API's JSON error, an answer that breaks off mid-body rejected (the caller removes the file).
 */
import { createServer, type Server } from 'node:http';
import { Writable } from 'node:stream';
import { ApiClient, ApiError, UnreachableError } from './api-client.js';

let server: Server;
let base: string;

beforeAll(async () => {
  server = createServer((req, res) => {
    if (req.headers.authorization !== 'Bearer t0k') return void res.writeHead(401).end('{"message":"no token"}');
    if (req.url === '/ok') {
      res.writeHead(200, { 'content-type': 'application/x-tar' });
      res.write(Buffer.alloc(70_000, 1));
      return void res.end(Buffer.alloc(30_000, 2));
    }
    if (req.url === '/cut') {
      res.writeHead(200, { 'content-type': 'application/x-tar', 'content-length': '100000' });
      res.write(Buffer.alloc(1000));
      return void setTimeout(() => res.destroy(), 20);
    }
    res
      .writeHead(404, { 'content-type': 'application/json' })
      .end(JSON.stringify({ code: 'not_found', message: "checkpoint 'x' does not exist" }));
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address() as { port: number };
  base = `http://127.0.0.1:${addr.port}`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

function sink() {
  const chunks: Buffer[] = [];
  const out = new Writable({
    write(c: Buffer, _e, cb) {
      chunks.push(c);
      cb();
    },
  });
  return { out, bytes: () => Buffer.concat(chunks) };
}

describe('ApiClient.download', () => {
  it('streams the whole answer into the writable and says how many bytes', async () => {
    const s = sink();
    expect(await new ApiClient(base, 't0k').download('/ok', s.out)).toBe(100_000);
    expect(s.bytes().length).toBe(100_000);
    expect(s.bytes()[99_999]).toBe(2);
  });

  it('an error answer is the API error, nothing written', async () => {
    const s = sink();
    const err = await new ApiClient(base, 't0k').download('/missing', s.out).catch((e: Error) => e);
    expect(err).toBeInstanceOf(ApiError);
    expect((err as ApiError).status).toBe(404);
    expect((err as ApiError).message).toBe("HTTP 404: checkpoint 'x' does not exist");
    expect(s.bytes().length).toBe(0);
  });

  it('an answer that breaks off rejects: the file would be incomplete', async () => {
    await expect(new ApiClient(base, 't0k').download('/cut', sink().out)).rejects.toBeInstanceOf(UnreachableError);
  });
});
