// The engine's live strategies for real, through the orchestrator (REST -> queue -> worker -> SSH -> CRIU), in
// two qemu VMs with Debian 12's cloud kernel (soft-dirty and userfaultfd on): the scenarios of
// libs/engine/test/scenarios/live-migration.scenarios.json that an orchestrator can run (engine settings at
// their defaults, or ones a job carries itself: `maxRounds`), plus stop-and-copy of the same workload for the
// downtime ratios.
//
// The VMs are registered as orchestrator nodes from their node JSON (pinned host key, dataAddress on the
// private link); images go to the guests' /lab tmpfs. The workload is scripts/lab/qemu/workload.c in its own
// pid namespace; after each move its counter must go on and it must verify the sum of all its memory.
//
// Post-copy and hybrid run smaller than their scenarios: under TCG every lazy page costs ~12 ms (64 MiB took
// 200 s to arrive, README findings), so post-copy moves a 16 MiB workload and both use a 4 MiB hot set.
// Environment: SPOTLIFT_QEMU_VM_MIB (1024), SPOTLIFT_QEMU_POSTCOPY_MIB (16), SPOTLIFT_QEMU_HYBRID_MIB (64),
// SPOTLIFT_QEMU_LAZY_HOT_MIB (4), SPOTLIFT_QEMU_MAXROUNDS_MIB (64), SPOTLIFT_QEMU_REDIS_PORT (16400).
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { startRedis, stopRedis } from '@spotlift/testing';
import { startOrchestrator, waitForMigration, type Orchestrator } from '../support/orchestrator-harness.js';
import {
  LAB_DIR,
  PAGE,
  REPO,
  bootPair,
  envInt,
  parseStatus,
  shutdownPair,
  sleep,
  startWorkload,
  verifyWorkload,
  type Ssh,
  type VmPair,
} from './support.js';

interface Scenario {
  name: string;
  workload: { memMiB: number; hotMiB: number };
  job: { strategy: 'pre-copy' | 'post-copy' | 'hybrid'; downtimeBudgetMs?: number };
  engine: Record<string, unknown>;
  expect: { state: string; strategy: string; rounds: number; stopReason?: string; finalPagesBelowRound1?: number };
}

const REDIS_PORT = envInt('SPOTLIFT_QEMU_REDIS_PORT', 16400);
const IMAGE_ROOT = '/lab/images';
const STATUS = '/lab/w/status';
const VM_MIB = envInt('SPOTLIFT_QEMU_VM_MIB', 1024);
const SIZE_OVERRIDE: Partial<Record<string, number>> = {
  'post-copy': envInt('SPOTLIFT_QEMU_POSTCOPY_MIB', 16),
  hybrid: envInt('SPOTLIFT_QEMU_HYBRID_MIB', 64),
  'max-rounds': envInt('SPOTLIFT_QEMU_MAXROUNDS_MIB', 64),
};
const LAZY_HOT_MIB = envInt('SPOTLIFT_QEMU_LAZY_HOT_MIB', 4);
/** Engine settings a job carries itself (`POST /migrations`); scenarios needing others do not run here. */
const PER_JOB = new Set(['maxRounds']);
const scenarios = (
  JSON.parse(readFileSync(join(REPO, 'libs/engine/test/scenarios/live-migration.scenarios.json'), 'utf8')) as {
    scenarios: Scenario[];
  }
).scenarios.filter((s) => Object.keys(s.engine).every((k) => PER_JOB.has(k)));
const first = (strategy: string): Scenario =>
  scenarios.find((s) => s.job.strategy === strategy && Object.keys(s.engine).length === 0)!;

