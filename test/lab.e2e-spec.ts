/**
 * The lab itself, end to end: two sshd nodes in network namespaces, a 64 MiB heartbeat workload on node-a,
 * moved to node-b with the bare CRIU stop-and-copy sequence (scripts/lab/bare-migrate.sh). Every other real
 * test, the demo and the benchmarks stand on what this proves. No skips: without a working CRIU it fails.
 *
 *   NODE_OPTIONS=--experimental-vm-modules npx jest test/lab.e2e-spec.ts --selectProjects e2e
 * (the path first: after --selectProjects, jest takes every following word as a project name and so runs
 * every e2e suite, in parallel; this one passes that way too).
 */
import { execFile, execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
// libs/testing has no package entry (@spotlift/testing) yet; the lab helpers' own index is the entry point.
import {
  bareMigrate,
  HeartbeatCollector,
  labDown,
  labIsHealthy,
  labUp,
  netnsInode,
  netnsPath,
  nodeAddress,
  nodeOfPid,
  nsPids,
  pidAlive,
  startWorkload,
  stopWorkload,
  type BareMigrateResult,
  type LabConfig,
} from '@spotlift/testing';

const execFileP = promisify(execFile);
const NAME = `lab-e2e-${process.pid}`;
const A = nodeAddress('node-a'); // 10.77.0.2
const B = nodeAddress('node-b'); // 10.77.0.3

async function eventually(check: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!check()) {
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, 50));
  }
  return true;
}

