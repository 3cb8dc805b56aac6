/**
 * Checkpoints encrypted at rest, for real: lab nodes, real CRIU and openssl, real Redis, the orchestrator
 * in-process with a master key file. A workload on node-a is checkpointed to node-c: nothing on node-c holds
 * its memory in clear (grep for a string the workload holds finds nothing there, while a search through the
 * orchestrator, which decrypts, finds it, streamed as found); its export, which the orchestrator decrypts and
 * writes itself, unpacks and crit reads it (the workload's declared files, encrypted by the orchestrator on their
 * way to node-c, are in it in clear); with another key in the orchestrator the checkpoint is refused (409)
 * and nothing runs; a page changed on node-c (its own SHA256SUMS rewritten to match)
 * is refused by the sums recorded at the take; with its key it is restored on node-b, where it goes on.
 */
import { randomBytes } from 'node:crypto';
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CheckpointRecord, WorkloadRecord } from '@spotlift/domain';
import { nodeDataDir, nodeOfPid, type HeartbeatCollector, type LabConfig } from '@spotlift/testing';
import { SshNodeShell } from '@spotlift/transport';
import type { CheckpointInspection } from '../apps/orchestrator/src/checkpoints/forensics.service.js';
import { AppConfig } from '../apps/orchestrator/src/config/app-config.js';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import type { Orchestrator } from './support/orchestrator-harness.js';
import { until } from './support/poll.js';

const REDIS_PORT = 6477;
const SUFFIX = randomBytes(3).toString('hex');
const CP_ROOT = `/var/lib/spotlift/checkpoints-enc-${SUFFIX}`;
/** In the workload's memory (argv, python objects): what must not be readable on the storage node. */
const NAME = `enc-needle-${SUFFIX}`;
/** A container of the lab's heartbeat image (scripts/lab), checkpointed encrypted too. */
const CT = `enc-ct-${SUFFIX}`;
const CT_IMAGE = 'localhost/spotlift-heartbeat:lab';
/** Its declared path under /srv/data (each node's own data directory). */
const DATA = `enc-${SUFFIX}`;

let env: E2eEnv;
let lab: LabConfig;
let orch: Orchestrator;
let collector: HeartbeatCollector;
let shell: SshNodeShell;
const keyDir = mkdtempSync(join(tmpdir(), 'spotlift-cpkey-'));

async function onNode(nodeId: string, command: string): Promise<{ code: number | null; stdout: string }> {
  const node = lab.nodes.find((n) => n.id === nodeId)!;
  return shell.exec(node, command, { timeoutMs: 60_000 });
}

async function settled(id: string, states: string[]): Promise<CheckpointRecord> {
  return until(
    `checkpoint ${id} to reach ${states.join('|')}`,
    async () => {
      const cp = (await orch.api<CheckpointRecord>('GET', `/checkpoints/${id}`)).body;
      return states.includes(cp.state) ? cp : undefined;
    },
    120_000,
  );
}

/** POST /checkpoints/:id/search as NDJSON, read line by line as the lines arrive; `stopAfter` hangs up early. */
async function streamSearch(id: string, pattern: string, stopAfter?: number) {
  const res = await fetch(`${orch.baseUrl}/checkpoints/${id}/search`, {
    method: 'POST',
    headers: {
      authorization: `Bearer ${orch.token}`,
      'content-type': 'application/json',
      accept: 'application/x-ndjson',
    },
    body: JSON.stringify({ pattern, maxHits: 50, context: 8 }),
  });
  const lines: Record<string, unknown>[] = [];
  const reader = res.body!.getReader();
  let buf = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    buf += Buffer.from(value).toString();
    for (let i = buf.indexOf('\n'); i >= 0; i = buf.indexOf('\n')) {
      lines.push(JSON.parse(buf.slice(0, i)) as Record<string, unknown>);
      buf = buf.slice(i + 1);
    }
    if (stopAfter !== undefined && lines.length >= stopAfter) {
      await reader.cancel();
      break;
    }
  }
  return { status: res.status, type: res.headers.get('content-type'), lines };
}

