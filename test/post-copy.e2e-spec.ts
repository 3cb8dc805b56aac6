/**
 * Post-copy, capability probing and fallback through the REST API, with real CRIU on this machine's kernel:
 * real Redis, sshd nodes in their own network namespaces, the orchestrator in-process. The lab's
 * `nodes.sh up` raises fs.pipe-max-size, which post-copy needs here (LAB.md). This kernel has no soft-dirty
 * tracking, so pre-copy must fall back to stop-and-copy and say why.
 */
import { existsSync, readFileSync } from 'node:fs';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { nodeAddress, nodeOfPid, pidAlive } from '@spotlift/testing';
import { type E2eEnv, procState, setupE2e, sleep } from './support/e2e-env.js';

let env: E2eEnv;
const IMAGE_ROOT = process.env.SPOTLIFT_IMAGE_ROOT ?? '/var/lib/spotlift/images';

beforeAll(async () => {
  env = await setupE2e({ nodes: 3, redisPort: 16391, migrationTimeoutMs: 240_000, heartbeatTimeoutMs: 60_000 });
}, 240_000);

afterAll(async () => {
  await env?.teardown();
}, 120_000);

/** The workload carried on after T from NODE only, with its checks passing, seqs consecutive from there. */
async function continuesOn(name: string, node: string, since: number): Promise<void> {
  await env.collector.waitForCount(name, 5, { from: nodeAddress(node), since, timeoutMs: 30_000 });
  expect(env.collector.onlyFromSince(name, nodeAddress(node), since)).toBe(true);
  expect(env.collector.anyNotOk(name)).toBe(false);
  expect(env.collector.isSeqGapFree(name, since)).toBe(true);
}