describe('lab: bare CRIU stop-and-copy between two namespaced nodes', () => {
  let broughtUp = false;
  let lab: LabConfig;
  const collector = new HeartbeatCollector();
  let sourcePid = 0;
  let result: BareMigrateResult | undefined;

  beforeAll(async () => {
    // The lab may be shared (the lead, the demo): only tear down what this suite brought up.
    broughtUp = !(await labIsHealthy());
    lab = await labUp({ nodes: 2 });
    await collector.start();
    sourcePid = await startWorkload('node-a', { name: NAME, memMiB: 64, udpPort: collector.port });
    await collector.waitForCount(NAME, 10, { from: A, timeoutMs: 30_000 });
  }, 180_000);

  afterAll(async () => {
    for (const pid of [result?.restoredPid, sourcePid]) {
      if (pid && pidAlive(pid)) await stopWorkload(pid);
    }
    await collector.stop();
    // Others (the lead, parallel suites) may be using the lab by now: leave it up while it is in use.
    if (broughtUp) await labDown({ ifIdle: true });
  }, 120_000);

  it('runs a CRIU >= 4.2 that passes criu check', () => {
    const version = /Version: (\d+)\.(\d+)/.exec(execFileSync('criu', ['--version'], { encoding: 'utf8' }));
    expect(version).not.toBeNull();
    expect(Number(version![1]) * 100 + Number(version![2])).toBeGreaterThanOrEqual(402);
    expect(execFileSync('criu', ['check'], { encoding: 'utf8' })).toContain('Looks good');
  });

  it('describes the nodes in nodes.json; each takes a key login against its pinned host key, with criu on PATH', async () => {
    const ids = lab.nodes.map((n) => n.id);
    expect(ids).toEqual(expect.arrayContaining(['node-a', 'node-b']));
    expect(existsSync(lab.ssh.privateKeyPath)).toBe(true);
    for (const [id, addr] of [
      ['node-a', A],
      ['node-b', B],
    ] as const) {
      const node = lab.nodes.find((n) => n.id === id)!;
      expect(node).toMatchObject({ host: addr, port: 22, dataAddress: addr, lifecycle: 'spot', zone: 'lab-1' });
      expect(node.hostKey).toMatch(/^ssh-ed25519 AAAA\S+$/);
      const dir = mkdtempSync(join(tmpdir(), 'lab-e2e-'));
      try {
        const knownHosts = join(dir, 'known_hosts');
        writeFileSync(knownHosts, `${node.host} ${node.hostKey}\n`);
        const out = await execFileP('ssh', [
          ...['-i', lab.ssh.privateKeyPath, '-p', String(node.port), '-o', 'IdentitiesOnly=yes', '-o', 'BatchMode=yes'],
          ...['-o', 'StrictHostKeyChecking=yes', '-o', `UserKnownHostsFile=${knownHosts}`, '-o', 'ConnectTimeout=10'],
          `${node.user}@${node.host}`,
          'id -u; criu --version | head -1; readlink /proc/self/ns/net',
        ]);
        const [uid, criu, netns] = out.stdout.trim().split('\n');
        expect(uid).toBe('0'); // CRIU needs root
        expect(criu).toMatch(/^Version: /);
        // The session runs in the node's network namespace.
        expect(netns).toBe(`net:[${netnsInode(netnsPath(id))}]`);
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    }
  });

  it('starts the workload as the init of its own pid namespace in node-a', () => {
    expect(nodeOfPid(sourcePid)).toBe('node-a');
    expect(nsPids(sourcePid).at(-1)).toBe(1);
    const hb = collector.last(NAME)!;
    expect(hb).toMatchObject({ ok: true, memMiB: 64, pid: sourcePid, from: A });
  });

  it('moves it to node-b: same process state, new node, no lost or repeated heartbeat', async () => {
    result = await bareMigrate('node-a', 'node-b', sourcePid);
    const migrationEnd = Date.now();
    // Enough heartbeats for several full memory checks on the destination.
    await collector.waitForCount(NAME, 25, { since: migrationEnd, from: B, timeoutMs: 30_000 });

    const hbs = collector.heartbeats(NAME);
    const gap = collector.maxGap(NAME);
    console.log(
      `bare stop-and-copy 64 MiB: downtime ${result.downtimeMs} ms (dump ${result.dumpMs}, copy ${result.copyMs}, ` +
        `restore ${result.restoreMs}); receiver's longest silence ${gap.gapMs} ms; ` +
        `CRIU frozen ${result.criu.frozenMs} ms, pages written ${result.criu.pagesWritten}`,
    );

    // The source is gone; the restored tree runs in node-b's network namespace, still its own pid namespace.
    expect(result.restoredPid).not.toBe(sourcePid);
    expect(await eventually(() => !pidAlive(sourcePid), 5_000)).toBe(true);
    expect(pidAlive(result.restoredPid)).toBe(true);
    const restoredNetns = netnsInode(`/proc/${result.restoredPid}/ns/net`);
    expect(restoredNetns).toBeDefined();
    expect(restoredNetns).toBe(netnsInode(netnsPath('node-b')));
    expect(restoredNetns).not.toBe(netnsInode(netnsPath('node-a')));
    expect(nsPids(result.restoredPid).at(-1)).toBe(1);

    // Heartbeats: seq never skipped nor went back, across the whole life of the workload.
    const seq = collector.seqReport(NAME);
    expect(seq.gaps).toEqual([]);
    expect(seq.resets).toEqual([]);
    expect(hbs[0]!.seq).toBe(1);

    // One clean switch of sender from node-a to node-b, where seq and counter simply carry on.
    const firstFromB = hbs.findIndex((h) => h.from === B);
    expect(firstFromB).toBeGreaterThan(0);
    expect(hbs.slice(0, firstFromB).every((h) => h.from === A && h.pid === sourcePid)).toBe(true);
    expect(hbs.slice(firstFromB).every((h) => h.from === B && h.pid === result!.restoredPid)).toBe(true);
    const before = hbs[firstFromB - 1]!;
    const after = hbs[firstFromB]!;
    expect(after.seq).toBe(before.seq + 1);
    expect(after.counter).toBe(before.counter + 1);
    expect(collector.counterContinuedAcross(NAME, after.at)).toBe(true);
    // The same socket: the source port survived the move.
    expect(after.fromPort).toBe(before.fromPort);
    expect(collector.sourcesSince(NAME, migrationEnd)).toEqual([B]);

    // Memory checks (hot stamps, cold checksums, a full check right after the freeze) never failed.
    expect(collector.anyNotOk(NAME)).toBe(false);
    expect(collector.last(NAME)!.ok).toBe(true);

    // The figures are sane: the freeze fits in the measured span and CRIU wrote the workload's pages.
    expect(result.downtimeMs).toBeGreaterThan(0);
    expect(result.downtimeMs).toBeLessThanOrEqual(result.dumpStartToRestoreEndMs);
    expect(result.criu.pagesWritten ?? 0).toBeGreaterThanOrEqual((64 * 1024 * 1024) / 4096);
  }, 240_000);

  it('still checks its memory after the move: a flipped byte turns ok to false', async () => {
    // Proves "ok stayed true" above means something: the restored process's checks are live.
    expect(result).toBeDefined();
    const since = Date.now();
    process.kill(result!.restoredPid, 'SIGUSR1'); // workload.py's self-test hook flips one byte
    await collector.waitFor(NAME, (hb) => hb.some((h) => h.at >= since && !h.ok), 10_000);
    const bad = collector.heartbeats(NAME, since).find((h) => !h.ok)!;
    expect(bad.from).toBe(B);
    expect(bad.error).toMatch(/cold MiB \d+ has a bad checksum/);
  }, 60_000);
});
