/**
 * A source node that is not to be trusted beyond its own workload's files, with real CRIU, sshd nodes and Redis.
 * Each lab node has its own mount namespace with a private /srv/data (scripts/lab/nodes.sh). Two sources of a
 * hostile stream, both through the real engine and the real relay:
 * - an honest tar of a declared directory that holds a symbolic link to /etc (what a workload, or whoever
 *   controls its files, can do on any node);
 * - a compromised node: node-a's `tar` is replaced, in node-a's mount namespace only, by a wrapper that adds
 *   a member named /etc/... to the file-sync stream (only while a trigger file exists in node-a's /srv/data,
 *   and unmounted after the suite).
 * Each time: the job fails before any freeze with the relay's reason, node-b's /etc and /srv/data hold
 * nothing of it, and the workload runs exactly once, still on node-a.
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { createHash } from 'node:crypto';
import {
  chmodSync,
  copyFileSync,
  existsSync,
  lstatSync,
  mkdirSync,
  readFileSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { join } from 'node:path';
import type { CheckpointRecord, MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import {
  archive,
  labDir,
  member,
  nodeAddress,
  nodeDataDir,
  nodeOfPid,
  pidAlive,
  startWorkload,
  type HeartbeatCollector,
} from '@spotlift/testing';
import { shq } from '@spotlift/transport';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import type { Orchestrator } from './support/orchestrator-harness.js';
import { until } from './support/poll.js';

const REDIS_PORT = 6414;
const NODE_A_MNTNS = '/run/spotlift/mntns/spl-node-a';
const HOSTILE_DIR = join(labDir(), 'hostile-files');
const CANARY = `spotlift-hostile-${randomBytes(4).toString('hex')}`;

let env: E2eEnv;
let orch: Orchestrator;
let collector: HeartbeatCollector;

beforeAll(async () => {
  env = await setupE2e({ redisPort: REDIS_PORT });
  ({ orch, collector } = env);
}, 240_000);

afterAll(async () => {
  uncompromiseNodeA();
  await env?.teardown();
  rmSync(HOSTILE_DIR, { recursive: true, force: true });
  rmSync(join('/etc', CANARY), { force: true }); // only there if the test failed
}, 120_000);

/** A fresh directory NAME under each node's /srv/data (absent on every node but `on`). */
function freshDataDir(name: string, on: string): string {
  for (const node of ['node-a', 'node-b', 'node-c'])
    rmSync(join(nodeDataDir(node), name), { recursive: true, force: true });
  mkdirSync(join(nodeDataDir(on), name), { recursive: true });
  return join(nodeDataDir(on), name);
}

async function registered(name: string, paths: string[]): Promise<{ pid: number; workload: WorkloadRecord }> {
  return env.launch(name, 'node-a', {
    memMiB: 8,
    workload: { dataFiles: [`${paths[0]}/journal.log`] },
    fields: { paths },
  });
}

async function migrate(workload: WorkloadRecord): Promise<MigrationRecord> {
  return env.migrate({ workload: workload.id, destination: 'node-b' });
}

/** Failed before any freeze, with nothing restored: the workload runs once, on node-a, heartbeats gap-free. */
async function stillOnlyOnNodeA(m: MigrationRecord, name: string, pid: number): Promise<void> {
  expect(m.state).toBe('failed');
  expect(m.phases.map((p) => p.name)).not.toContain('dump');
  expect(m.restoredPid).toBeUndefined();
  expect(pidAlive(pid)).toBe(true);
  expect(nodeOfPid(pid)).toBe('node-a');
  await collector.waitForCount(name, 8, { from: nodeAddress('node-a'), since: Date.now(), timeoutMs: 20_000 });
  expect(collector.isSeqGapFree(name)).toBe(true);
  expect(existsSync(join('/etc', CANARY))).toBe(false);
  // The aborted stream ended at once on both nodes (its two SSH channels did not hang until a timeout).
  expect(m.phases.find((p) => p.name === 'files')?.durationMs).toBeLessThan(15_000);
}

