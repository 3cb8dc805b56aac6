/**
 * The relay's own logic (pairing connections, counting bytes both ways, half-close, close()) with in-memory
 * streams; the ssh2 forwarding it sits on is exercised with real sshd nodes in test/transports.e2e-spec.ts.
 */
import { Duplex, PassThrough } from 'node:stream';
import { type RelayConnector, type RelayListener, startRelay } from './ssh-relay.js';

/** One end of an in-memory socket pair: writes go to the peer's readable side. */
function socketPair(): [Duplex, Duplex] {
  const ab = new PassThrough();
  const ba = new PassThrough();
  const a = Duplex.from({ readable: ba, writable: ab });
  const b = Duplex.from({ readable: ab, writable: ba });
  // Destroying one end aborts the shared buffers under the other, as a reset does to a socket.
  for (const end of [a, b]) end.on('error', () => undefined);
  return [a, b];
}

class FakeListener implements RelayListener {
  private onConnection: ((accept: () => Duplex, reject: () => void) => void) | undefined;
  stopped = 0;
  rejected = 0;
  listen(onConnection: (accept: () => Duplex, reject: () => void) => void) {
    this.onConnection = onConnection;
    return Promise.resolve({ port: 40123, stop: () => Promise.resolve(void this.stopped++) });
  }
  /** A client connects to the source port; returns the client's end. `halfOpen` false: a plain TCP accept. */
  connectClient(halfOpen = true): Duplex {
    const [client, relayEnd] = socketPair();
    relayEnd.allowHalfOpen = halfOpen;
    this.onConnection!(
      () => relayEnd,
      () => this.rejected++,
    );
    return client;
  }
}

class FakeConnector implements RelayConnector {
  readonly servers: Duplex[] = [];
  readonly ports: number[] = [];
  fail = false;
  connect(port: number): Promise<Duplex> {
    if (this.fail) return Promise.reject(new Error('connect refused'));
    this.ports.push(port);
    const [relayEnd, server] = socketPair();
    this.servers.push(server);
    return Promise.resolve(relayEnd);
  }
}

const tick = () => new Promise((r) => setImmediate(r));
/** Reads `bytes` bytes without ending the stream (async iteration would destroy it on break). */
function read(s: Duplex, bytes: number): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let n = 0;
    const onData = (c: Buffer) => {
      chunks.push(c);
      n += c.length;
      if (n >= bytes) {
        s.off('data', onData);
        s.pause();
        resolve(Buffer.concat(chunks));
      }
    };
    s.on('data', onData);
  });
}

describe('startRelay', () => {
  it('pipes each connection to the destination port and counts bytes both ways', async () => {
    const listener = new FakeListener();
    const connector = new FakeConnector();
    const relay = await startRelay(listener, connector, 27123);
    expect(relay.sourcePort).toBe(40123);

    const client = listener.connectClient();
    await tick();
    expect(connector.ports).toEqual([27123]);
    const server = connector.servers[0]!;
    const pages = Buffer.alloc(1 << 20, 7);
    client.write(pages);
    expect((await read(server, pages.length)).equals(pages)).toBe(true);
    server.write(Buffer.from('ack'));
    expect((await read(client, 3)).toString()).toBe('ack');
    expect(relay.bytes()).toBe(pages.length);
    expect(relay.bytesBack()).toBe(3);

    // A second connection through the same relay adds to the counts.
    const client2 = listener.connectClient();
    await tick();
    client2.write(Buffer.alloc(100));
    await read(connector.servers[1]!, 100);
    expect(relay.bytes()).toBe(pages.length + 100);
    await relay.close();
  });

  it('forwards the client half-close to the destination (CRIU ends its stream that way)', async () => {
    const listener = new FakeListener();
    const connector = new FakeConnector();
    const relay = await startRelay(listener, connector, 1);
    const client = listener.connectClient();
    await tick();
    const server = connector.servers[0]!;
    const ended = new Promise<void>((resolve) => server.once('end', resolve));
    server.resume();
    client.end(Buffer.from('last'));
    await ended;
    expect(relay.bytes()).toBe(4);
    await relay.close();
  });

  it('bytes still waiting for the destination (an SSH window) survive the client closing without half-open', async () => {
    // The destination side as an ssh2 channel behaves: a big write buffer, drained slowly as windows open;
    // destroying it drops whatever it still holds.
    let delivered = 0;
    let ended = false;
    const channel = new Duplex({
      highWaterMark: 2 * 2 ** 20,
      read() {},
      write(chunk: Buffer, _enc, done) {
        setTimeout(() => {
          delivered += chunk.length;
          done();
        }, 1);
      },
      final(done) {
        ended = true;
        done();
      },
    });
    const listener = new FakeListener();
    const relay = await startRelay(listener, { connect: () => Promise.resolve(channel) }, 1);
    // Like a TCP socket accepted without allowHalfOpen: its end closes as soon as the client's EOF arrives.
    const client = listener.connectClient(false);
    const payload = Buffer.alloc(2 ** 20, 7);
    client.resume();
    client.end(payload);
    // Finished (everything written, then ended) or destroyed (the rest dropped), whichever comes first.
    await new Promise<void>((resolve) => channel.once('finish', resolve).once('close', resolve));
    expect(delivered).toBe(payload.length);
    expect(ended).toBe(true);
    await relay.close();
  });

  it('close() stops listening, ends open connections, refuses new ones, and is idempotent', async () => {
    const listener = new FakeListener();
    const connector = new FakeConnector();
    const relay = await startRelay(listener, connector, 1);
    const client = listener.connectClient();
    await tick();
    const server = connector.servers[0]!;
    const closed = Promise.all([
      new Promise((r) => client.once('close', r)),
      new Promise((r) => server.once('close', r)),
    ]);
    client.resume();
    server.resume();
    await Promise.all([relay.close(), relay.close()]);
    expect(listener.stopped).toBe(1);
    await closed;
    listener.connectClient();
    expect(listener.rejected).toBe(1);
  });

  it('drops the incoming connection when the destination cannot be reached', async () => {
    const listener = new FakeListener();
    const connector = new FakeConnector();
    connector.fail = true;
    const relay = await startRelay(listener, connector, 1);
    const client = listener.connectClient();
    client.resume();
    await new Promise((r) => client.once('close', r));
    expect(relay.bytes()).toBe(0);
    await relay.close();
  });
});
