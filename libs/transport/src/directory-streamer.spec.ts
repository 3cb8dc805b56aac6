/**
 * A relayed stream with a seal (DirectoryStreamer.armPipe's `seal`: an encryption the orchestrator does), the
 * nodes scripted: the guard judges the sender's bytes, the destination gets the sealed ones, and the sha256 the
 * copy reports and compares with the destination's is of what was stored. Relays for real: files-guard.int-spec.ts.
 */
import { createHash } from 'node:crypto';
import { ScriptedNodeShell, aNode, archive, member } from '@spotlift/testing';
import { UNPACK_TAR, tarCommand } from '@spotlift/node-commands';
import { DirectoryStreamer } from './directory-streamer.js';

const A = aNode('node-a');
const C = aNode('node-c');
const TAR = archive(
  member({ name: 'srv/data/', type: '5' }),
  member({ name: 'srv/data/config.txt', data: 'workload settings\n' }),
);
/** A stand-in for a cipher: a header, then every byte flipped. */
const seal = () => ({ header: Buffer.from('SEALED'), update: (c: Buffer) => Buffer.from(c.map((b) => b ^ 0xff)) });
const sealed = Buffer.concat([Buffer.from('SEALED'), Buffer.from(TAR.map((b) => b ^ 0xff))]);
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

function relay(receivedSha: string, roots = ['/srv/data']) {
  const shell = new ScriptedNodeShell()
    .on({ node: 'node-a', match: /tar -C /, reply: { stdout: TAR.toString('latin1') } })
    .on({ node: 'node-c', match: /sha256sum < /, reply: { stdout: `${receivedSha}\n` } });
  return new DirectoryStreamer(shell).armPipe(A, tarCommand('/', []), C, {
    dir: '/ckpt/wl-1/cp-1',
    unpack: UNPACK_TAR,
    what: 'declared files',
    guard: { roots },
    seal: seal(),
  });
}

describe('DirectoryStreamer.armPipe with a seal', () => {
  it('the guard passes the plain tar; the destination gets header + sealed bytes, hashed as stored', async () => {
    const r = await (await relay(sha(sealed))).start();
    expect(r.sha256).toBe(sha(sealed));
    expect(r.bytes).toBe(sealed.length);
  });

  it('the guard still judges the plain bytes: a member outside the roots is refused, sealed or not', async () => {
    await expect((await relay(sha(sealed), ['/srv/other'])).start()).rejects.toThrow(/refused by the orchestrator/);
  });
});
