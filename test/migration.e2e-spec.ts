/**
 * Real migrations through the REST API: real Redis, real sshd nodes in their own network namespaces, real
 * CRIU on this machine's kernel (stop-and-copy). The workload (scripts/lab/workload.py) proves continuity:
 * a counter in its heap, a checksummed buffer it keeps verifying, and one UDP socket sending heartbeats
 * with a gap-free sequence number to a collector on the lab bridge.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { nodeAddress, nodeOfPid, pidAlive } from '@spotlift/testing';
import { type E2eEnv, procState, setupE2e, sleep, spawnInNode } from './support/e2e-env.js';

let env: E2eEnv;

beforeAll(async () => {
  env = await setupE2e({ nodes: 3, redisPort: 16380 });
}, 240_000);

afterAll(async () => {
  await env?.teardown();
}, 120_000);

describe('stop-and-copy over REST, real CRIU', () => {
  it('moves a 64 MiB workload from node-a to node-b; it continues there and only there', async () => {
    const { pid, workload } = await env.launch('e2e-move', 'node-a');
    const before = Date.now();
    const m = await env.migrate({ workload: workload.id, destination: 'node-b' });

    expect(m.state).toBe('completed');
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
    expect(m.phases.every((p) => p.ok && p.durationMs !== undefined)).toBe(true);
    expect(m.downtimeMs).toBeGreaterThan(0);
    expect(m.downtimeMs).toBeLessThan(60_000);
    expect(new Date(m.frozenAt!).getTime()).toBeLessThan(new Date(m.resumedAt!).getTime());
    // CRIU's own stats, parsed from stats-dump / stats-restore: 64 MiB is at least 16384 pages.
    expect(m.criu.dump?.pagesWritten).toBeGreaterThanOrEqual(16_384);
    expect(m.criu.dump?.frozenTimeUs).toBeGreaterThan(0);
    expect(m.criu.restore?.restoreTimeUs).toBeGreaterThan(0);
    expect(m.bytes.pages).toBe(m.criu.dump!.pagesWritten * 4096);
    expect(m.bytes.images).toBeGreaterThan(0);

    // Exactly one copy: the source is gone, the restored tree lives in node-b's network namespace.
    expect(pidAlive(pid)).toBe(false);
    expect(m.restoredPid).toBeDefined();
    expect(nodeOfPid(m.restoredPid!)).toBe('node-b');

    // Continuity: heartbeats from node-b with the sequence and counter picking up where node-a left off.
    const after = Date.now();
    await env.collector.waitForCount('e2e-move', 5, { from: nodeAddress('node-b'), since: after, timeoutMs: 15_000 });
    expect(env.collector.isSeqGapFree('e2e-move', before - 2_000)).toBe(true);
    expect(env.collector.anyNotOk('e2e-move')).toBe(false);
    expect(env.collector.onlyFromSince('e2e-move', nodeAddress('node-b'), after)).toBe(true);
    expect(env.collector.last('e2e-move')!.pid).toBe(m.restoredPid);

    const w = await env.orch.api<WorkloadRecord>('GET', `/workloads/${workload.id}`);
    expect(w.body).toMatchObject({ nodeId: 'node-b', pid: m.restoredPid, state: 'running' });
    const list = await env.orch.api<MigrationRecord[]>('GET', '/migrations');
    expect(list.body.map((x) => x.id)).toContain(m.id);
  });

  it('chooses a destination when none is given, never the source', async () => {
    const { workload } = await env.launch('e2e-choose', 'node-b');
    const m = await env.migrate({ workload: workload.id });
    expect(m.state).toBe('completed');
    expect(m.destinationNodeId).not.toBe('node-b');
    expect(m.destinationReason).toMatch(/suitable node/);
    expect(nodeOfPid(m.restoredPid!)).toBe(m.destinationNodeId);
  });

  it('rolls back when the restore fails on the destination: the source resumes and keeps running', async () => {
    const name = 'e2e-rollback';
    const { pid, workload } = await env.launch(name, 'node-a');
    // The workload's UDP socket is bound to 0.0.0.0:<port>. Holding that port in node-c's namespace makes
    // CRIU's restore there fail with EADDRINUSE: a real restore failure, no test hook in the product.
    const port = env.collector.last(name)!.fromPort;
    const holder = spawnInNode('node-c', [
      'python3',
      '-c',
      `import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', ${port})); time.sleep(600)`,
    ]);
    try {
      await sleep(500);
      const m = await env.migrate({ workload: workload.id, destination: 'node-c' });
      expect(m.state).toBe('rolled_back');
      expect(m.rollbackReason).toMatch(/criu restore failed on node-c/);
      expect(m.rollbackReason).toMatch(/Address already in use|bind/i);
      const rollback = m.phases.find((p) => p.name === 'rollback')!;
      expect(rollback.ok).toBe(true);
      expect(rollback.detail).toMatch(/resumed/);
      expect(m.phases.some((p) => p.name === 'commit')).toBe(false);
      // CRIU's logs outlive the image directory (the lab's nodes share /var/lib/spotlift): the restore's own
      // log, where the error points, still says why.
      const kept = m.keptLogs?.find((k) => k.nodeId === 'node-c');
      expect(kept?.dir).toBe(`/var/lib/spotlift/logs/${m.id}`);
      expect(m.error).toContain(`node-c:${kept!.dir}`);
      expect(readFileSync(join(kept!.dir, 'dst', 'restore.log'), 'utf8')).toMatch(/Address already in use|bind/i);
      expect(existsSync(`/var/lib/spotlift/images/${m.id}`)).toBe(false);

      // Exactly one copy: still the original pid on node-a, running (not stopped), heartbeats go on.
      expect(procState(pid)).toMatch(/^[RS]$/);
      expect(nodeOfPid(pid)).toBe('node-a');
      const t = Date.now();
      await env.collector.waitForCount(name, 5, { from: nodeAddress('node-a'), since: t, timeoutMs: 15_000 });
      expect(env.collector.isSeqGapFree(name)).toBe(true);
      expect(env.collector.anyNotOk(name)).toBe(false);
      const w = await env.orch.api<WorkloadRecord>('GET', `/workloads/${workload.id}`);
      expect(w.body).toMatchObject({ nodeId: 'node-a', pid, state: 'running' });
    } finally {
      holder.kill('SIGKILL');
    }
  });
});
