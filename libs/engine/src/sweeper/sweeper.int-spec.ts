/**
 * The sweeper's node commands for real: `sh` on this machine stands for two nodes sharing one file system (as
 * the lab's do), with real stopped and running processes, a real flock held by another process, and marker
 * files as the engine writes them. CRIU is not needed for what is checked here (test/sweeper.e2e-spec.ts
 * runs the whole thing with real CRIU on the lab nodes).
 */
import { type ChildProcess, spawn } from 'node:child_process';
import {
  copyFileSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  utimesSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeRecord } from '@spotlift/domain';
import { LocalNodeShell, aNode } from '@spotlift/testing';
import { SystemClock } from '../clock.js';
import { NodeOps } from '../node-ops/node-ops.js';
import { startProbeProcess } from '../node-ops/process/live-commands.js';
import { OWNER_MARKER_FILE, type OwnerMarker } from './owner-marker.js';
import { Sweeper, type SweepRecords } from './sweeper.js';

const state = (pid: number) => {
  try {
    return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  } catch {
    return 'gone';
  }
};

describe('Sweeper on real processes and files', () => {
  let root: string;
  const children: ChildProcess[] = [];
  const nodes: NodeRecord[] = [aNode('node-a'), aNode('node-b')];
  const records: Record<string, 'none' | 'live' | 'finished'> = {};
  const store: SweepRecords = { stateOf: (id) => Promise.resolve(records[id] ?? 'none') };
  const sweeper = () =>
    new Sweeper(
      new NodeOps(new LocalNodeShell()),
      store,
      { imageRoot: root, keepImagesMaxAgeMs: 3_600_000, orphanGraceMs: 0 },
      new SystemClock(),
    );

  const sleeper = (stopped: boolean): number => {
    const c = spawn('sleep', ['997'], { stdio: 'ignore' });
    children.push(c);
    if (stopped) process.kill(c.pid!, 'SIGSTOP');
    return c.pid!;
  };

  const leave = (
    id: string,
    pid: number,
    opts: { restored?: number; lockFile?: string; keep?: boolean; age?: number },
  ) => {
    const m = (role: OwnerMarker['role']): OwnerMarker => ({
      v: 1,
      migrationId: id,
      role,
      workloadId: 'wl-1',
      pid,
      tasks: 1,
      sourceNodeId: 'node-a',
      destinationNodeId: 'node-b',
      keepImages: opts.keep ?? false,
      lockFile: opts.lockFile ?? '/run/spotlift/locks/none-such.lock',
      createdAt: new Date(Date.now() - (opts.age ?? 0)).toISOString(),
    });
    for (const [side, role] of [
      ['src', 'source'],
      ['dst', 'destination'],
    ] as const) {
      mkdirSync(join(root, id, side), { recursive: true });
      writeFileSync(join(root, id, side, OWNER_MARKER_FILE), JSON.stringify(m(role)));
      writeFileSync(join(root, id, side, 'pages-1.img'), 'memory');
    }
    if (opts.restored) writeFileSync(join(root, id, 'dst', 'restored.pid'), String(opts.restored));
  };

  beforeAll(() => {
    root = mkdtempSync(join(tmpdir(), 'sweeper-int-'));
  });

  afterAll(() => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
  });

  it('resumes a frozen source whose destination runs nothing, kills one whose copy runs, and removes the images', async () => {
    const lone = sleeper(true);
    leave('mig-resume', lone, {});
    const twin = sleeper(true);
    const copy = sleeper(false);
    leave('mig-kill', twin, { restored: copy });
    const report = await sweeper().sweep(nodes);
    const item = (id: string) => report.items.find((i) => i.migrationId === id)!;
    expect(item('mig-resume')).toMatchObject({ action: 'resume-source', removedFrom: ['node-a', 'node-b'] });
    expect(item('mig-kill')).toMatchObject({ action: 'kill-source', restoredPid: copy });
    expect(item('mig-kill').error).toBeUndefined();
    expect(state(lone)).toMatch(/[RS]/);
    expect(state(copy)).toMatch(/[RS]/);
    await new Promise((r) => setTimeout(r, 100));
    expect(['gone', 'Z']).toContain(state(twin));
    expect(existsSync(join(root, 'mig-resume'))).toBe(false);
    expect(existsSync(join(root, 'mig-kill'))).toBe(false);
  });

  it('leaves a frozen source alone while its lock is held or its record is live', async () => {
    const locked = sleeper(true);
    const lockFile = `/run/spotlift/locks/sweeper-int-${process.pid}.lock`;
    mkdirSync('/run/spotlift/locks', { recursive: true });
    writeFileSync(lockFile, '');
    // Its own process group: the sleep child inherits the lock's descriptor and must die with it.
    const holder = spawn('flock', [lockFile, 'sleep', '997'], { stdio: 'ignore', detached: true });
    children.push(holder);
    await new Promise((r) => setTimeout(r, 300));
    leave('mig-locked', locked, { lockFile });
    const own = sleeper(true);
    leave('mig-live', own, {});
    records['mig-live'] = 'live';
    try {
      const report = await sweeper().sweep(nodes);
      expect(report.items.find((i) => i.migrationId === 'mig-locked')?.action).toBe('skip');
      expect(report.items.find((i) => i.migrationId === 'mig-live')?.action).toBe('skip');
      expect(state(locked)).toBe('T');
      expect(state(own)).toBe('T');
      expect(existsSync(join(root, 'mig-locked', 'src', OWNER_MARKER_FILE))).toBe(true);
      process.kill(-holder.pid!, 'SIGKILL');
      await new Promise((r) => setTimeout(r, 200));
      const after = await sweeper().sweep(nodes);
      expect(after.items.find((i) => i.migrationId === 'mig-locked')?.action).toBe('resume-source');
      expect(state(locked)).toMatch(/[RS]/);
    } finally {
      rmSync(lockFile, { force: true });
    }
  });

  it('reports (and keeps frozen) a source whose destination pid is another program; a reused source pid is gone', async () => {
    const frozen = sleeper(true);
    const stranger = spawn('sleep', ['996'], { stdio: 'ignore' });
    children.push(stranger);
    leave('mig-stranger', frozen, { restored: stranger.pid! });
    const running = sleeper(false);
    leave('mig-reused', running, {});
    // A marker naming this pid with another start time: the process it named is gone.
    const path = join(root, 'mig-reused', 'src', OWNER_MARKER_FILE);
    const m = JSON.parse(readFileSync(path, 'utf8')) as OwnerMarker;
    writeFileSync(path, JSON.stringify({ ...m, identity: { bootId: 'b', pidNs: '1', startTime: '1' } }));
    const report = await sweeper().sweep(nodes);
    expect(report.items.find((i) => i.migrationId === 'mig-stranger')).toMatchObject({ action: 'report' });
    expect(state(frozen)).toBe('T');
    expect(existsSync(join(root, 'mig-stranger', 'src', 'pages-1.img'))).toBe(true);
    const reused = report.items.find((i) => i.migrationId === 'mig-reused')!;
    expect(reused.action).toBe('remove-images');
    expect(reused.why).toMatch(/gone/);
    expect(state(running)).toMatch(/[RS]/);
  });

  it('keeps images kept on purpose until they are old, then removes them', async () => {
    const a = sleeper(false);
    leave('mig-keep-young', a, { keep: true, age: 60_000 });
    leave('mig-keep-old', a, { keep: true, age: 2 * 3_600_000 });
    const report = await sweeper().sweep(nodes);
    expect(report.items.find((i) => i.migrationId === 'mig-keep-young')?.removedFrom).toEqual([]);
    expect(report.items.find((i) => i.migrationId === 'mig-keep-old')?.removedFrom).toEqual(['node-a', 'node-b']);
    expect(existsSync(join(root, 'mig-keep-young'))).toBe(true);
    expect(existsSync(join(root, 'mig-keep-old'))).toBe(false);
  });

  it("kills a dead post-copy trial's probe and CRIU helper and removes its directory, and nothing else", async () => {
    const name = 'trial-0badc0de';
    mkdirSync(join(root, name, 'src'), { recursive: true });
    mkdirSync(join(root, name, 'dst'), { recursive: true });
    // The real probe, stopped as the lazy dump leaves it.
    // Descriptors this test inherited (the lab lock's flock) closed: CRIU refuses to dump a tree holding a lock.
    const started = spawn(
      'sh',
      ['-c', `for f in 3 4 5 6 7 8 9; do eval "exec $f>&-"; done; ${startProbeProcess(120, name)}`],
      {
        stdio: ['ignore', 'pipe', 'ignore'],
      },
    );
    let out = '';
    started.stdout.on('data', (b: Buffer) => (out += b.toString()));
    await new Promise((r) => started.on('exit', r));
    const probe = Number(/PROBE_PID (\d+)/.exec(out)?.[1]);
    expect(readFileSync(`/proc/${probe}/comm`, 'utf8').trim()).toBe(name);
    // A real lazy dump: the probe stopped, CRIU's page server waiting for a lazy-pages daemon that never comes.
    const dump = await new NodeOps(new LocalNodeShell()).lazyDumpStart(
      nodes[0]!,
      probe,
      join(root, name, 'src'),
      { address: '127.0.0.1', port: 27000 + (process.pid % 1000) },
      undefined,
      30_000,
    );
    expect(dump.stdout).toMatch(/LAZY_READY/);
    const pageServer = Number(readFileSync(join(root, name, 'src', 'lazy-dump.pid'), 'utf8'));
    // A CRIU helper working in the trial's directory (a program named criu) and one working elsewhere.
    const criu = join(root, 'criu');
    copyFileSync('/bin/sh', criu);
    const helper = spawn(criu, ['-c', 'sleep 995; :', 'lazy-pages', `${root}/${name}/dst/`], { stdio: 'ignore' });
    const other = spawn(criu, ['-c', 'sleep 995; :', 'lazy-pages', `${root}/mig-other/dst/`], { stdio: 'ignore' });
    // A user's process that only looks like the probe (a sleep), and the trial dir old enough to be dead.
    const bystander = sleeper(false);
    children.push(helper, other);
    await new Promise((r) => setTimeout(r, 200));
    const old = (Date.now() - 6 * 60_000) / 1000;
    utimesSync(join(root, name), old, old);
    const report = await sweeper().sweep(nodes);
    const item = report.items.find((i) => i.migrationId === name)!;
    expect(item).toMatchObject({ action: 'remove-trial', removedFrom: ['node-a', 'node-b'] });
    expect(item.error).toBeUndefined();
    expect(item.killed).toEqual(
      expect.arrayContaining([
        { nodeId: 'node-a', pid: helper.pid, what: 'criu' },
        { nodeId: 'node-a', pid: probe, what: 'probe' },
        { nodeId: 'node-a', pid: pageServer, what: 'criu' },
      ]),
    );
    await new Promise((r) => setTimeout(r, 200));
    expect(['gone', 'Z']).toContain(state(probe));
    expect(['gone', 'Z']).toContain(state(helper.pid!));
    expect(['gone', 'Z']).toContain(state(pageServer));
    expect(state(other.pid!)).toMatch(/[RS]/);
    expect(state(bystander)).toMatch(/[RS]/);
    expect(existsSync(join(root, name))).toBe(false);
  });

  it('leaves a young trial directory alone: a trial may be at work in it', async () => {
    mkdirSync(join(root, 'trial-00c0ffee', 'src'), { recursive: true });
    const report = await sweeper().sweep(nodes);
    expect(report.items.find((i) => i.migrationId === 'trial-00c0ffee')?.action).toBe('skip');
    expect(existsSync(join(root, 'trial-00c0ffee', 'src'))).toBe(true);
  });

  it('ignores a marker a node holds about another node (a node speaks for itself only)', async () => {
    const victim = sleeper(true);
    leave('mig-lie', victim, {});
    // Only node-b answers: its copy of the source marker claims node-a's process.
    const report = await sweeper().sweep([aNode('node-b')]);
    const item = report.items.find((i) => i.migrationId === 'mig-lie')!;
    expect(item.action).not.toBe('resume-source');
    expect(item.action).not.toBe('kill-source');
    expect(state(victim)).toBe('T');
  });
});