/** GET /checkpoints/:id/export, read whole. */
async function exportTar(id: string): Promise<{ status: number; tar: Buffer; ms: number }> {
  const t0 = Date.now();
  const res = await fetch(`${orch.baseUrl}/checkpoints/${id}/export`, {
    headers: { authorization: `Bearer ${orch.token}` },
  });
  const tar = Buffer.from(await res.arrayBuffer());
  return { status: res.status, tar, ms: Date.now() - t0 };
}

beforeAll(async () => {
  const keyFile = join(keyDir, 'checkpoint.key');
  writeFileSync(keyFile, randomBytes(32).toString('hex'), { mode: 0o600 });
  env = await setupE2e({
    redisPort: REDIS_PORT,
    env: { SPOTLIFT_CHECKPOINT_KEY_FILE: keyFile },
    config: (l) => ({
      ...l,
      nodes: l.nodes.map((n) => (n.id === 'node-c' ? { ...n, checkpointRoot: CP_ROOT } : n)),
      evacuation: { storageNodeId: 'node-c' },
    }),
  });
  ({ lab, orch, collector } = env);
  shell = new SshNodeShell({ privateKey: readFileSync(lab.ssh.privateKeyPath) });
}, 240_000);

afterAll(async () => {
  await onNode('node-c', `rm -rf '${CP_ROOT}'`).catch(() => undefined);
  for (const n of ['node-a', 'node-b'])
    await onNode(n, `podman rm --force --ignore --time 0 ${CT}`).catch(() => undefined);
  for (const n of ['node-a', 'node-b', 'node-c']) rmSync(join(nodeDataDir(n), DATA), { recursive: true, force: true });
  await shell?.close();
  await env?.teardown();
  rmSync(keyDir, { recursive: true, force: true });
}, 120_000);

