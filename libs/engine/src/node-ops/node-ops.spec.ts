/**
 * Armed commands and streams (opened before a freeze, run inside it): whoever armed one may always cancel it on
 * the way out; once fired or started, the cancel does nothing. Scripted node shell: an armed command runs, and is
 * recorded, only when its go line arrives, as on a node.
 */
import type { NodeTarget } from '@spotlift/domain';
import { ScriptedNodeShell, aNode, inspectionOutput } from '@spotlift/testing';
import { DirectoryStreamer, type RemoteProcess } from '@spotlift/transport';
import { nodeCommand } from './node-command.js';
import { NodeOps } from './node-ops.js';

/** Records what each spawned command's stdin was ended with (the go line, or a cancel's "no"). */
class RecordingShell extends ScriptedNodeShell {
  readonly endedWith: string[] = [];
  override async spawn(node: NodeTarget, command: string): Promise<RemoteProcess> {
    const proc = await super.spawn(node, command);
    const end = proc.stdin.end.bind(proc.stdin);
    proc.stdin.end = ((chunk?: unknown) => {
      if (typeof chunk === 'string') this.endedWith.push(chunk);
      return end(chunk as string);
    }) as typeof proc.stdin.end;
    return proc;
  }
}

describe('armed commands', () => {
  const node = aNode('node-b');

  it('fire runs it once; a cancel afterwards does nothing', async () => {
    const shell = new RecordingShell().on({ match: /criu restore/, reply: { stdout: 'RESTORED_PID 7\n' } });
    const armed = await new NodeOps(shell).armTimed(node, nodeCommand('criu restore -D /d'), 5_000);
    const res = await armed.fire();
    expect(res.stdout).toContain('RESTORED_PID 7');
    await expect(armed.cancel()).resolves.toBeUndefined();
    expect(shell.ran('node-b', /criu restore/)).toHaveLength(1);
    expect(shell.endedWith).toEqual(['go\n']); // no "no" line after the go
  });

  it('cancel before fire: it never runs', async () => {
    const shell = new ScriptedNodeShell();
    const armed = await new NodeOps(shell).armTimed(node, nodeCommand('criu restore -D /d'), 5_000);
    await armed.cancel();
    expect(shell.ran('node-b', /criu restore/)).toEqual([]);
  });
});

describe('armed streams', () => {
  const [a, b] = [aNode('node-a'), aNode('node-b')];

  it('cancel before start: nothing is sent', async () => {
    const shell = new ScriptedNodeShell();
    const armed = await new DirectoryStreamer(shell).arm(a, '/src', b, '/dst');
    await armed.cancel();
    expect(shell.ran('node-a', /tar -C/)).toEqual([]);
  });

  it('a cancel after start does not cut the stream short', async () => {
    const shell = new ScriptedNodeShell().on({ node: 'node-a', match: /tar -C/, reply: { stdout: 'payload' } }).on({
      node: 'node-b',
      match: /sha256sum/,
      reply: { stdout: 'c2b4f2a7d2c5c1c4f0b6b5a0b0ff1a4e1bd4a1d5a5e4c7b8f3d2e1c0b9a8f7e6\n' },
    });
    const armed = await new DirectoryStreamer(shell).arm(a, '/src', b, '/dst');
    const started = armed.start().catch((e: Error) => e);
    await armed.cancel();
    const res = await started;
    // the scripted receiver's hash is not the payload's: the stream ran to its end and was checked
    expect(res).toBeInstanceOf(Error);
    expect((res as Error).message).toMatch(/sha256|checksum|hash/i);
    expect(shell.ran('node-a', /tar -C/)).toHaveLength(1);
  }, 10_000);
});

describe('node-side locks', () => {
  const node = aNode('node-a');

  it('LOCKED: held until released; LOCK_BUSY: not ours (undefined); no answer at all: an error, never a lock', async () => {
    const free = new ScriptedNodeShell().on({ match: /flock -n/, reply: { stdout: 'LOCKED\n' } });
    const lock = await new NodeOps(free).holdLock(node, 'proc:b00t:4026531836:4242:99');
    expect(lock?.path).toBe('/run/spotlift/locks/proc_b00t_4026531836_4242_99.lock');
    // The script itself runs for real in node-lock.int-spec.ts (dash, busybox) and over SSH in the lab.
    expect(free.ran('node-a', /flock/)[0]).toMatch(/^l=\/run\/spotlift\/locks\/proc_b00t_4026531836_4242_99\.lock; /);
    await expect(lock!.release()).resolves.toBeUndefined();

    const busy = new ScriptedNodeShell().on({ match: /flock -n/, reply: { code: 75, stdout: 'LOCK_BUSY\n' } });
    expect(await new NodeOps(busy).holdLock(node, 'k')).toBeUndefined();

    const broken = new ScriptedNodeShell().on({
      match: /flock -n/,
      reply: { code: 1, stdout: '', stderr: 'mkdir: cannot create directory: Read-only file system\n' },
    });
    await expect(new NodeOps(broken).holdLock(node, 'k')).rejects.toThrow(
      'taking the lock /run/spotlift/locks/k.lock on node-a failed: mkdir: cannot create directory: Read-only file system',
    );
  });
});

