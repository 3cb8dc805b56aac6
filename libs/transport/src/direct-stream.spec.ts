/**
 * The orchestrator's side of a node-to-node stream, with the nodes scripted: the listener must say it is bound
 * before the sender is even opened, and a copy counts only when both ends' sha256 agree. The commands
 * themselves are in the golden table and ran for real in test/containers.e2e-spec.ts.
 */
import { ScriptedNodeShell, aNode } from '@spotlift/testing';
import { UNPACK_TAR, tarCommand } from '@spotlift/node-commands';
import { PassThrough } from 'node:stream';
import { COLLECT_GAP, COLLECT_HEAD_BYTES, COLLECT_TAIL_BYTES, DirectStreamer, collect } from './direct-stream.js';
import { TransferError } from './stream-types.js';

const A = aNode('node-a');
const B = aNode('node-b');
const SHA = 'a'.repeat(64);
const route = {
  listen: { address: '10.0.0.3', port: 27100 },
  connect: { address: '10.0.0.3', port: 27100 },
  timeoutS: 60,
};
const receive = { dir: '/img/m1/dst', unpack: UNPACK_TAR, what: 'archive' };

function arm(shell: ScriptedNodeShell) {
  return new DirectStreamer(shell).armPipe(A, tarCommand('/img/m1/src', []), B, receive, route);
}

