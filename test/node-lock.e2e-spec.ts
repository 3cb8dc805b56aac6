/**
 * The node-side freeze lock over real SSH to a lab node (sshd in its own network namespace): the job's SSH
 * connection is killed (its sshd session process SIGKILLed) while it holds the lock. Before the lease, the lock
 * died with the channel and another installation could have dumped a tree this job froze; now it stays held
 * while the job lives (renewals reconnect), for the lease once the job is gone too, and is free at once on
 * release. Another installation is a second SshNodeShell here, trying a plain `flock -n` and a lock of its own.
 */
import { readFileSync } from 'node:fs';
import type { NodeRecord, NodeTarget } from '@spotlift/domain';
import { NodeOps, nodeLockPath } from '@spotlift/engine';
import { aNode, labUp } from '@spotlift/testing';
import { type CommandResult, type ExecOptions, NodeShell, type RemoteProcess, SshNodeShell } from '@spotlift/transport';

/** A job's shell that can die: after die() every command fails, as when its orchestrator is gone. */
class JobShell extends NodeShell {
  dead = false;
  constructor(readonly inner: SshNodeShell) {
    super();
  }
  exec(node: NodeTarget, command: string, opts?: ExecOptions): Promise<CommandResult> {
    return this.dead ? Promise.reject(new Error('this orchestrator is gone')) : this.inner.exec(node, command, opts);
  }
  spawn(node: NodeTarget, command: string): Promise<RemoteProcess> {
    return this.inner.spawn(node, command);
  }
  connect(node: NodeTarget): Promise<void> {
    return this.inner.connect(node);
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

const LEASE_MS = 4_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let node: NodeRecord;
let privateKey: Buffer;
let other: SshNodeShell;
const shells: SshNodeShell[] = [];
const newShell = () => {
  const s = new SshNodeShell({ privateKey });
  shells.push(s);
  return s;
};

/** SIGKILLs the sshd session process serving this shell's connection to the node: the connection dies. */
async function killConnection(shell: SshNodeShell): Promise<void> {
  const sshd = Number((await shell.exec(node, 'echo $PPID')).stdout.trim());
  expect(sshd).toBeGreaterThan(1);
  process.kill(sshd, 'SIGKILL');
  await sleep(300); // the client sees its connection end
}

/** Whether another installation gets the lock now with a plain `flock -n` on the node. */
async function freeForOthers(path: string): Promise<boolean> {
  const res = await other.exec(node, `flock -n ${path} true`);
  return res.code === 0;
}

beforeAll(async () => {
  const lab = await labUp({ nodes: 2 });
  const a = lab.nodes.find((n) => n.id === 'node-a')!;
  node = aNode('node-a', { host: a.host, port: a.port, user: a.user, hostKey: a.hostKey });
  privateKey = readFileSync(lab.ssh.privateKeyPath);
  other = newShell();
}, 200_000);

afterAll(async () => {
  await Promise.all(shells.map((s) => s.close()));
});

describe('the node lock outlives a broken SSH connection for its lease', () => {
  it('held through a killed connection while the job lives; for the lease once it is gone; then free', async () => {
    const key = `e2e-lease-${process.pid}-${Date.now()}`;
    const path = nodeLockPath(key);
    const job = new JobShell(newShell());
    const lock = (await new NodeOps(job).holdLock(node, key, { leaseMs: LEASE_MS, renewMs: 1_000 }))!;
    expect(lock).toBeDefined();
    expect(await freeForOthers(path)).toBe(false);

    await killConnection(job.inner);
    // Two leases later: the job's renewals went over a new connection; nobody else got the lock meanwhile.
    for (let t = 0; t < 2 * LEASE_MS; t += 500) {
      expect(await freeForOthers(path)).toBe(false);
      await sleep(500);
    }
    expect(await lock.renew()).toBe('renewed');
    expect(await new NodeOps(other).holdLock(node, key)).toBeUndefined();

    // Now the job dies with its connection: no more renewals. Held for the lease, then free.
    await killConnection(job.inner);
    job.dead = true;
    const died = Date.now();
    let freedAfter: number | undefined;
    while (Date.now() - died < LEASE_MS + 5_000) {
      if (await freeForOthers(path)) {
        freedAfter = Date.now() - died;
        break;
      }
      await sleep(200);
    }
    console.log(
      `node lock: free ${freedAfter} ms after its job died (lease ${LEASE_MS} ms, whole seconds on the node)`,
    );
    expect(freedAfter).toBeDefined();
    // Counted in whole seconds from the last renewal (at most 1 s before the death): at least lease - 2 s.
    expect(freedAfter!).toBeGreaterThanOrEqual(LEASE_MS - 2_000);

    // Another installation takes it; the first job's lock is lost.
    const second = await new NodeOps(other).holdLock(node, key, { leaseMs: LEASE_MS });
    expect(second).toBeDefined();
    job.dead = false;
    expect(await lock.renew()).toBe('lost');
    await lock.release(); // a late release does not free another owner's lock
    expect(await freeForOthers(path)).toBe(false);
    await second!.release();
    expect(await freeForOthers(path)).toBe(true);
  }, 60_000);

  it('its owner re-attaches over a new connection; release frees it at once', async () => {
    const key = `e2e-reattach-${process.pid}-${Date.now()}`;
    const path = nodeLockPath(key);
    const job = new JobShell(newShell());
    const lock = (await new NodeOps(job).holdLock(node, key, { owner: 'job-x', leaseMs: 30_000 }))!;
    await killConnection(job.inner);
    job.dead = true;

    // The same owner from a fresh connection (the job once its channel broke, or its recovery).
    const again = await new NodeOps(newShell()).holdLock(node, key, { owner: 'job-x', leaseMs: 30_000 });
    expect(again?.owner).toBe('job-x');
    expect(await new NodeOps(other).holdLock(node, key, { owner: 'job-y' })).toBeUndefined();
    expect(await freeForOthers(path)).toBe(false);
    await again!.release();
    expect(await freeForOthers(path)).toBe(true);
    void lock;
  }, 60_000);
});
