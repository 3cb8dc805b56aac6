/**
 * Forensic checkpoints, for real: lab nodes, real CRIU, real Redis, the orchestrator in-process. A running
 * workload on node-a (heartbeats, a data file it appends to, a TCP listener) gets a forensic checkpoint on
 * node-c: it keeps running (its heartbeats show a short gap only), the stored images are inspected through
 * REST and match what /proc showed before and what CRIU's own `crit` decodes on node-c, a memory search finds
 * a string the workload holds and not one it does not, and bad requests are refused without touching anything.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, readlinkSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AuditEntry, CheckpointRecord, WorkloadRecord } from '@spotlift/domain';
import type { SearchResult } from '@spotlift/criu';
import {
  nodeDataDir,
  nodeOfPid,
  pidAlive,
  stopWorkload,
  type HeartbeatCollector,
  type LabConfig,
} from '@spotlift/testing';
import { SshNodeShell } from '@spotlift/transport';
import type { CheckpointInspection } from '../apps/orchestrator/src/checkpoints/forensics.service.js';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import type { Orchestrator } from './support/orchestrator-harness.js';
import { until } from './support/poll.js';

const REDIS_PORT = 6480;
const TCP_PORT = 27_700;
const SUFFIX = randomBytes(3).toString('hex');
const CP_ROOT = `/var/lib/spotlift/checkpoints-fx-${SUFFIX}`;
/** The workload's name is in its memory (argv, python objects): the string a search must find. */
const NAME = `fx-needle-${SUFFIX}`;
const DATA_DIR = `fx-${SUFFIX}`;

let env: E2eEnv;
let lab: LabConfig;
let orch: Orchestrator;
let collector: HeartbeatCollector;
let shell: SshNodeShell;

async function onNode(nodeId: string, command: string): Promise<string> {
  const node = lab.nodes.find((n) => n.id === nodeId)!;
  return (await shell.exec(node, command, { timeoutMs: 60_000 })).stdout;
}

async function settled(id: string): Promise<CheckpointRecord> {
  return until(
    `checkpoint ${id} to settle`,
    async () => {
      const cp = (await orch.api<CheckpointRecord>('GET', `/checkpoints/${id}`)).body;
      return cp.state === 'stored' || cp.state === 'failed' ? cp : undefined;
    },
    120_000,
  );
}