const lexists = (p: string) => {
  try {
    lstatSync(p);
    return true;
  } catch {
    return false;
  }
};

/**
 * node-a's tar, in node-a's mount namespace only: with the trigger present, a file-sync round's tar (the only
 * caller with `--null --no-recursion -T`) also archives a file under the absolute name /etc/CANARY.
 */
function compromiseNodeA(): void {
  mkdirSync(HOSTILE_DIR, { recursive: true });
  const realTar = join(HOSTILE_DIR, 'real-tar');
  copyFileSync(execFileSync('sh', ['-c', 'command -v tar'], { encoding: 'utf8' }).trim(), realTar);
  chmodSync(realTar, 0o755);
  writeFileSync(join(HOSTILE_DIR, 'payload'), 'spotlift::0:0::/:/bin/sh\n');
  const payload = join(HOSTILE_DIR, 'payload');
  writeFileSync(
    join(HOSTILE_DIR, 'tar'),
    [
      '#!/bin/sh',
      `case " $* " in *" --null --no-recursion -T "*) if [ -e /srv/data/hostile-trigger ]; then`,
      `  exec ${shq(realTar)} "$@" -P --transform ${shq(`s,^${payload}$,/etc/${CANARY},`)} ${shq(payload)}; fi ;; esac`,
      `exec ${shq(realTar)} "$@"`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  execFileSync('nsenter', [`--mount=${NODE_A_MNTNS}`, 'mount', '--bind', join(HOSTILE_DIR, 'tar'), '/usr/bin/tar']);
  writeFileSync(join(nodeDataDir('node-a'), 'hostile-trigger'), '');
}

function uncompromiseNodeA(): void {
  rmSync(join(nodeDataDir('node-a'), 'hostile-trigger'), { force: true });
  execFileSync('sh', ['-c', `nsenter --mount=${NODE_A_MNTNS} umount /usr/bin/tar 2>/dev/null || true`]);
}

describe('a hostile source cannot write outside the declared paths on the destination (real CRIU, real relay)', () => {
  it('a declared directory holding a symbolic link to /etc: the copy is refused, nothing lands on node-b', async () => {
    const name = 'hostile-link';
    const dir = freshDataDir('hostile-link', 'node-a');
    writeFileSync(join(dir, 'config.txt'), 'fine\n');
    symlinkSync('/etc', join(dir, 'x'));
    const { pid, workload } = await registered(name, ['/srv/data/hostile-link']);

    const m = await migrate(workload);
    expect(m.error).toMatch(
      /file copy from node-a refused by the orchestrator .*"srv\/data\/hostile-link\/x" is a symbolic link to "\/etc", outside the declared paths/,
    );
    // The refused member never reached node-b (what came before it may have).
    expect(lexists(join(nodeDataDir('node-b'), 'hostile-link', 'x'))).toBe(false);
    await stillOnlyOnNodeA(m, name, pid);
  });

  it("a compromised source's tar adds /etc/... to the stream: refused in the relay, node-b's /etc untouched", async () => {
    const name = 'hostile-tar';
    const dir = freshDataDir('hostile-tar', 'node-a');
    writeFileSync(join(dir, 'config.txt'), 'fine\n');
    const { pid, workload } = await registered(name, ['/srv/data/hostile-tar']);
    compromiseNodeA();
    try {
      // the wrapper is live in node-a's namespace (and only there: the host's tar is the real one)
      const seen = execFileSync('nsenter', [`--mount=${NODE_A_MNTNS}`, 'head', '-1', '/usr/bin/tar'], {
        encoding: 'utf8',
      });
      expect(seen).toBe('#!/bin/sh\n');
      const m = await migrate(workload);
      expect(m.error).toMatch(
        new RegExp(
          `file copy from node-a refused by the orchestrator .*"/etc/${CANARY}" is outside the declared paths`,
        ),
      );
      await stillOnlyOnNodeA(m, name, pid);
    } finally {
      uncompromiseNodeA();
    }
  });

  it("a compromised storage node's files tar is refused on its way to the restore: nothing lands, the checkpoint stays stored", async () => {
    const name = 'hostile-checkpoint';
    const dir = freshDataDir('hostile-cp', 'node-a');
    writeFileSync(join(dir, 'config.txt'), 'fine\n');
    const { pid, workload } = await registered(name, ['/srv/data/hostile-cp']);
    const taken = await orch.api<CheckpointRecord>('POST', '/checkpoints', {
      workload: workload.id,
      storage: 'node-c',
    });
    expect(taken.status).toBe(201);
    const cpState = (states: string[]) => async () => {
      const cp = (await orch.api<CheckpointRecord>('GET', `/checkpoints/${taken.body.id}`)).body;
      return states.includes(cp.state) ? cp : undefined;
    };
    const stored = await until('the checkpoint to be stored', cpState(['stored', 'failed']), 120_000);
    expect({ state: stored.state, error: stored.error }).toEqual({ state: 'stored', error: undefined });
    expect(pidAlive(pid)).toBe(false);
    rmSync(dir, { recursive: true });

    // node-c rewrites the stored tar and its line in SHA256SUMS (the storage node is a node too)
    const tar = archive(
      member({ name: 'srv/data/hostile-cp/config.txt', data: 'fine\n' }),
      member({ name: 'srv/data/hostile-cp/x', type: '2', link: '/etc' }),
      member({ name: `etc/${CANARY}`, data: 'owned\n' }),
    );
    writeFileSync(join(stored.imageDir, 'workload-files.tar'), tar);
    const sums = join(stored.imageDir, 'SHA256SUMS');
    const sha = createHash('sha256').update(tar).digest('hex');
    writeFileSync(sums, readFileSync(sums, 'utf8').replace(/^\S+(\s+\S*workload-files\.tar)$/m, `${sha}$1`));

    const asked = await orch.api('POST', `/checkpoints/${stored.id}/restore`, { destination: 'node-b' });
    expect(asked.status).toBe(202);
    const after = await until(
      'the restore to end',
      async () => {
        const cp = await cpState(['restored', 'stored'])();
        return cp?.restore?.error || cp?.state === 'restored' ? cp : undefined;
      },
      120_000,
    );
    expect(after.state).toBe('stored');
    expect(after.restore?.error).toMatch(
      /declared files from node-c refused by the orchestrator after 1 accepted member\(s\).*"srv\/data\/hostile-cp\/x" is a symbolic link to "\/etc"/,
    );
    expect(after.restore?.restoredPid).toBeUndefined();
    expect(lexists(join(nodeDataDir('node-b'), 'hostile-cp', 'x'))).toBe(false);
    expect(existsSync(join('/etc', CANARY))).toBe(false);
  });

  it('refuses system paths, login homes and .ssh at registration', async () => {
    const name = 'hostile-register';
    const pid = await startWorkload('node-a', { name, memMiB: 8, udpPort: collector.port });
    env.track(pid);
    for (const paths of [
      ['/etc'],
      ['/root/.ssh'],
      ['/var/lib/spotlift/home/.ssh'], // the lab's SSH login home
      ['/var/lib/spotlift/images/x'],
      ['/srv'],
      ['/var'],
      ['/home/alice'],
      ['/srv/data/app', '/usr/local/bin'],
    ]) {
      const res = await orch.api<{ message: string }>('POST', '/workloads', { name, node: 'node-a', pid, paths });
      expect({ paths, status: res.status }).toEqual({ paths, status: 400 });
    }
    const list = await orch.api<WorkloadRecord[]>('GET', '/workloads');
    expect(list.body.filter((w) => w.name === name)).toEqual([]);
  });
});