describe('checkpoints encrypted at rest (real CRIU, openssl on the nodes)', () => {
  it('stores ciphertext only, searches it decrypted (streamed), refuses another key, restores with its own', async () => {
    // A declared path with a file holding the string too: its tar must not reach node-c in clear either.
    for (const n of ['node-a', 'node-b', 'node-c'])
      rmSync(join(nodeDataDir(n), DATA), { recursive: true, force: true });
    mkdirSync(join(nodeDataDir('node-a'), DATA), { recursive: true });
    writeFileSync(join(nodeDataDir('node-a'), DATA, 'secret.txt'), `${NAME} in a declared file\n`);
    const w = (
      await env.launch(NAME, 'node-a', {
        memMiB: 16,
        workload: { dataFiles: [`/srv/data/${DATA}/journal.log`] },
        fields: { paths: [`/srv/data/${DATA}`] },
      })
    ).workload;
    const created = await orch.api<CheckpointRecord>('POST', '/checkpoints', { workload: w.id, transport: 'tcp' });
    expect(created.status).toBe(201);
    const cp = await settled(created.body.id, ['stored', 'failed']);
    expect(cp.error).toBeUndefined();
    expect(cp.state).toBe('stored');
    expect(cp.encryption).toMatchObject({ scheme: 'openssl-aes-256-ctr-pbkdf2', keyId: /^[0-9a-f]{16}$/ });
    expect(cp.encryption!.sums).toMatch(/^[0-9a-f]{64} {2}pages-\d+\.img$/m);
    expect(cp.phases.find((p) => p.name === 'transfer')?.detail).toMatch(/encrypted on the source/);
    expect(cp.encryption!.sums).toMatch(/^[0-9a-f]{64} {2}workload-files\.tar$/m);

    // node-c: the images are there, no file holds the needle in clear, and the pages start with openssl's salt.
    const grep = await onNode('node-c', `grep -rlF '${NAME}' '${cp.imageDir}'; echo "rc=$?"; ls '${cp.imageDir}'`);
    expect(grep.stdout).toMatch(/^rc=1$/m);
    expect(grep.stdout).toMatch(/pages-\d+\.img/);
    expect(grep.stdout).toMatch(/workload-files\.tar/);
    const head = await onNode('node-c', `head -c 8 '${cp.imageDir}'/pages-1.img`);
    expect(head.stdout).toBe('Salted__');

    // The orchestrator decrypts: the needle is in memory, streamed hit by hit, then a summary line.
    const search = await streamSearch(cp.id, NAME);
    expect(search.status).toBe(200);
    expect(search.type).toMatch(/application\/x-ndjson/);
    const hits = search.lines.filter((l) => 'hit' in l);
    expect(hits.length).toBeGreaterThan(0);
    expect(JSON.stringify(hits[0])).toContain(Buffer.from(NAME).toString('hex'));
    expect(search.lines.at(-1)).toMatchObject({ done: { hitCount: hits.length, checkpoint: cp.id } });
    // A client that hangs up after the first hit: the answer had started, the orchestrator carries on serving.
    const early = await streamSearch(cp.id, NAME, 1);
    expect(early.lines).toHaveLength(1);
    expect((await orch.api('GET', '/health/live')).status).toBe(200);
    console.log(
      `[encryption] stored ${cp.bytes.stored} bytes, take ${Date.parse(cp.storedAt!) - Date.parse(cp.createdAt)} ms; ${hits.length} hits streamed`,
    );

    // The export: node-c holds no key, so the orchestrator decrypts and writes the archive; crit reads it.
    const exported = await exportTar(cp.id);
    expect(exported.status).toBe(200);
    const dir0 = mkdtempSync(join(tmpdir(), 'enc-export-'));
    try {
      writeFileSync(join(dir0, 'cp.tar'), exported.tar);
      execFileSync('tar', ['-xf', 'cp.tar'], { cwd: dir0 });
      expect(readdirSync(dir0).sort()).toEqual([
        'checkpoint',
        'config.dump',
        'cp.tar',
        'spec.dump',
        'spotlift-export.json',
        'stats-dump',
      ]);
      const crit = (img: string) =>
        JSON.parse(execFileSync('crit', ['show', join(dir0, 'checkpoint', img)], { encoding: 'utf8' })) as {
          entries: Record<string, any>[]; // eslint-disable-line @typescript-eslint/no-explicit-any
        };
      const root = crit('pstree.img').entries[0]!.pid as number;
      expect(crit(`core-${root}.img`).entries[0]!.tc.comm).toBe('python3');
      expect(crit('stats-dump').entries[0]!.dump.pages_written).toBe(cp.criu.dump!.pagesWritten);
      // the pages in the archive are plaintext: the string the workload holds is there; the declared files too
      expect(readFileSync(join(dir0, 'checkpoint', `pages-1.img`)).includes(NAME)).toBe(true);
      const listed = execFileSync('tar', ['-tf', join(dir0, 'checkpoint', 'workload-files.tar')], { encoding: 'utf8' });
      expect(listed).toContain(`srv/data/${DATA}/secret.txt`);
      console.log(`[encryption] export ${exported.ms} ms, ${Math.round(exported.tar.length / 2 ** 20)} MiB`);
    } finally {
      rmSync(dir0, { recursive: true, force: true });
    }

    // Another master key in the orchestrator (the same Buffer the engine holds, changed in place, then put
    // back): inspect, export and restore are refused with the reason, and nothing is queued or run.
    const key = orch.app.get(AppConfig).checkpointKey!;
    const saved = Buffer.from(key);
    key.fill(7);
    try {
      const inspect = await orch.api<{ code: string; message: string }>('GET', `/checkpoints/${cp.id}/inspect`);
      expect(inspect.status).toBe(409);
      expect(inspect.body.message).toMatch(/encrypted under checkpoint key .* this orchestrator holds key/);
      expect((await exportTar(cp.id)).status).toBe(409);
      const refused = await orch.api<{ code: string }>('POST', `/checkpoints/${cp.id}/restore`, {
        destination: 'node-b',
      });
      expect(refused.status).toBe(409);
      expect(refused.body.code).toBe('checkpoint_key');
      const after = (await orch.api<CheckpointRecord>('GET', `/checkpoints/${cp.id}`)).body;
      expect(after.state).toBe('stored');
      expect(after.restore).toBeUndefined();
    } finally {
      saved.copy(key);
    }

    // node-c changes a page and rewrites its own SHA256SUMS to match: the sums recorded at the take refuse it on
    // node-b before anything is decrypted or restored; then the original files are put back.
    const dir = `'${cp.imageDir}'`;
    const tamper = await onNode(
      'node-c',
      `cd ${dir} && cp pages-1.img ../pages.orig && cp SHA256SUMS ../sums.orig && ` +
        `printf X | dd of=pages-1.img bs=1 seek=4096 conv=notrunc 2>/dev/null && ` +
        `sha256sum $(awk '{print $2}' SHA256SUMS) > ../sums.new && mv ../sums.new SHA256SUMS`,
    );
    expect(tamper.code).toBe(0);
    expect((await orch.api('POST', `/checkpoints/${cp.id}/restore`, { destination: 'node-b' })).status).toBe(202);
    const refusedRestore = (await settled(cp.id, ['stored', 'restored'])).restore!;
    expect(refusedRestore.error).toMatch(/differ from the checksums recorded when checkpoint .* was taken \(tampered/);
    expect(refusedRestore.error).toMatch(/pages-1\.img: FAILED/);
    expect(refusedRestore.phases.map((p) => p.name)).not.toContain('restore');
    expect(refusedRestore.restoredPid).toBeUndefined();
    await onNode('node-c', `cd ${dir} && mv ../pages.orig pages-1.img && mv ../sums.orig SHA256SUMS`);

    // Its own key: restored on node-b, and the workload goes on there.
    const asked = await orch.api<CheckpointRecord>('POST', `/checkpoints/${cp.id}/restore`, { destination: 'node-b' });
    expect(asked.status).toBe(202);
    const restored = await settled(cp.id, ['restored', 'stored']);
    expect(restored.restore?.error).toBeUndefined();
    expect(restored.state).toBe('restored');
    expect(restored.restore!.attempt).toBe(2);
    expect(restored.restore!.phases.find((p) => p.name === 'transfer')?.detail).toMatch(/decrypted there/);
    const pid = restored.restore!.restoredPid!;
    env.track(pid);
    expect(nodeOfPid(pid)).toBe('node-b');
    const since = Date.now();
    await collector.waitForCount(NAME, collector.heartbeats(NAME).length + 5, { timeoutMs: 15_000 });
    expect(collector.heartbeats(NAME, since).length).toBeGreaterThan(0);
    const wl = (await orch.api<WorkloadRecord>('GET', `/workloads/${w.id}`)).body;
    expect(wl).toMatchObject({ state: 'running', nodeId: 'node-b', pid });
    // the declared file, decrypted on node-b and unpacked through the orchestrator's guard, is back at its path
    expect(readFileSync(join(nodeDataDir('node-b'), DATA, 'secret.txt'), 'utf8')).toBe(`${NAME} in a declared file\n`);
  }, 240_000);

  it('a Podman container: its archive stored encrypted, inspected and searched here, exported decrypted, restored on node-b', async () => {
    const run = await onNode(
      'node-a',
      `podman run --detach --name ${CT} --network host ${CT_IMAGE} ${CT} 16 ${collector.host} ${collector.port} 100`,
    );
    expect(run.code).toBe(0);
    await collector.waitForCount(CT, 5, { timeoutMs: 30_000 });
    const reg = await orch.api<WorkloadRecord>('POST', '/workloads', { node: 'node-a', kind: 'podman', container: CT });
    expect(reg.status).toBe(201);
    const procCmdline = (await onNode('node-a', `tr '\\0' ' ' < /proc/${reg.body.pid}/cmdline`)).stdout.trim();
    const created = await orch.api<CheckpointRecord>('POST', '/checkpoints', { workload: reg.body.id });
    expect(created.status).toBe(201);
    const cp = await settled(created.body.id, ['stored', 'failed']);
    expect(cp.error).toBeUndefined();
    expect(cp).toMatchObject({ state: 'stored', kind: 'podman', storageNodeId: 'node-c' });
    expect(cp.encryption!.sums).toMatch(/^[0-9a-f]{64} {2}checkpoint\.tar$/);
    // node-c holds ciphertext: the container's name (in its config and its memory) is nowhere in the archive.
    const onC = await onNode(
      'node-c',
      `grep -c -F '${CT}' '${cp.imageDir}/checkpoint.tar'; head -c 8 '${cp.imageDir}/checkpoint.tar'`,
    );
    expect(onC.stdout).toBe('0\nSalted__');
    // Inspected and searched: the orchestrator unpacked the archive itself and stored the members back encrypted.
    const t0 = Date.now();
    const inspected = await orch.api<CheckpointInspection>('GET', `/checkpoints/${cp.id}/inspect`);
    const inspectMs = Date.now() - t0;
    expect(inspected.status).toBe(200);
    expect(inspected.body.inspection.processes[0]!.cmdline?.join(' ')).toBe(procCmdline);
    expect(inspected.body.container).toMatchObject({ name: CT, unpackedNow: true });
    const found = await streamSearch(cp.id, CT);
    expect(found.status).toBe(200);
    expect(found.lines.filter((l) => 'hit' in l).length).toBeGreaterThan(0);
    // node-c still holds no plaintext: the unpacked members are ciphertext too.
    const after = await onNode(
      'node-c',
      `grep -rlF '${CT}' '${cp.imageDir}'; echo "rc=$?"; ls '${cp.imageDir}/unpacked/checkpoint'`,
    );
    expect(after.stdout).toMatch(/^rc=1$/m);
    expect(after.stdout).toMatch(/pages-\d+\.img/);
    // The export is Podman's archive, decrypted by the orchestrator: tar lists the CRIU images in it.
    const exported = await exportTar(cp.id);
    expect(exported.status).toBe(200);
    const dir0 = mkdtempSync(join(tmpdir(), 'enc-ct-export-'));
    try {
      writeFileSync(join(dir0, 'ct.tar'), exported.tar);
      const listed = execFileSync('tar', ['-tf', join(dir0, 'ct.tar')], { encoding: 'utf8' });
      expect(listed).toMatch(/^checkpoint\/pages-\d+\.img$/m);
      expect(listed).toMatch(/^config\.dump$/m);
    } finally {
      rmSync(dir0, { recursive: true, force: true });
    }
    // Restored on node-b: the archive checked against the recorded sum and decrypted there, then imported.
    expect((await orch.api('POST', `/checkpoints/${cp.id}/restore`, { destination: 'node-b' })).status).toBe(202);
    const restored = await settled(cp.id, ['restored', 'stored']);
    expect(restored.restore?.error).toBeUndefined();
    expect(restored.state).toBe('restored');
    expect(restored.restore!.phases.find((p) => p.name === 'transfer')?.detail).toMatch(/decrypted on node-b/);
    expect(nodeOfPid(restored.restore!.restoredPid!)).toBe('node-b');
    const since = Date.now();
    await collector.waitForCount(CT, collector.heartbeats(CT).length + 5, { timeoutMs: 30_000 });
    expect(collector.heartbeats(CT, since).length).toBeGreaterThan(0);
    console.log(
      `[encryption] container: archive ${cp.bytes.images} bytes, stored in ${Date.parse(cp.storedAt!) - Date.parse(cp.createdAt)} ms, first inspect (unpack) ${inspectMs} ms, export ${exported.ms} ms`,
    );
  }, 180_000);
});
