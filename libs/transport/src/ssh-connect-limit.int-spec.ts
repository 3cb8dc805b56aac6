/**
 * The fleet's boot: connects to many nodes at once wait in line for one of `maxConcurrentConnects` handshake
 * slots (1,000 simulated nodes connected at once timed out by the tens of thousands). The real ssh2 client
 * against an ssh2 server on 127.0.0.1 that holds every authentication until a full wave of `LIMIT` handshakes
 * is waiting, then accepts them together: more than LIMIT at once would show in its count, fewer would never
 * fill a wave (and the test would time out). Node ids differ, so each is its own pooled connection.
 */
import { createServer, Socket, type AddressInfo } from 'node:net';
import { jest } from '@jest/globals';
import { Server, utils, type AuthContext } from 'ssh2';
import type { NodeTarget } from '@spotlift/domain';
import { NodeUnreachableError } from '@spotlift/domain';
import { SshNodeShell } from './ssh-node-shell.js';

/** ssh2 1.17 makes an ed25519 key it cannot parse back about once in 250: keep one it reads. */
function parseableKey(): { private: Buffer; public: string } {
  for (;;) {
    const pair = utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(pair.private) instanceof Error))
      return { private: Buffer.from(pair.private), public: pair.public };
  }
}

const LIMIT = 4;
const NODES = 40;

/**
 * Counts handshakes in flight (TCP accepted, not yet authenticated) and releases them a wave at a time; with
 * `hold`, never: every handshake stays in flight until the client gives up.
 */
async function wavesServer(hold = false) {
  const host = parseableKey();
  const seen = { connections: 0, inFlight: 0, maxInFlight: 0, ready: 0 };
  const waiting: AuthContext[] = [];
  let full!: () => void;
  const wave = new Promise<void>((resolve) => (full = resolve));
  const server = new Server({ hostKeys: [host.private] }, (client) => {
    seen.connections++;
    seen.inFlight++;
    seen.maxInFlight = Math.max(seen.maxInFlight, seen.inFlight);
    let counted = true;
    const done = () => {
      if (counted) seen.inFlight--;
      counted = false;
    };
    client.on('error', () => undefined);
    client.on('close', done);
    client.on('authentication', (ctx) => {
      waiting.push(ctx);
      if (waiting.length < LIMIT) return;
      full();
      if (hold) return;
      for (const c of waiting.splice(0)) c.accept();
    });
    client.on('ready', () => {
      done();
      seen.ready++;
      client.on('session', (acceptSession) => {
        acceptSession().on('exec', (accept) => {
          const stream = accept();
          stream.write('ok\n');
          stream.exit(0);
          stream.end();
        });
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  const node = (i: number): NodeTarget => ({
    id: `n-${i}`,
    host: '127.0.0.1',
    port,
    user: 'root',
    hostKey: host.public,
  });
  return { node, seen, wave, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

/** A port nothing listens on (bound, then closed): a connect there is refused at once. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((resolve) => s.listen(0, '127.0.0.1', resolve));
  const port = (s.address() as AddressInfo).port;
  await new Promise<void>((resolve) => s.close(() => resolve()));
  return port;
}

describe('SshNodeShell: concurrent connects are capped', () => {
  let shell: SshNodeShell;
  let close: (() => Promise<void>) | undefined;

  beforeEach(() => {
    shell = new SshNodeShell({
      privateKey: parseableKey().private,
      readyTimeoutMs: 20_000,
      maxConcurrentConnects: LIMIT,
    });
  });

  afterEach(async () => {
    await shell.close();
    await close?.();
  });

  it(`${NODES} nodes at once: at most ${LIMIT} handshakes in flight, every node connected and answering`, async () => {
    const server = await wavesServer();
    close = server.close;
    const results = await Promise.all(Array.from({ length: NODES }, (_, i) => shell.exec(server.node(i), 'true')));
    expect(results.every((r) => r.code === 0 && r.stdout === 'ok\n')).toBe(true);
    expect(server.seen.maxInFlight).toBe(LIMIT);
    expect(server.seen.ready).toBe(NODES);
    expect(shell.openConnections).toBe(NODES);
    expect(shell.connecting).toEqual({ inFlight: 0, queued: 0 });
  });

  it('a failed handshake gives its slot back: unreachable nodes fail, the rest still connect', async () => {
    const server = await wavesServer();
    close = server.close;
    const dead = await closedPort();
    const targets = Array.from({ length: NODES + LIMIT }, (_, i) =>
      i % 11 === 0 && i / 11 < LIMIT ? { ...server.node(i), port: dead } : server.node(i),
    );
    const outcomes = await Promise.allSettled(targets.map((t) => shell.connect(t)));
    const failed = outcomes.flatMap((o) => (o.status === 'rejected' ? [o.reason as Error] : []));
    expect(failed).toHaveLength(LIMIT);
    expect(failed.every((e) => e instanceof NodeUnreachableError)).toBe(true);
    expect(server.seen.ready).toBe(NODES);
    expect(server.seen.maxInFlight).toBeLessThanOrEqual(LIMIT);
    expect(shell.connecting).toEqual({ inFlight: 0, queued: 0 });
  });

  it('connects still waiting in line when the shell closes fail, and start no handshake', async () => {
    const server = await wavesServer(true);
    close = server.close;
    const held = Array.from({ length: LIMIT }, (_, i) => shell.connect(server.node(i)));
    const queued = Array.from({ length: 5 }, (_, i) => shell.connect(server.node(100 + i)));
    expect(shell.connecting).toEqual({ inFlight: LIMIT, queued: 5 });
    await server.wave;
    await shell.close();
    const all = await Promise.allSettled([...held, ...queued]);
    expect(all.map((o) => o.status)).toEqual(Array(LIMIT + 5).fill('rejected'));
    expect(server.seen.connections).toBe(LIMIT);
    expect(shell.connecting).toEqual({ inFlight: 0, queued: 0 });
  });
});

describe('SshNodeShell: each connection', () => {
  it('sets TCP_NODELAY on its socket (an exec is a few small packets: with Nagle they waited on delayed ACKs)', async () => {
    const shell = new SshNodeShell({ privateKey: parseableKey().private, maxConcurrentConnects: LIMIT });
    const server = await wavesServer();
    const noDelay = jest.spyOn(Socket.prototype, 'setNoDelay');
    try {
      await Promise.all(Array.from({ length: LIMIT }, (_, i) => shell.exec(server.node(i), 'true')));
      const port = server.node(0).port;
      const sockets = noDelay.mock.contexts.filter(
        (s, i) => (s as Socket).remotePort === port && noDelay.mock.calls[i]![0] !== false,
      );
      expect(new Set(sockets).size).toBe(LIMIT);
    } finally {
      noDelay.mockRestore();
      await shell.close();
      await server.close();
    }
  });
});
