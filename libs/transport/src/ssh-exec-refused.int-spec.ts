/**
 * A server that opens a session channel and then refuses to start the command in it (an `exec` request
 * answered with a failure): what the qemu lab's dropbear did once, under TCG, at a container's commit (a clean-
 * clone CI run: "refused an SSH session channel (Unable to exec)", thrown after 29 ms, the job retried). Nothing
 * ran, so the shell asks again, as for a refused channel, instead of failing the command at once. The real
 * ssh2 client against an ssh2 server on 127.0.0.1 (keys made here, host key pinned).
 */
import { type AddressInfo } from 'node:net';
import { Server, utils } from 'ssh2';
import type { NodeTarget } from '@spotlift/domain';
import { SshChannelRefusedError, SshNodeShell } from './ssh-node-shell.js';

/** ssh2 1.17 makes an ed25519 key it cannot parse back about once in 250: keep one it reads. */
function parseableKey(): { private: Buffer; public: string } {
  for (;;) {
    const pair = utils.generateKeyPairSync('ed25519');
    if (!(utils.parseKey(pair.private) instanceof Error))
      return { private: Buffer.from(pair.private), public: pair.public };
  }
}

/** Refuses the first `refusals` exec requests, then runs each as "prints ok, exits 0"; counts the requests. */
async function refusingServer(refusals: number) {
  const host = parseableKey();
  const seen = { execs: 0 };
  const server = new Server({ hostKeys: [host.private] }, (client) => {
    client.on('authentication', (ctx) => ctx.accept());
    client.on('error', () => undefined);
    client.on('ready', () => {
      client.on('session', (acceptSession) => {
        acceptSession().on('exec', (accept, reject) => {
          seen.execs++;
          if (seen.execs <= refusals) return reject();
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
  const node: NodeTarget = { id: 'dropbear-like', host: '127.0.0.1', port, user: 'root', hostKey: host.public };
  return { node, seen, close: () => new Promise<void>((resolve) => server.close(() => resolve())) };
}

describe('SshNodeShell: a server that refuses to start a command', () => {
  let shell: SshNodeShell;
  let close: (() => Promise<void>) | undefined;

  beforeEach(() => {
    shell = new SshNodeShell({ privateKey: parseableKey().private, readyTimeoutMs: 5_000 });
  });

  afterEach(async () => {
    await shell.close();
    await close?.();
  });

  it('asks again, on the same connection, and the command runs once', async () => {
    const server = await refusingServer(2);
    close = server.close;
    const res = await shell.exec(server.node, 'podman rm -f x');
    expect(res).toMatchObject({ code: 0, stdout: 'ok\n' });
    expect(server.seen.execs).toBe(3);
    expect(shell.openConnections).toBe(1);
  });

  it('fails with the reason, naming a refused start (not MaxSessions), when the server keeps refusing', async () => {
    const server = await refusingServer(Number.MAX_SAFE_INTEGER);
    close = server.close;
    const error = (await shell.exec(server.node, 'true').catch((e: unknown) => e)) as Error;
    expect(error).toBeInstanceOf(SshChannelRefusedError);
    expect(error.message).toMatch(/refused to start a command .*\(Unable to exec\)/);
    expect(error.message).not.toMatch(/MaxSessions/);
    expect(server.seen.execs).toBeGreaterThan(1);
  });
});