describe('post-copy over REST, real CRIU', () => {
  it('moves a 256 MiB workload: trial first, downtime ends at resume, the job completes when all pages arrived', async () => {
    const name = 'pc-move';
    const { pid, workload } = await env.launch(name, 'node-a', { memMiB: 256 });
    const before = Date.now();
    const m = await env.finished(
      (await env.create({ workload: workload.id, destination: 'node-b', strategy: 'post-copy' })).id,
    );

    expect(m.state).toBe('completed');
    expect(m.strategy).toBe('post-copy');
    expect(m.fallbacks ?? []).toEqual([]);
    // The pair had no cached trial: a real one ran first, as the job's 'probe' phase.
    expect(m.phases.map((p) => p.name)).toEqual([
      'probe',
      'preflight',
      'prepare',
      'dump',
      'transfer',
      'restore',
      'verify',
      'pages',
      'commit',
      'cleanup',
    ]);
    expect(m.phases.every((p) => p.ok)).toBe(true);
    expect(m.phases[0]!.detail).toMatch(/post-copy trial node-a -> node-b: ok/);

    // Downtime: freeze (CRIU seized the tree) to the restored tree running; pages keep arriving after.
    expect(m.downtimeMs).toBeGreaterThan(0);
    expect(m.downtimeMs).toBeLessThan(5_000);
    const resumed = Date.parse(m.resumedAt!);
    expect(Date.parse(m.frozenAt!)).toBeLessThan(resumed);
    expect(Date.parse(m.postCopy!.allPagesAt!)).toBeGreaterThanOrEqual(resumed);
    expect(m.postCopy!.pagesAfterResumeMs).toBeGreaterThan(0);
    // Every process reported all its pages; 256 MiB is 65536 pages, nearly all of them lazy.
    expect(m.postCopy!.transferred!.every((t) => t.split('/')[0] === t.split('/')[1])).toBe(true);
    expect(m.postCopy!.lazyPages).toBeGreaterThan(60_000);
    expect(m.bytes.pages).toBe(m.postCopy!.lazyPages! * 4096);
    expect(m.criu.restore?.restoreTimeUs).toBeGreaterThan(0);
    // The commit came only after the pages: the source was killed after allPagesAt.
    const commit = m.phases.find((p) => p.name === 'commit')!;
    expect(Date.parse(commit.startedAt)).toBeGreaterThanOrEqual(Date.parse(m.postCopy!.allPagesAt!) - 5);
    console.log(
      `[post-copy e2e] 256 MiB: downtime ${m.downtimeMs!.toFixed(0)} ms, all pages ${m.postCopy!.pagesAfterResumeMs!.toFixed(0)} ms after resume`,
    );

    // Exactly one copy, and it carried on with its memory intact.
    expect(pidAlive(pid)).toBe(false);
    expect(nodeOfPid(m.restoredPid!)).toBe('node-b');
    expect(env.collector.isSeqGapFree(name, before - 2_000)).toBe(true);
    await continuesOn(name, 'node-b', Date.now());
    expect(env.collector.last(name)!.pid).toBe(m.restoredPid);
  });

  it('uses the cached trial for the same pair: no probe phase, and auto picks post-copy for a tight budget', async () => {
    const { workload } = await env.launch('pc-auto', 'node-a', { memMiB: 128 });
    const m = await env.finished(
      (await env.create({ workload: workload.id, destination: 'node-b', strategy: 'auto', downtimeBudgetMs: 400 })).id,
    );
    expect(m.state).toBe('completed');
    expect(m.requestedStrategy).toBe('auto');
    expect(m.strategy).toBe('post-copy');
    expect(m.phases.some((p) => p.name === 'probe')).toBe(false);
    expect(m.strategyReason).toMatch(/^auto: /);
    expect(m.strategyReason).toMatch(/post-copy trial cached from/);
    expect(m.strategyReason).toMatch(/dirty rate not measured/);
    // Why not pre-copy: this kernel has no soft-dirty tracking.
    expect(m.fallbacks!.join(' ')).toMatch(/pre-copy unavailable: .*mem_dirty_track/);
    await continuesOn('pc-auto', 'node-b', Date.now());
  });

  it('pre-copy on this kernel falls back to stop-and-copy, says why, and still completes', async () => {
    const name = 'pc-precopy';
    const { pid, workload } = await env.launch(name, 'node-a', { memMiB: 64 });
    const before = Date.now();
    const m = await env.finished(
      (await env.create({ workload: workload.id, destination: 'node-c', strategy: 'pre-copy' })).id,
    );
    expect(m.state).toBe('completed');
    expect(m.requestedStrategy).toBe('pre-copy');
    expect(m.strategy).toBe('stop-and-copy');
    expect(m.fallbacks).toHaveLength(1);
    expect(m.fallbacks![0]).toMatch(
      /^pre-copy -> stop-and-copy: node-a lacks mem_dirty_track \(kernel without CONFIG_MEM_SOFT_DIRTY/,
    );
    expect(m.strategyReason).toMatch(/requested pre-copy; fell back to stop-and-copy/);
    // Decided before anything ran: no round was attempted.
    expect(m.phases.map((p) => p.name)).toEqual([
      'preflight',
      'prepare',
      'dump',
      'transfer',
      'restore',
      'verify',
      'commit',
      'cleanup',
    ]);
    expect(m.rounds).toBeUndefined();
    expect(pidAlive(pid)).toBe(false);
    expect(nodeOfPid(m.restoredPid!)).toBe('node-c');
    expect(env.collector.isSeqGapFree(name, before - 2_000)).toBe(true);
    await continuesOn(name, 'node-c', Date.now());
  });

  it('answers bad strategy options with 400 and queues nothing', async () => {
    const { workload } = await env.launch('pc-bad-input', 'node-a', { memMiB: 16 });
    const before = (await env.orch.api<MigrationRecord[]>('GET', '/migrations')).body.length;
    const bad = [
      { workload: workload.id, strategy: 'warp-speed' },
      { workload: workload.id, strategy: 'pre-copy', downtimeBudgetMs: 0 },
      { workload: workload.id, strategy: 'auto', deadline: 'tomorrow' },
      { workload: workload.id, strategy: 'auto', deadline: new Date(Date.now() - 60_000).toISOString() },
    ];
    for (const body of bad) {
      const res = await env.orch.api<{ message?: string }>('POST', '/migrations', body);
      expect(res.status).toBe(400);
    }
    expect((await env.orch.api<MigrationRecord[]>('GET', '/migrations')).body.length).toBe(before);
  });

  it('rolls back when the lazy-pages daemon dies mid-transfer: the incomplete copy is killed, the source resumes', async () => {
    const name = 'pc-broken';
    const { pid, workload } = await env.launch(name, 'node-a', { memMiB: 256 });
    const { id } = await env.create({ workload: workload.id, destination: 'node-b', strategy: 'post-copy' });
    // Wait for the restored tree to run and the pages phase to start, then kill the destination's daemon.
    const pidfile = `${IMAGE_ROOT}/${id}/dst/lazy-pages.pid`;
    for (let i = 0; ; i++) {
      const { body } = await env.orch.api<MigrationRecord>('GET', `/migrations/${id}`);
      if (body.phases.at(-1)?.name === 'pages' && existsSync(pidfile)) break;
      if (i > 2_000 || ['completed', 'rolled_back', 'failed'].includes(body.state))
        throw new Error(`no pages phase to break: ${body.state}`);
      await sleep(20);
    }
    process.kill(Number(readFileSync(pidfile, 'utf8').trim()), 'SIGKILL');
    const killedAt = Date.now();
    const m = await env.finished(id);

    expect(m.state).toBe('rolled_back');
    expect(m.rollbackReason).toMatch(/post-copy could not finish/);
    expect(m.rollbackReason).toMatch(/incomplete and is killed/);
    expect(m.rollbackReason).toMatch(/never resumed, still holds the complete memory/);
    expect(m.phases.find((p) => p.name === 'pages')!.ok).toBe(false);
    expect(m.phases.some((p) => p.name === 'commit')).toBe(false);
    expect(m.phases.find((p) => p.name === 'rollback')!.detail).toMatch(/resumed/);
    // Exactly one copy: the original, running again on node-a; the restored one is gone.
    expect(procState(pid)).toMatch(/^[RS]$/);
    expect(nodeOfPid(pid)).toBe('node-a');
    const w = await env.orch.api<WorkloadRecord>('GET', `/workloads/${workload.id}`);
    expect(w.body).toMatchObject({ nodeId: 'node-a', pid, state: 'running' });
    // Its memory is the frozen one, intact: checks pass and node-a's seqs run on without a hole.
    const t = Date.now();
    await env.collector.waitForCount(name, 5, { from: nodeAddress('node-a'), since: t, timeoutMs: 30_000 });
    expect(env.collector.onlyFromSince(name, nodeAddress('node-a'), t)).toBe(true);
    const fromA = env.collector.heartbeats(name).filter((h) => h.from === nodeAddress('node-a'));
    expect(fromA.every((h, i) => i === 0 || h.seq === fromA[i - 1]!.seq + 1)).toBe(true);
    expect(env.collector.heartbeats(name, t).every((h) => h.ok)).toBe(true);
    console.log(`[post-copy e2e] rollback ${Date.now() - killedAt} ms after the daemon was killed`);
  });
});

describe('post-copy over the tls and ssh transports, real CRIU', () => {
  // The lazy pages flow the other way (the source serves, the destination's daemon pulls): the transport is
  // opened reversed, with CRIU's TLS (the source's page server presents its certificate) or an SSH tunnel.
  it.each([
    ['tls', 'node-a', 'node-b'],
    ['ssh', 'node-b', 'node-c'],
  ] as const)('pulls every lazy page over %s (%s -> %s); the workload continues', async (transport, from, to) => {
    const name = `e2e-pc-${transport}`;
    const { pid, workload } = await env.launch(name, from, { memMiB: 64 });
    const m = await env.finished(
      (await env.create({ workload: workload.id, destination: to, strategy: 'post-copy', transport })).id,
    );
    expect({ state: m.state, why: m.error ?? m.rollbackReason }).toEqual({ state: 'completed', why: undefined });
    expect(m).toMatchObject({ strategy: 'post-copy', transport });
    expect(m.fallbacks ?? []).toEqual([]);
    expect(m.postCopy!.lazyPages).toBeGreaterThan(16_384 * 0.9);
    const transferred = m.postCopy!.transferred ?? [];
    expect(transferred.length).toBeGreaterThan(0);
    expect(transferred.every((t) => t.split('/')[0] === t.split('/')[1])).toBe(true);
    expect(m.phases.find((p) => p.name === 'dump')!.detail).toMatch(new RegExp(`over ${transport}$`));
    expect(pidAlive(pid)).toBe(false);
    expect(nodeOfPid(m.restoredPid!)).toBe(to);
    await continuesOn(name, to, Date.now());
  });
});
