/**
 * The node lock's lease as the orchestrator drives it (node-lock.ts), over scripted node answers: what it asks
 * the node, how it reads the answers, when it renews and when it stops. The scripts themselves run for real in
 * node-lock.int-spec.ts and over SSH in test/node-lock.e2e-spec.ts.
 */
import { jest } from '@jest/globals';
import { ScriptedNodeShell, aNode } from '@spotlift/testing';
import { releaseLockScript, renewLockScript, takeLockScript, takeNodeLock } from './node-lock.js';

const node = aNode('node-a');
const PATH = '/run/spotlift/locks/k.lock';

describe('taking a node lock', () => {
  it('asks for the lock file, owner and lease (whole seconds, rounded up) in one command', async () => {
    const shell = new ScriptedNodeShell();
    const lock = await takeNodeLock(shell, node, 'k', { owner: 'mig 1/attempt', leaseMs: 2_500 });
    expect(lock).toMatchObject({ path: PATH, owner: 'mig_1_attempt' });
    expect(shell.calls.map((c) => c.command)).toEqual([takeLockScript(PATH, 'mig_1_attempt', 2.5)]);
    expect(shell.calls[0]!.command).toMatch(
      /^l=\/run\/spotlift\/locks\/k\.lock; f=\/run\/spotlift\/locks\/k\.lock\.lease; o=mig_1_attempt; n=3\n/,
    );
    await lock!.release();
  });

  it('without an owner each lock is its own (no two share a token); the lease is 20 s', async () => {
    const shell = new ScriptedNodeShell();
    const a = await takeNodeLock(shell, node, 'k');
    const b = await takeNodeLock(shell, node, 'k');
    expect(a!.owner).toMatch(/^[0-9a-f]{16}$/);
    expect(a!.owner).not.toBe(b!.owner);
    expect(shell.calls[0]!.command).toMatch(/; n=20\n/);
    await Promise.all([a!.release(), b!.release()]);
  });

  it.each([
    ['LOCK_BUSY: another owner holds it', { code: 75, stdout: 'LOCK_BUSY\n' }, undefined],
    ['no answer line at all: an error, never a lock', { code: 0, stdout: '' }, /failed: no answer$/],
    [
      'the holder did not start',
      { code: 1, stderr: 'the lock holder did not answer\n' },
      /failed: the lock holder did not answer$/,
    ],
  ])('%s', async (_what, reply, error) => {
    const shell = new ScriptedNodeShell().on({ match: /flock -n/, reply });
    const taking = takeNodeLock(shell, node, 'k');
    if (error) await expect(taking).rejects.toThrow(error);
    else expect(await taking).toBeUndefined();
  });
});

describe('the lease of a node lock', () => {
  const held = async (renewReplies: Parameters<ScriptedNodeShell['on']>[0]['reply'][]) => {
    const shell = new ScriptedNodeShell();
    for (const reply of renewReplies) shell.on({ match: /echo RENEWED/, reply, times: 1 });
    const lock = (await takeNodeLock(shell, node, 'k', { owner: 'job-1', renewMs: 3_600_000 }))!;
    const renewals = () => shell.ran('node-a', /echo RENEWED/).length;
    return { shell, lock, renewals };
  };

  it('RENEWED: renewed, with its own owner', async () => {
    const { shell, lock } = await held([{ stdout: 'RENEWED\n' }]);
    expect(await lock.renew()).toBe('renewed');
    expect(shell.ran('node-a', /echo RENEWED/)).toEqual([renewLockScript(PATH, 'job-1')]);
    await lock.release();
  });

  it('a node that does not answer (or answers nothing readable) is unreachable, and renewals go on', async () => {
    const { lock, renewals } = await held([
      () => new Error('connect ECONNREFUSED'),
      { stdout: '' },
      { stdout: 'RENEWED\n' },
    ]);
    expect(await lock.renew()).toBe('unreachable');
    expect(await lock.renew()).toBe('unreachable');
    expect(await lock.renew()).toBe('renewed');
    expect(renewals()).toBe(3);
    await lock.release();
  });

  it('LEASE_LOST: lost for good; it is not asked again', async () => {
    const { lock, renewals } = await held([{ stdout: 'LEASE_LOST\n' }]);
    expect(lock.lost).toBe(false);
    expect(await lock.renew()).toBe('lost');
    expect(lock.lost).toBe(true); // what the engine reads at its phase boundaries
    expect(await lock.renew()).toBe('lost');
    expect(renewals()).toBe(1);
  });

  it('release: one release command with its owner, even when called twice; no renewal after it', async () => {
    const { shell, lock, renewals } = await held([]);
    await Promise.all([lock.release(), lock.release()]);
    expect(shell.ran('node-a', /RELEASED/)).toEqual([releaseLockScript(PATH, 'job-1')]);
    expect(await lock.renew()).toBe('lost');
    expect(renewals()).toBe(0);
  });

  it('a release the node does not answer does not throw (the lease runs out there)', async () => {
    const shell = new ScriptedNodeShell().on({ match: /RELEASED/, reply: () => new Error('connect ETIMEDOUT') });
    const lock = (await takeNodeLock(shell, node, 'k'))!;
    await expect(lock.release()).resolves.toBeUndefined();
  });

  it('renews every renewMs until released', async () => {
    jest.useFakeTimers();
    try {
      const shell = new ScriptedNodeShell().on({ match: /echo RENEWED/, reply: { stdout: 'RENEWED\n' } });
      const lock = (await takeNodeLock(shell, node, 'k', { renewMs: 5_000 }))!;
      const renewals = () => shell.ran('node-a', /echo RENEWED/).length;
      await jest.advanceTimersByTimeAsync(4_999);
      expect(renewals()).toBe(0);
      await jest.advanceTimersByTimeAsync(1);
      expect(renewals()).toBe(1);
      await jest.advanceTimersByTimeAsync(10_000);
      expect(renewals()).toBe(3);
      await lock.release();
      await jest.advanceTimersByTimeAsync(60_000);
      expect(renewals()).toBe(3);
    } finally {
      jest.useRealTimers();
    }
  });
});
