/**
 * Hostile peers against the real ssh2 client: TCP servers on 127.0.0.1 that stay silent, reset the
 * connection, close in the middle of the banner, send garbage, or stop after a valid banner. Each call must
 * reject with NodeUnreachableError saying why, nothing may escape as an uncaught exception or an unhandled
 * 'error' event (ssh2 reports a timed-out handshake twice), and the failed connection must be forgotten.
 * The same shell against the lab's real sshd (output cap, channel limit): test/hostile-peers.e2e-spec.ts.
 */
import { randomBytes } from 'node:crypto';
import { utils } from 'ssh2';
import { NodeUnreachableError, type NodeTarget } from '@spotlift/domain';
import { HostilePeers } from '@spotlift/testing';
import { SshNodeShell } from './ssh-node-shell.js';

const PIN = 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBTQnxtEqyTXwlycunQpUvZvFmT1i/iyaGiR026JtSTN';
const hostile = new HostilePeers();
const escaped: unknown[] = [];
const onEscape = (error: unknown) => escaped.push(error);

function node(port: number): NodeTarget {
  return { id: `hostile-${port}`, host: '127.0.0.1', port, user: 'root', hostKey: PIN };
}

/** Lets the late events of a dead connection (a second error, close) fire before anything is asserted. */
const settle = () => new Promise((r) => setTimeout(r, 300));

let shell: SshNodeShell;

/**
 * ssh2 1.17 generates an ed25519 key it cannot parse back about once in 250 (measured: 8 of 2000,
 * "Malformed OpenSSH private key"); a CI run hit it. Keep generating until ssh2 reads its own key.
 */
function parseableClientKey(): Buffer {
  for (;;) {
    const key = Buffer.from(utils.generateKeyPairSync('ed25519').private);
    if (!(utils.parseKey(key) instanceof Error)) return key;
  }
}

beforeAll(() => {
  process.on('uncaughtException', onEscape);
  process.on('unhandledRejection', onEscape);
  shell = new SshNodeShell({ privateKey: parseableClientKey(), readyTimeoutMs: 400, keepaliveIntervalMs: 200 });
});

afterAll(async () => {
  await shell.close();
  await hostile.close();
  process.off('uncaughtException', onEscape);
  process.off('unhandledRejection', onEscape);
});

const peers: [string, () => Promise<number>, RegExp][] = [
  ['a closed port', () => hostile.closedPort(), /ECONNREFUSED/],
  [
    'a silent peer (accepts, never speaks)',
    () => hostile.peer(() => undefined),
    /timed out while waiting for handshake/i,
  ],
  [
    'a peer that resets at once',
    () => hostile.peer((s) => s.resetAndDestroy()),
    /ECONNRESET|lost before handshake|closed/i,
  ],
  ['a peer that closes mid-banner', () => hostile.peer((s) => s.end('SSH-2.')), /lost before handshake|closed/i],
  [
    'a peer that sends garbage',
    () =>
      hostile.peer((s) => s.end(Buffer.concat([Buffer.from('HTTP/1.1 400 Bad Request\r\n\r\n'), randomBytes(4096)]))),
    /.+/,
  ],
  [
    'a peer that sends a banner, then garbage',
    () => hostile.peer((s) => s.write(Buffer.concat([Buffer.from('SSH-2.0-OpenSSH_9.2\r\n'), randomBytes(4096)]))),
    /.+/,
  ],
  [
    'a peer that sends a banner, then nothing',
    () => hostile.peer((s) => s.write('SSH-2.0-OpenSSH_9.2\r\n')),
    /timed out/i,
  ],
  ['a peer that sends a banner, then closes', () => hostile.peer((s) => s.end('SSH-2.0-OpenSSH_9.2\r\n')), /closed/i],
];

describe('SshNodeShell against hostile peers', () => {
  it.each(peers)('%s: every call rejects with the reason, nothing escapes', async (_label, start, reason) => {
    const target = node(await start());
    // Concurrent calls share the one connection attempt and all see its failure.
    const calls = [shell.connect(target), shell.exec(target, 'true'), shell.spawn(target, 'cat')];
    const results = await Promise.allSettled(calls);
    for (const r of results) {
      expect(r.status).toBe('rejected');
      const error = (r as PromiseRejectedResult).reason as Error;
      expect(error).toBeInstanceOf(NodeUnreachableError);
      expect(error.message).toMatch(/cannot be reached over SSH: .+/);
      expect(error.message).toMatch(reason);
    }
    await settle();
    expect(escaped).toEqual([]);
    expect(shell.openConnections).toBe(0);
    // Forgotten, so the next call tries again (and fails again the same way) instead of hanging.
    await expect(shell.exec(target, 'true')).rejects.toBeInstanceOf(NodeUnreachableError);
    await settle();
    expect(escaped).toEqual([]);
  });
});