describe('qemu lab: the engine live strategies through the orchestrator', () => {
  let work: string;
  let vms: VmPair | undefined;
  let orch: Orchestrator | undefined;
  let a: Ssh;
  let b: Ssh;
  const done: MigrationRecord[] = [];

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'spotlift-qemu-strat-'));
    vms = await bootPair({ tag: 'sls', vmMiB: VM_MIB, workDir: work });
    ({ a, b } = vms);
    await startRedis(REDIS_PORT);
    const node = (s: Ssh) => ({
      id: s.node.id,
      host: s.node.host,
      port: s.node.port,
      user: s.node.user,
      hostKey: s.node.hostKey,
      dataAddress: s.node.dataAddress,
    });
    orch = await startOrchestrator({
      nodesConfig: { ssh: { privateKeyPath: a.node.privateKeyPath }, nodes: [node(a), node(b)] },
      redisPort: REDIS_PORT,
      imageRoot: IMAGE_ROOT,
    });
  }, 600_000);

  afterAll(async () => {
    await orch?.close().catch((e: unknown) => console.error(String(e)));
    await stopRedis(REDIS_PORT).catch(() => undefined);
    if (vms) await shutdownPair(vms.names, [vms.a, vms.b]);
    if (done.length) {
      const dir = join(LAB_DIR, 'qemu', 'results');
      mkdirSync(dir, { recursive: true });
      const slim = done.map(
        ({ id, strategy, requestedStrategy, downtimeMs, rounds, precopy, postCopy, criu, phases, fallbacks }) => ({
          id,
          strategy,
          requestedStrategy,
          downtimeMs,
          rounds,
          precopy,
          postCopy,
          fallbacks,
          criu,
          phases: phases.map((p) => ({ name: p.name, ok: p.ok, durationMs: p.durationMs })),
        }),
      );
      writeFileSync(
        join(dir, `strategies-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
        JSON.stringify(slim, null, 2),
      );
    }
    if (work) rmSync(work, { recursive: true, force: true });
  }, 120_000);

  /** Readlink of `<dst>/<dir>/parent` for each dir, on the destination VM ('-' when there is no link). */
  async function parentLinks(id: string, dirs: string[]): Promise<Record<string, string>> {
    const base = `${IMAGE_ROOT}/${id}/dst`;
    const out = await b.sh(dirs.map((d) => `echo "${d} $(readlink ${base}/${d}/parent || echo -)"`).join('\n'));
    return Object.fromEntries(
      out
        .trim()
        .split('\n')
        .map((l) => l.split(' ') as [string, string]),
    );
  }

  /**
   * Starts a workload on vm-a, registers it, moves it to vm-b with `job`, checks its continuity there, and
   * leaves vm-b clean (restored tree killed, kept images removed) for the next move.
   */
  async function move(
    label: string,
    sizeMiB: number,
    hotMiB: number,
    job: Record<string, unknown>,
    inspect?: (m: MigrationRecord) => Promise<void>,
  ): Promise<MigrationRecord> {
    await a.sh(`rm -rf /lab/w`);
    await b.sh(`rm -rf /lab/w; mkdir -p /lab/w`); // the workload rewrites its status file by rename there
    const { pid } = await startWorkload(a, { sizeMiB, hotMiB, status: STATUS });
    const w = await orch!.api<WorkloadRecord>('POST', '/workloads', { name: `qemu-${label}`, node: a.node.id, pid });
    expect(w.status).toBe(201);
    const before = parseStatus(await a.sh(`cat ${STATUS}`));
    const t0 = Date.now();
    const created = await orch!.api<MigrationRecord>('POST', '/migrations', {
      workload: w.body.id,
      destination: b.node.id,
      keepImages: true,
      ...job,
    });
    expect(created.status).toBe(201);
    const m = await waitForMigration<MigrationRecord>(orch!, created.body.id, 840_000);
    done.push(m);
    console.log(
      `[qemu] ${label} ${sizeMiB} MiB (hot ${hotMiB}): ${m.state} as ${m.strategy} in ${Date.now() - t0} ms, downtime ${m.downtimeMs?.toFixed(0)} ms; ` +
        `phases ${m.phases.map((p) => `${p.name}${p.ok ? '' : '!'}=${Math.round(p.durationMs ?? 0)}`).join(' ')}` +
        (m.fallbacks?.length ? `; fallbacks ${m.fallbacks.join(' | ')}` : '') +
        (m.error ? `; error ${m.error}` : ''),
    );
    if (m.rounds) console.log(`[qemu] ${label} rounds ${JSON.stringify(m.rounds)} ${JSON.stringify(m.precopy)}`);
    if (m.postCopy) console.log(`[qemu] ${label} post-copy ${JSON.stringify(m.postCopy)}`);
    try {
      expect(m.state).toBe('completed');
      expect(m.restoredPid).toBeGreaterThan(1);
      // continuity on vm-b: the counter went on from where it was frozen, and all memory checks out
      await sleep(1000);
      const after = parseStatus(await b.sh(`cat ${STATUS}`));
      expect(after.pid).toBe(m.restoredPid);
      expect(after.counter).toBeGreaterThan(before.counter);
      const verified = await verifyWorkload(b, m.restoredPid!, STATUS);
      expect(verified.verify).toMatch(/^ok:\d+$/);
      await expect(a.sh(`[ ! -d /proc/${pid} ]`)).resolves.toBeDefined(); // the source is gone
      if (inspect) await inspect(m);
    } finally {
      await b.sh(`kill -9 ${m.restoredPid ?? 0} 2>/dev/null; rm -rf ${IMAGE_ROOT}/${m.id}; true`);
      await a.sh(`kill -9 ${pid} 2>/dev/null; rm -rf ${IMAGE_ROOT}/${m.id}; true`);
    }
    return m;
  }

  it('pre-copy: rounds converge, each round stored on the job, parent links on the destination', async () => {
    const s = first('pre-copy');
    const m = await move('pre-copy', s.workload.memMiB, s.workload.hotMiB, s.job, async (rec) => {
      const links = await parentLinks(rec.id, ['.', ...rec.rounds!.map((r) => `round-${r.round}`)]);
      const want: Record<string, string> = { '.': `round-${rec.rounds!.length}`, 'round-1': '-' };
      for (const r of rec.rounds!.slice(1)) want[`round-${r.round}`] = `../round-${r.round - 1}`;
      expect(links).toEqual(want);
    });
    expect(m.strategy).toBe('pre-copy');
    const rounds = m.rounds!;
    expect(rounds.length).toBeGreaterThanOrEqual(2);
    const totalPages = (s.workload.memMiB << 20) / PAGE;
    expect(rounds[0]!.pagesWritten).toBeGreaterThan(totalPages * 0.9);
    for (const r of rounds.slice(1)) {
      expect(r.pagesWritten).toBeLessThan(rounds[0]!.pagesWritten / 2);
      expect(r.pagesSkippedParent).toBeGreaterThan(0);
    }
    expect(m.precopy!.finalPagesWritten!).toBeLessThan(rounds[0]!.pagesWritten * s.expect.finalPagesBelowRound1!);
    expect(m.precopy!.stopReason).toBeTruthy();
    // The lab's CRIU (scripts/lab/criu patch) restores parent-image pages lazily on both VMs: the restore leaves
    // the memory to a local lazy-pages daemon, and the job completed only once every page was in.
    expect(m.precopy!.restore).toBe('lazy');
    expect(m.precopy!.lazyFill!.transferred!.every((t) => t.split('/')[0] === t.split('/')[1])).toBe(true);
    expect(m.precopy!.lazyFill!.lazyPages!).toBeGreaterThan(totalPages * 0.9);
    expect(Date.parse(m.precopy!.lazyFill!.allPagesAt!)).toBeGreaterThanOrEqual(Date.parse(m.resumedAt!));
    // the per-round stats are on the job as GET /migrations/:id returns it
    const got = await orch!.api<MigrationRecord>('GET', `/migrations/${m.id}`);
    expect(got.body.rounds).toEqual(rounds);
    console.log(
      `[qemu] scenario "${s.name}": ${rounds.length} rounds (scenario: ${s.expect.rounds}), stop "${m.precopy!.stopReason}" (scenario: "${s.expect.stopReason}")`,
    );
  }, 600_000);

  it('stop-and-copy of the same workload, and the downtime ratio pre-copy / stop-and-copy', async () => {
    const s = first('pre-copy');
    const sc = await move('stop-and-copy', s.workload.memMiB, s.workload.hotMiB, { strategy: 'stop-and-copy' });
    expect(sc.strategy).toBe('stop-and-copy');
    const pc = done.find((x) => x.strategy === 'pre-copy' && x.state === 'completed');
    expect(pc).toBeDefined();
    const ratio = pc!.downtimeMs! / sc.downtimeMs!;
    const phase = (m: MigrationRecord, name: string) => m.phases.find((p) => p.name === name)?.durationMs ?? NaN;
    console.log(
      `[qemu] RATIO engine pre-copy (${pc!.precopy!.restore} restore)/stop-and-copy downtime (${s.workload.memMiB} MiB, hot ${s.workload.hotMiB} MiB): ` +
        `${pc!.downtimeMs!.toFixed(0)} / ${sc.downtimeMs!.toFixed(0)} ms = ${ratio.toFixed(3)} (target <= 0.15); ` +
        `restore ${phase(pc!, 'restore')} / ${phase(sc, 'restore')} ms; all pages in ${pc!.precopy!.lazyFill?.pagesAfterResumeMs?.toFixed(0)} ms after resume`,
    );
    // The target is reported, not asserted (TCG timing varies with the host's load, README findings); the lazy
    // restore must at least beat the eager one of the whole memory.
    expect(ratio).toBeLessThan(1);
    expect(phase(pc!, 'restore')).toBeLessThan(phase(sc, 'restore'));
  }, 600_000);

  it("pre-copy at the round limit: a budget the dirty set cannot meet stops at the job's maxRounds, and the job says so", async () => {
    const s = scenarios.find((x) => x.engine.maxRounds !== undefined)!;
    const maxRounds = s.engine.maxRounds as number;
    // 100 ms is below the fixed freeze alone (300 ms): no round can converge, the hot set keeps the rounds
    // from shrinking to nothing, so only the round limit stops them.
    const m = await move('max-rounds', SIZE_OVERRIDE['max-rounds']!, s.workload.hotMiB, {
      ...s.job,
      downtimeBudgetMs: 100,
      maxRounds,
    });
    expect(m.strategy).toBe('pre-copy');
    expect(m.maxRounds).toBe(maxRounds);
    expect(m.rounds).toHaveLength(s.expect.rounds);
    expect(m.precopy!.stopReason).toContain(s.expect.stopReason!);
    expect(m.phases.find((p) => p.name === 'precopy')!.detail).toContain(s.expect.stopReason!);
    const got = await orch!.api<MigrationRecord>('GET', `/migrations/${m.id}`);
    expect(got.body.precopy!.stopReason).toBe(m.precopy!.stopReason);
  }, 600_000);

  it('post-copy: resumes before the pages arrived, the job completes once all did', async () => {
    const s = first('post-copy');
    const m = await move('post-copy', SIZE_OVERRIDE['post-copy']!, LAZY_HOT_MIB, s.job);
    expect(m.strategy).toBe('post-copy');
    expect(m.rounds ?? []).toHaveLength(s.expect.rounds);
    expect(m.postCopy!.transferred!.every((t) => t.split('/')[0] === t.split('/')[1])).toBe(true);
    expect(Date.parse(m.postCopy!.allPagesAt!)).toBeGreaterThanOrEqual(Date.parse(m.resumedAt!));
  }, 600_000);

  it('hybrid: local rounds copied over, lazy final linked to the last round', async () => {
    const s = first('hybrid');
    const m = await move('hybrid', SIZE_OVERRIDE.hybrid!, LAZY_HOT_MIB, s.job, async (rec) => {
      const n = rec.rounds!.length;
      const links = await parentLinks(rec.id, ['.', ...rec.rounds!.map((r) => `round-${r.round}`)]);
      expect(links['.']).toBe(`round-${n}`);
      for (const r of rec.rounds!.slice(1)) expect(links[`round-${r.round}`]).toBe(`../round-${r.round - 1}`);
    });
    expect(m.strategy).toBe('hybrid');
    expect(m.rounds!.length).toBeGreaterThanOrEqual(1);
    expect(m.postCopy!.transferred!.every((t) => t.split('/')[0] === t.split('/')[1])).toBe(true);
    // Every page comes lazily: the last round's dirty set from the source's lazy page server, the parent rounds'
    // pages from the destination's copies of the rounds (the lab's CRIU marks parent holes PE_LAZY and its daemon
    // reads them locally; stock CRIU 4.2.1 would load them all before the tree resumes, README findings).
    expect(m.postCopy!.lazyPages!).toBeGreaterThan(m.rounds![0]!.pagesWritten * 0.9);
    const sc = done.find((x) => x.strategy === 'stop-and-copy' && x.state === 'completed');
    if (sc && SIZE_OVERRIDE.hybrid === first('pre-copy').workload.memMiB) {
      console.log(
        `[qemu] RATIO engine hybrid/stop-and-copy downtime (${SIZE_OVERRIDE.hybrid} MiB, hot ${LAZY_HOT_MIB} MiB): ` +
          `${m.downtimeMs!.toFixed(0)} / ${sc.downtimeMs!.toFixed(0)} ms = ${(m.downtimeMs! / sc.downtimeMs!).toFixed(3)}`,
      );
    }
  }, 900_000);
});