// The adapter under runningTree (preflight-refusals.spec.ts gives runningTree these answers through the fake).
describe("inspectTree reads the node's answer", () => {
  const node = aNode('node-a');
  const answering = (reply: { code?: number; stdout?: string; stderr?: string }) =>
    new NodeOps(new ScriptedNodeShell().on({ node: 'node-a', match: /echo TREE/, reply }));

  it('exit 3 (no such process): undefined; any other failure: an error naming the node', async () => {
    expect(await answering({ code: 3, stderr: 'no process with pid 4242' }).inspectTree(node, 4242)).toBeUndefined();
    await expect(answering({ code: 1, stderr: 'boom' }).inspectTree(node, 4242)).rejects.toThrow(
      'inspecting pid 4242 on node-a failed: boom',
    );
  });

  it('the tree and its RSS; the root only when its identity lines were readable', async () => {
    const bare = await answering({ stdout: 'TREE 4242 4243\nRSS_KB 100\n' }).inspectTree(node, 4242);
    expect(bare).toEqual({ pids: [4242, 4243], rssBytes: 102_400 });
    const full = await answering({ stdout: inspectionOutput({ tree: [4242, 4243], startTime: '999999' }) }).inspectTree(
      node,
      4242,
    );
    expect(full?.pids).toEqual([4242, 4243]);
    expect(full?.root?.identity).toEqual({
      bootId: '53b88e37-904f-4ee1-8e18-0fb871a935bd',
      pidNs: '4026532201',
      startTime: '999999',
    });
  });
});

// The adapter under Rollback (rollback-decisions.spec.ts gives Rollback these answers through the fake).
describe("rollback's operations read the node's answer", () => {
  const node = aNode('node-b');
  const on = (match: RegExp, reply: { code?: number; stdout?: string; stderr?: string }) =>
    new NodeOps(new ScriptedNodeShell().on({ node: 'node-b', match, reply }));

  it('waitCriuIdle: exit 0 idle; CRIU_IDLE no with exit 1: the busy pids; anything else: an error', async () => {
    const wait = (reply: { code?: number; stdout?: string; stderr?: string }) =>
      on(/CRIU_IDLE/, reply).waitCriuIdle(node, '/img/m1/dst', 42_000);
    expect(await wait({ code: 0, stdout: 'CRIU_IDLE yes\n' })).toEqual({ idle: true, pids: [] });
    expect(await wait({ code: 1, stdout: 'CRIU_IDLE no 991 992\n' })).toEqual({ idle: false, pids: [991, 992] });
    await expect(wait({ code: 2, stderr: 'sh: syntax error' })).rejects.toThrow(
      'checking for CRIU processes on node-b failed (2): sh: syntax error',
    );
  });

  it("readPidfile: the pid, or undefined; killTree and resumeTree: the state letter after, 'unknown' without one", async () => {
    expect(await on(/restored\.pid/, { stdout: 'PID 778\n' }).readPidfile(node, '/d/restored.pid')).toBe(778);
    expect(await on(/restored\.pid/, { stdout: '' }).readPidfile(node, '/d/restored.pid')).toBeUndefined();
    expect(await on(/kill -KILL/, { stdout: 'STATE gone\n' }).killTree(node, 777)).toBe('gone');
    expect(await on(/kill -KILL/, { stdout: '' }).killTree(node, 777)).toBe('unknown');
    expect(await on(/kill -CONT/, { stdout: 'STATE T\n' }).resumeTree(node, 4242)).toBe('T');
  });

  // The stats images' mtimes a recovery reads its downtime from, as GNU date prints them and as busybox stat
  // does (qemu lab guests): the same instant.
  it.each([
    ['GNU date', '1001300000000\n'],
    ['busybox stat', '1001 1970-01-01 00:16:41.300000000 +0000\n'],
  ])('fileMtimeNs reads %s; a missing file: undefined', async (_, stdout) => {
    expect(await on(/date -r .*stats-restore/, { stdout }).fileMtimeNs(node, '/d/stats-restore')).toBe(
      1_001_300_000_000n,
    );
    expect(await on(/date -r/, { stdout: '' }).fileMtimeNs(node, '/d/stats-restore')).toBeUndefined();
  });
});

/**
 * Cleanup's operations never throw (the engine's specs script their answers by name, so what a node that fails
 * them gives is pinned here): a failed job's logs kept, its image directory removed.
 */
describe("cleanup's operations give an answer, never an error", () => {
  const node = aNode('node-a');
  const failing = () =>
    new NodeOps(new ScriptedNodeShell().on({ match: /./, reply: () => new Error('channel closed') }));

  it('keepLogs: the number of logs kept, 0 when the node printed none or could not answer', async () => {
    const keep = (ops: NodeOps) => ops.keepLogs(node, '/img/m1/src', '/var/lib/spotlift/logs/m1', 65536, 10080);
    expect(await keep(new NodeOps(new ScriptedNodeShell().on({ match: /KEPT/, reply: { stdout: 'KEPT 2\n' } })))).toBe(
      2,
    );
    expect(await keep(new NodeOps(new ScriptedNodeShell().on({ match: /KEPT/, reply: { stdout: '' } })))).toBe(0);
    expect(await keep(failing())).toBe(0);
  });

  it('removeDir: true only when rm exited 0', async () => {
    const rm = (reply: { code?: number }) =>
      new NodeOps(new ScriptedNodeShell().on({ match: /^rm -rf/, reply })).removeDir(node, '/img/m1');
    expect(await rm({ code: 0 })).toBe(true);
    expect(await rm({ code: 1 })).toBe(false);
    expect(await failing().removeDir(node, '/img/m1')).toBe(false);
  });
});
