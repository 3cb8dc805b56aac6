// Container pre-copy for real, through the orchestrator (REST -> queue -> worker -> SSH -> Podman, runc, CRIU),
// between two qemu VMs with Debian 12's cloud kernel (soft-dirty on; this machine's kernel has none, so the
// lab nodes answer pre-copy for containers with a 400). The VMs boot with the Podman layer
// (scripts/lab/qemu/build-podman-layer.sh). A small image (busybox + the lab workload, `podman import`) exists
// on vm-a only, so the move sends it first. The container runs scripts/lab/qemu/workload.c with a hot set it
// dirties all the time: the final `--with-previous` checkpoint must carry far fewer pages than the round, the
// counter must go on on vm-b and the workload must verify the sum of all its memory there.
// TCG is slow (podman run ~15 s, a 32 MiB pre-checkpoint ~20 s), hence the small container.
// Environment: SPOTLIFT_QEMU_CONTAINER_MIB (32), SPOTLIFT_QEMU_CONTAINER_HOT_MIB (4),
// SPOTLIFT_QEMU_CONTAINER_REDIS_PORT (16401).
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { startRedis, stopRedis } from '@spotlift/testing';
import { startOrchestrator, waitForMigration, type Orchestrator } from '../support/orchestrator-harness.js';
import { PAGE, bootPair, envInt, parseStatus, shutdownPair, sleep, type Ssh, type VmPair } from './support.js';

const REDIS_PORT = envInt('SPOTLIFT_QEMU_CONTAINER_REDIS_PORT', 16401);
const MIB = envInt('SPOTLIFT_QEMU_CONTAINER_MIB', 32);
const HOT_MIB = envInt('SPOTLIFT_QEMU_CONTAINER_HOT_MIB', 4);
const IMAGE = 'localhost/spotlift-qemu-work:lab';
const NAME = 'qwork';
/** The workload's status file, inside the container (read through /proc/PID/root on the VM). */
const STATUS = '/tmp/status';

describe('qemu lab: container pre-copy (Podman --pre-checkpoint / --with-previous) through the orchestrator', () => {
  let work: string;
  let vms: VmPair | undefined;
  let orch: Orchestrator | undefined;
  let a: Ssh;
  let b: Ssh;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'spotlift-qemu-ctr-'));
    vms = await bootPair({ tag: 'ctr', vmMiB: 1024, workDir: work, podman: true });
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
      imageRoot: '/lab/images',
    });
  }, 600_000);

  afterAll(async () => {
    await orch?.close().catch((e: unknown) => console.error(String(e)));
    await stopRedis(REDIS_PORT).catch(() => undefined);
    if (vms) await shutdownPair(vms.names, [vms.a, vms.b]);
    if (work) rmSync(work, { recursive: true, force: true });
  }, 120_000);

  /** The container's main pid on `vm` and the workload's status line (undefined: not running there). */
  async function status(vm: Ssh): Promise<{ pid: number; line: string } | undefined> {
    const out = await vm.sh(
      `p=$(podman container inspect --format '{{.State.Pid}}' ${NAME} 2>/dev/null || echo 0)
       [ "$p" -gt 0 ] 2>/dev/null && echo "pid=$p $(cat /proc/$p/root${STATUS})" || echo none`,
    );
    if (out.trim() === 'none') return undefined;
    return { pid: Number(/^pid=(\d+)/.exec(out)![1]), line: out.trim().replace(/^pid=\d+ /, '') };
  }

  it(`moves a running ${MIB} MiB container vm-a -> vm-b by pre-copy: the image sent, one round, a small final checkpoint, the workload goes on`, async () => {
    // the image on vm-a only, from the guest's own busybox and workload binaries (no registry)
    await a.sh(
      `set -e; r=/lab/ctr-root; rm -rf $r; mkdir -p $r/bin $r/tmp $r/proc $r/sys $r/dev $r/etc
       cp /usr/bin/busybox /usr/bin/workload $r/bin/; ln -s busybox $r/bin/sh; chmod 1777 $r/tmp
       tar -C $r -cf /lab/ctr-root.tar . && rm -rf $r
       podman import -q --change 'ENTRYPOINT ["/bin/workload"]' /lab/ctr-root.tar ${IMAGE} >/dev/null
       podman run -d --name ${NAME} --network host ${IMAGE} ${MIB} ${HOT_MIB} ${STATUS} 20 >/dev/null`,
      240_000,
    );
    expect(await b.sh(`podman image exists ${IMAGE} && echo yes || echo no`)).toBe('no\n');
    let before = await status(a);
    for (let i = 0; i < 60 && !before?.line.includes('counter='); i++) {
      await sleep(1000);
      before = await status(a);
    }
    expect(before?.line).toMatch(/counter=\d+/);
    const reg = await orch!.api<WorkloadRecord>('POST', '/workloads', {
      node: a.node.id,
      kind: 'podman',
      container: NAME,
    });
    expect(reg.status).toBe(201);

    const t0 = Date.now();
    const created = await orch!.api<MigrationRecord>('POST', '/migrations', {
      workload: reg.body.id,
      destination: b.node.id,
      strategy: 'pre-copy',
    });
    expect(created.status).toBe(201);
    const m = await waitForMigration<MigrationRecord>(orch!, created.body.id, 600_000);
    console.log(
      `[qemu] container pre-copy ${MIB} MiB (hot ${HOT_MIB}): ${m.state} in ${Date.now() - t0} ms, downtime ${m.downtimeMs?.toFixed(0)} ms; ` +
        `phases ${m.phases.map((p) => `${p.name}${p.ok ? '' : '!'}=${Math.round(p.durationMs ?? 0)}`).join(' ')}; ` +
        `rounds ${JSON.stringify(m.rounds)}; precopy ${JSON.stringify(m.precopy)}; container ${JSON.stringify(m.container)}` +
        (m.error ? `; error ${m.error}` : ''),
    );
    expect(m.error).toBeUndefined();
    expect(m.state).toBe('completed');
    expect(m.strategy).toBe('pre-copy');
    expect(m.container?.image).toMatchObject({ sent: true });
    // the round moved (nearly) all memory while the container ran; the freeze only what it dirtied since
    const pages = (MIB << 20) / PAGE;
    expect(m.rounds).toHaveLength(1);
    expect(m.rounds![0]!.pagesWritten).toBeGreaterThan(pages * 0.9);
    expect(m.precopy!.finalPagesWritten!).toBeLessThan(m.rounds![0]!.pagesWritten / 2);
    // (Podman's --print-stats has no pages_skipped_parent: the final's pages written are the evidence)
    expect(m.criu.dump!.pagesWritten).toBe(m.precopy!.finalPagesWritten);
    expect(m.downtimeMs).toBeGreaterThan(0);

    // exactly one running copy: on vm-b, where it went on from where it was frozen and verifies all its memory
    expect(await status(a)).toBeUndefined();
    await sleep(1000);
    const after = await status(b);
    expect(after).toBeDefined();
    expect(after!.pid).toBe(m.restoredPid);
    expect(parseStatus(after!.line).counter).toBeGreaterThan(parseStatus(before!.line).counter);
    await b.sh(`kill -USR1 ${after!.pid}`);
    let verified = parseStatus((await status(b))!.line);
    for (let i = 0; i < 120 && !/^(ok|BAD)/.test(verified.verify); i++) {
      await sleep(500);
      verified = parseStatus((await status(b))!.line);
    }
    expect(verified.verify).toMatch(/^ok:\d+$/);
  }, 600_000);
});