describe('DirectStreamer', () => {
  it('copies: the listener bound first, the sender started by go, bytes from the receiver, hashes equal', async () => {
    const shell = new ScriptedNodeShell()
      .on({
        node: 'node-b',
        match: /busybox nc -l -p 27100/,
        reply: { stdout: `SPOTLIFT_LISTENING\nSPOTLIFT_RECEIVED 1234 ${SHA}\n` },
      })
      .on({ node: 'node-a', match: /\/dev\/tcp\/10\.0\.0\.3\/27100/, reply: { stdout: `SPOTLIFT_SENT ${SHA}\n` } });
    const armed = await arm(shell);
    expect(shell.ran('node-a', /dev\/tcp/)).toEqual([]); // armed, not run
    const r = await armed.start();
    expect(r).toMatchObject({ bytes: 1234, sha256: SHA });
    expect(shell.ran('node-a', /dev\/tcp/)).toHaveLength(1);
  });

  it('keeps only the head and the tail of what a node prints (a flood of 2 MiB is not held)', async () => {
    const stdout = new PassThrough();
    const out = collect({ stdout });
    const ended = new Promise((resolve) => stdout.on('end', resolve));
    stdout.write(`SPOTLIFT_LISTENING\n`);
    for (let i = 0; i < 32; i++) stdout.write('x'.repeat(64 * 1024));
    stdout.end(`SPOTLIFT_RECEIVED 1234 ${SHA}\n`);
    await ended;
    const text = out();
    expect(text.length).toBe(COLLECT_HEAD_BYTES + COLLECT_GAP.length + COLLECT_TAIL_BYTES);
    expect(text.startsWith('SPOTLIFT_LISTENING\n')).toBe(true);
    expect(text.endsWith(`SPOTLIFT_RECEIVED 1234 ${SHA}\n`)).toBe(true);
  });

  it('marks where it dropped output, so a line cut by the gap is not read as one with the next', async () => {
    const stdout = new PassThrough();
    const out = collect({ stdout });
    const ended = new Promise((resolve) => stdout.on('end', resolve));
    // the head ends in the middle of a line, the tail starts in the middle of another
    stdout.write('y'.repeat(COLLECT_HEAD_BYTES - 'SPOTLIFT_RECEI'.length) + 'SPOTLIFT_RECEI');
    stdout.end('z'.repeat(COLLECT_TAIL_BYTES) + `VED 1 ${SHA}\n`.slice(-COLLECT_TAIL_BYTES));
    await ended;
    expect(out()).not.toMatch(/^SPOTLIFT_RECEI.*VED/m);
    expect(out()).toContain(COLLECT_GAP);
  });

  it('holds everything, unmarked, while a node prints less than the bound', async () => {
    const stdout = new PassThrough();
    const out = collect({ stdout });
    const ended = new Promise((resolve) => stdout.on('end', resolve));
    const first = `SPOTLIFT_LISTENING\n${'w'.repeat(30_000)}\n`;
    const second = `${'v'.repeat(30_000)}\nSPOTLIFT_RECEIVED 9 ${SHA}\n`;
    stdout.write(first);
    stdout.end(second);
    await ended;
    expect(out()).toBe(first + second);
  });

  it('fails the copy when the two ends hashed different bytes', async () => {
    const shell = new ScriptedNodeShell()
      .on({
        node: 'node-b',
        match: /busybox nc/,
        reply: { stdout: `SPOTLIFT_LISTENING\nSPOTLIFT_RECEIVED 1234 ${'b'.repeat(64)}\n` },
      })
      .on({ node: 'node-a', match: /dev\/tcp/, reply: { stdout: `SPOTLIFT_SENT ${SHA}\n` } });
    const armed = await arm(shell);
    await expect(armed.start()).rejects.toThrow(/checksum mismatch on node-b: sent a{64}, received b{64}/);
  });

  it('fails the copy when the sender failed (the connection broke), whatever the receiver says', async () => {
    const shell = new ScriptedNodeShell()
      .on({
        node: 'node-b',
        match: /busybox nc/,
        reply: { stdout: `SPOTLIFT_LISTENING\nSPOTLIFT_RECEIVED 10 ${SHA}\n` },
      })
      .on({
        node: 'node-a',
        match: /dev\/tcp/,
        reply: { code: 112, stderr: 'the connection to 10.0.0.3:27100 broke (1)' },
      });
    const armed = await arm(shell);
    const e = await armed.start().catch((x: Error) => x);
    expect(e).toBeInstanceOf(TransferError);
    expect((e as Error).message).toMatch(/sending failed \(112\): the connection to 10\.0\.0\.3:27100 broke/);
  });

  it('refuses to arm when the listener does not come up (port in use): no sender is opened', async () => {
    const shell = new ScriptedNodeShell().on({
      node: 'node-b',
      match: /busybox nc/,
      reply: { code: 97, stderr: 'port 27100 is in use on this node' },
    });
    await expect(arm(shell)).rejects.toThrow(
      /listener on node-b port 27100 ended before a connection \(97\): port 27100 is in use/,
    );
    expect(shell.ran('node-a', /./)).toEqual([]);
  });

  it('tls: the receiver serves with the destination certificate, the sender checks it', async () => {
    const shell = new ScriptedNodeShell()
      .on({
        node: 'node-b',
        match: /openssl s_server/,
        reply: { stdout: `SPOTLIFT_LISTENING\nSPOTLIFT_RECEIVED 5 ${SHA}\n` },
      })
      .on({ node: 'node-a', match: /openssl s_client/, reply: { stdout: `SPOTLIFT_SENT ${SHA}\n` } });
    const files = (n: string) => ({ cacert: `/t/${n}/ca.pem`, cert: `/t/${n}/cert.pem`, key: `/t/${n}/key.pem` });
    const armed = await new DirectStreamer(shell).armPipe(A, tarCommand('/img/m1/src', []), B, receive, {
      ...route,
      tls: { server: files('b'), client: files('a') },
    });
    await armed.start();
    expect(shell.ran('node-b', /s_server/)[0]).toContain(
      '-cert /t/b/cert.pem -key /t/b/key.pem -CAfile /t/b/ca.pem -Verify 1',
    );
    expect(shell.ran('node-a', /s_client/)[0]).toContain(
      '-cert /t/a/cert.pem -key /t/a/key.pem -CAfile /t/a/ca.pem -verify_return_error -verify_ip 10.0.0.3',
    );
  });
});