/** What /proc shows of a pid: its command line and, per fd, the target and the position. */
function procView(pid: number) {
  const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0$/, '').split('\0');
  const fds = readdirSync(`/proc/${pid}/fd`).map((fd) => ({
    fd: Number(fd),
    target: readlinkSync(`/proc/${pid}/fd/${fd}`),
    pos: Number(/^pos:\s+(\d+)/m.exec(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'))?.[1]),
  }));
  return { cmdline, fds };
}

beforeAll(async () => {
  env = await setupE2e({
    redisPort: REDIS_PORT,
    config: (l) => ({
      ...l,
      nodes: l.nodes.map((n) => (n.id === 'node-c' ? { ...n, checkpointRoot: CP_ROOT } : n)),
      evacuation: { storageNodeId: 'node-c' },
    }),
  });
  ({ lab, orch, collector } = env);
  shell = new SshNodeShell({ privateKey: readFileSync(lab.ssh.privateKeyPath) });
  mkdirSync(join(nodeDataDir('node-a'), DATA_DIR), { recursive: true });
}, 240_000);

afterAll(async () => {
  await onNode('node-c', `rm -rf '${CP_ROOT}'`).catch(() => undefined);
  rmSync(join(nodeDataDir('node-a'), DATA_DIR), { recursive: true, force: true });
  await shell?.close();
  await env?.teardown();
}, 120_000);

describe('forensic checkpoints (real CRIU)', () => {
  let w: WorkloadRecord;
  let cp: CheckpointRecord;
  let before: ReturnType<typeof procView>;
  let after: ReturnType<typeof procView>;
  const dataFile = `/srv/data/${DATA_DIR}/journal.log`;

  it('takes a forensic copy of a running workload: stored on node-c, the workload ran on with a short gap', async () => {
    w = (
      await env.launch(NAME, 'node-a', {
        memMiB: 16,
        workload: { tcpListen: TCP_PORT, dataFiles: [dataFile] },
      })
    ).workload;
    before = procView(w.pid);
    const since = Date.now();
    const created = await orch.api<CheckpointRecord>('POST', '/checkpoints', {
      workload: w.id,
      mode: 'forensic',
      transport: 'tcp',
    });
    expect(created.status).toBe(201);
    expect(created.body).toMatchObject({ mode: 'forensic', state: 'queued', storageNodeId: 'node-c' });
    cp = await settled(created.body.id);
    after = procView(w.pid);
    expect(cp.error).toBeUndefined();
    expect(cp.state).toBe('stored');
    expect(cp.phases.map((p) => `${p.name}:${p.ok}`)).toEqual([
      'preflight:true',
      'prepare:true',
      'dump:true',
      'transfer:true',
      'verify:true',
      'commit:true',
      'cleanup:true',
    ]);
    // The same process runs on, on node-a, and the record still says so.
    expect(pidAlive(w.pid)).toBe(true);
    const wl = (await orch.api<WorkloadRecord>('GET', `/workloads/${w.id}`)).body;
    expect(wl).toMatchObject({ state: 'running', nodeId: 'node-a', pid: w.pid });
    // Its heartbeats carried on: no datagram lost, and the longest silence is the freeze (well under 2 s).
    await collector.waitForCount(NAME, collector.heartbeats(NAME).length + 10, { timeoutMs: 10_000 });
    const hb = collector.heartbeats(NAME, since);
    expect(collector.seqReport(NAME, since).gapFree).toBe(true);
    const silences = hb.slice(1).map((h, i) => h.at - hb[i]!.at);
    const longest = Math.max(...silences);
    expect(longest).toBeLessThan(2_000);
    expect(cp.criu.dump!.frozenTimeUs).toBeGreaterThan(0);
    console.log(
      `[forensics] frozen ${(cp.criu.dump!.frozenTimeUs / 1000).toFixed(1)} ms (CRIU), longest heartbeat silence ${longest} ms, pages ${cp.criu.dump!.pagesWritten}`,
    );
  });

  it('inspect: the stored images say what /proc said before, and what crit decodes on node-c', async () => {
    const t0 = Date.now();
    const res = await orch.api<CheckpointInspection>('GET', `/checkpoints/${cp.id}/inspect`);
    const ms = Date.now() - t0;
    expect(res.status).toBe(200);
    const { inspection, writer, mode } = res.body;
    expect(mode).toBe('forensic');
    expect(writer).toMatchObject({ nodeId: 'node-a', criuVersion: expect.stringMatching(/^4\./) });
    const root = inspection.processes[0]!;
    expect(root.pid).toBe(1); // the init of its own pid namespace
    expect(root.cmdline).toEqual(before.cmdline);
    expect(root.cmdline!.join(' ')).toContain(NAME);
    // The data file: its path, and a position between what /proc showed before and after the dump.
    const data = root.files.find((f) => f.target === dataFile)!;
    const procData = before.fds.find((f) => f.target === dataFile)!;
    expect(data.fd).toBe(procData.fd);
    expect(data.pos).toBeGreaterThanOrEqual(procData.pos);
    expect(data.pos).toBeLessThanOrEqual(after.fds.find((f) => f.target === dataFile)!.pos);
    // The listener, and the UDP socket, are the sockets /proc named, at the same fds.
    const listener = inspection.sockets.find((s) => s.state === 'LISTEN')!;
    expect(listener).toMatchObject({ family: 'INET', proto: 'TCP', local: `0.0.0.0:${TCP_PORT}` });
    const procSockets = before.fds.filter((f) => f.target.startsWith('socket:'));
    expect(inspection.sockets.map((s) => `socket:[${s.ino}]`).sort()).toEqual(procSockets.map((f) => f.target).sort());
    for (const s of inspection.sockets) {
      expect(procSockets.find((f) => f.target === `socket:[${s.ino}]`)!.fd).toBe(s.owners[0]!.fd);
    }
    expect(root.mappings.some((m) => m.kind === 'file' && /python/.test(m.file ?? ''))).toBe(true);
    expect(root.mappings.reduce((n, m) => n + m.dumpedPages, 0)).toBeGreaterThan(16 * 256);

    // crit, CRIU's own decoder, on the same files on node-c.
    const crit = async (img: string) =>
      (
        JSON.parse(await onNode('node-c', `crit decode --pretty -i '${cp.imageDir}/${img}'`)) as {
          entries: Record<string, any>[]; // eslint-disable-line @typescript-eslint/no-explicit-any
        }
      ).entries;
    expect(inspection.processes.map((p) => p.pid)).toEqual((await crit('pstree.img')).map((e) => e.pid as number));
    const isk = (await crit('files.img')).find((f) => f.isk?.state === 'LISTEN')!.isk;
    expect(listener).toMatchObject({ ino: isk.ino, local: `${isk.src_addr[0]}:${isk.src_port}` });
    const vmas = (await crit('mm-1.img'))[0]!.vmas as { start: string; end: string }[];
    expect(root.mappings.map((m) => [m.start, m.end])).toEqual(vmas.map((v) => [v.start, v.end]));
    console.log(`[forensics] inspect ${ms} ms, ${Object.keys(res.body.imageFiles).length} image files`);
  });

  it('search: finds a string the workload holds (its name), not one it never held', async () => {
    const t0 = Date.now();
    const found = await orch.api<SearchResult & { durationMs: number }>('POST', `/checkpoints/${cp.id}/search`, {
      pattern: NAME,
      maxHits: 20,
    });
    const ms = Date.now() - t0;
    expect(found.status).toBe(200);
    expect(found.body.hits.length).toBeGreaterThan(0);
    for (const h of found.body.hits) {
      expect(h.pid).toBe(1);
      expect(h.vaddr).toMatch(/^0x[0-9a-f]+$/);
      expect(h.mapping).not.toBe('?');
      expect(h.text).toContain(NAME);
    }
    const absent = await orch.api<SearchResult>('POST', `/checkpoints/${cp.id}/search`, {
      pattern: `never-held-${randomBytes(8).toString('hex')}`,
    });
    expect(absent.status).toBe(200);
    expect(absent.body).toMatchObject({ hits: [] });
    expect(absent.body.truncated).toBeUndefined();
    expect(absent.body.bytesScanned).toBe(cp.criu.dump!.pagesWritten * 4096);
    console.log(
      `[forensics] search ${ms} ms for ${found.body.hits.length} hit(s) in ${Math.round(found.body.bytesScanned / 2 ** 20)} MiB`,
    );
  });

  it('export: a tar in Podman’s layout that crit reads, with the metadata checkpointctl reads and what is missing', async () => {
    const t0 = Date.now();
    const res = await fetch(`${orch.baseUrl}/checkpoints/${cp.id}/export`, {
      headers: { authorization: `Bearer ${orch.token}` },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/x-tar');
    expect(res.headers.get('x-spotlift-unfilled')).toContain('rootfs-diff.tar');
    const tar = Buffer.from(await res.arrayBuffer());
    const ms = Date.now() - t0;
    const dir = mkdtempSync(join(tmpdir(), 'fx-export-'));
    try {
      writeFileSync(join(dir, 'cp.tar'), tar);
      execFileSync('tar', ['-xf', 'cp.tar'], { cwd: dir });
      const top = readdirSync(dir).sort();
      expect(top).toEqual(['checkpoint', 'config.dump', 'cp.tar', 'spec.dump', 'spotlift-export.json', 'stats-dump']);
      const images = readdirSync(join(dir, 'checkpoint'));
      expect(images).toEqual(expect.arrayContaining(['inventory.img', 'pstree.img', 'core-1.img', 'mm-1.img']));
      expect(images.some((n) => n.endsWith('.log') || n === 'SHA256SUMS')).toBe(false);
      const crit = (img: string) =>
        JSON.parse(
          execFileSync('crit', ['decode', '--pretty', '-i', join(dir, 'checkpoint', img)], { encoding: 'utf8' }),
        ) as {
          entries: Record<string, any>[]; // eslint-disable-line @typescript-eslint/no-explicit-any
        };
      expect(crit('pstree.img').entries[0]!.pid).toBe(1);
      expect(crit('core-1.img').entries[0]!.tc.comm).toBe('python3');
      expect(crit('stats-dump').entries[0]!.dump.pages_written).toBe(cp.criu.dump!.pagesWritten);
      const config = JSON.parse(readFileSync(join(dir, 'config.dump'), 'utf8')) as Record<string, unknown>;
      expect(config).toMatchObject({ id: cp.id, name: NAME, createdTime: cp.createdAt });
      const spec = JSON.parse(readFileSync(join(dir, 'spec.dump'), 'utf8')) as { process: { args: string[] } };
      expect(spec.process.args).toEqual(before.cmdline);
      // the staging directory next to the images is gone again
      expect(await onNode('node-c', `ls -d '${cp.imageDir}'.export-* 2>/dev/null | wc -l`)).toBe('0\n');
      console.log(`[forensics] export ${ms} ms, ${Math.round(tar.length / 2 ** 20)} MiB`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('each inspection and search is in the audit log', async () => {
    const audit = (await orch.api<AuditEntry[]>('GET', '/audit?limit=50')).body;
    const mine = audit.filter((e) => e.targets.id === cp.id);
    expect(mine.filter((e) => e.method === 'GET' && e.route === '/checkpoints/:id/inspect')).toHaveLength(1);
    expect(mine.filter((e) => e.method === 'POST' && e.route === '/checkpoints/:id/search')).toHaveLength(2);
    expect(mine.filter((e) => e.method === 'GET' && e.route === '/checkpoints/:id/export')).toHaveLength(1);
  });

  it('restoring a forensic copy on another node makes a clone; the workload record stays with the original', async () => {
    const name = `${NAME}-clone`;
    const orig = (await env.launch(name, 'node-a', { memMiB: 16 })).workload;
    const created = await orch.api<CheckpointRecord>('POST', '/checkpoints', { workload: orig.id, mode: 'forensic' });
    expect((await settled(created.body.id)).state).toBe('stored');
    const asked = await orch.api<CheckpointRecord>('POST', `/checkpoints/${created.body.id}/restore`, {
      destination: 'node-b',
    });
    expect(asked.status).toBe(202);
    const done = await until(
      'the clone restore to end',
      async () => {
        const c = (await orch.api<CheckpointRecord>('GET', `/checkpoints/${created.body.id}`)).body;
        return c.state === 'restored' || (c.state === 'stored' && c.restore?.error) ? c : undefined;
      },
      120_000,
    );
    expect(done.restore?.error).toBeUndefined();
    expect(done.restore).toMatchObject({ clone: true, destinationNodeId: 'node-b' });
    const clonePid = done.restore!.restoredPid!;
    env.track(clonePid);
    expect(nodeOfPid(clonePid)).toBe('node-b');
    expect(pidAlive(orig.pid)).toBe(true);
    expect((await orch.api<WorkloadRecord>('GET', `/workloads/${orig.id}`)).body).toMatchObject({
      nodeId: 'node-a',
      pid: orig.pid,
      state: 'running',
    });
    // both copies send heartbeats: the original from node-a, the clone from node-b
    const t = Date.now();
    await until(
      'heartbeats from both copies',
      () => Promise.resolve(collector.sourcesSince(name, t).length === 2 ? true : undefined),
      15_000,
    );
    await stopWorkload(clonePid);
  });

  it('bad input: 4xx, nothing touched', async () => {
    const count = async () => (await orch.api<CheckpointRecord[]>('GET', '/checkpoints')).body.length;
    const n = await count();
    expect((await orch.api('GET', '/checkpoints/cp-nope/inspect')).status).toBe(404);
    expect((await orch.api('POST', '/checkpoints/cp-nope/search', { pattern: 'x' })).status).toBe(404);
    expect((await orch.api('GET', '/checkpoints/cp-nope/export')).status).toBe(404);
    const long = await orch.api<{ message: string }>('POST', `/checkpoints/${cp.id}/search`, {
      pattern: 'a'.repeat(600),
    });
    expect(long.status).toBe(400);
    const hex = await orch.api<{ message: string }>('POST', `/checkpoints/${cp.id}/search`, {
      pattern: 'abc',
      encoding: 'hex',
    });
    expect(hex.status).toBe(400);
    expect(hex.body.message).toMatch(/even number of hex digits/);
    // The original runs on node-a: a restore there is refused.
    const over = await orch.api<{ message: string }>('POST', `/checkpoints/${cp.id}/restore`, {
      destination: 'node-a',
    });
    expect(over.status).toBe(409);
    expect(over.body.message).toMatch(/forensic copy .* restore the clone on another node/);
    expect((await orch.api<CheckpointRecord>('GET', `/checkpoints/${cp.id}`)).body.state).toBe('stored');

    // A workload that exited meanwhile: refused before anything is recorded or frozen.
    const gone = (await env.launch(`${NAME}-gone`, 'node-a', { memMiB: 16 })).workload;
    await stopWorkload(gone.pid);
    const late = await orch.api<{ message: string }>('POST', '/checkpoints', { workload: gone.id, mode: 'forensic' });
    expect(late.status).toBe(400);
    expect(late.body.message).toMatch(/no longer runs/);
    expect(await count()).toBe(n);
    expect(pidAlive(w.pid)).toBe(true);
  });
});
