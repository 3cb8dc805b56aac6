/**
 * The node-side lock's scripts for real (node-lock.ts): `sh` on this machine stands for a node, with real
 * flock, setsid and lease files, once with dash and GNU coreutils and once with nothing but busybox applets
 * and util-linux flock on PATH (what the qemu guests carry). The lock outlives its taker for the lease, no
 * longer; its owner re-attaches; another owner is refused until the lease ran out or the lock was released.
 * Over real SSH with a killed connection: test/node-lock.e2e-spec.ts.
 */
import { execFile, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, symlinkSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeTarget } from '@spotlift/domain';
import { LocalNodeShell, aNode } from '@spotlift/testing';
import type { CommandResult, ExecOptions } from '@spotlift/transport';
import { takeNodeLock } from './node-lock.js';
import { nodeLockPath } from './node-scripts.js';

/** Runs commands with `sh` from a PATH of its own. */
class PathShell extends LocalNodeShell {
  constructor(private readonly path: string) {
    super();
  }

  override exec(_node: NodeTarget, command: string, opts?: ExecOptions): Promise<CommandResult> {
    return new Promise((resolve) => {
      execFile(
        'sh',
        ['-c', command],
        { timeout: opts?.timeoutMs ?? 30_000, env: { PATH: this.path } },
        (error, stdout, stderr) =>
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, stdout, stderr }),
      );
    });
  }
}

const busyboxDir = mkdtempSync(join(tmpdir(), 'node-lock-busybox-'));
const applets = ['sh', 'setsid', 'stat', 'date', 'sleep', 'mktemp', 'cat', 'rm', 'touch', 'mkdir', 'kill', 'true'];
for (const a of applets) symlinkSync('/usr/bin/busybox', join(busyboxDir, a));
symlinkSync(execFileSync('sh', ['-c', 'command -v flock']).toString().trim(), join(busyboxDir, 'flock'));
afterAll(() => rmSync(busyboxDir, { recursive: true, force: true }));

const node = aNode('node-a');
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
/** Whether a plain `flock -n` (what another installation, or the sweeper, would try) gets the lock now. */
const free = (path: string) => {
  try {
    execFileSync('flock', ['-n', path, 'true']);
    return true;
  } catch {
    return false;
  }
};

describe.each([
  ['dash and GNU coreutils', process.env.PATH ?? '/usr/bin:/bin'],
  ['busybox applets and util-linux flock', busyboxDir],
])('node lock with %s', (_what, path) => {
  const shell = new PathShell(path);
  const manual = { leaseMs: 2_000, renewMs: 3_600_000 };

  it('outlives its taker for the lease, not longer; its owner re-attaches; release frees it at once', async () => {
    const key = `int-test-${process.pid}-${Date.now()}`;
    const lockFile = nodeLockPath(key);
    const a = await takeNodeLock(shell, node, key, { ...manual, owner: 'job-a' });
    expect(a).toBeDefined();
    expect(free(lockFile)).toBe(false);
    expect(await takeNodeLock(shell, node, key, { ...manual, owner: 'job-b' })).toBeUndefined();
    // The same owner again (its job lost its channel, or runs again): it re-attaches to the live holder.
    const again = await takeNodeLock(shell, node, key, { ...manual, owner: 'job-a' });
    expect(again?.owner).toBe('job-a');
    expect(await a!.renew()).toBe('renewed');

    // job-a stops renewing (its orchestrator died): the lock stays for the lease, then is free.
    const stopped = Date.now();
    let freedAfter: number | undefined;
    while (Date.now() - stopped < 6_000) {
      if (free(lockFile)) {
        freedAfter = Date.now() - stopped;
        break;
      }
      await sleep(100);
    }
    expect(freedAfter).toBeDefined();
    // Counted in whole seconds from the last renewal, and only once it is more than 2 s old: never before 2 s.
    expect(freedAfter!).toBeGreaterThanOrEqual(2_000);
    expect(await a!.renew()).toBe('lost');

    const b = await takeNodeLock(shell, node, key, { ...manual, owner: 'job-b' });
    expect(b).toBeDefined();
    expect(await b!.renew()).toBe('renewed');
    // job-a's late release leaves job-b's lock alone.
    await a!.release();
    expect(free(lockFile)).toBe(false);
    await b!.release();
    expect(free(lockFile)).toBe(true);
    await b!.release();
  }, 30_000);

  it('renewals keep it held well past the lease', async () => {
    const key = `int-test-renew-${process.pid}-${Date.now()}`;
    const a = await takeNodeLock(shell, node, key, { leaseMs: 1_000, renewMs: 300 });
    await sleep(3_500);
    expect(free(nodeLockPath(key))).toBe(false);
    expect(await a!.renew()).toBe('renewed');
    await a!.release();
    expect(free(nodeLockPath(key))).toBe(true);
  }, 30_000);
});
