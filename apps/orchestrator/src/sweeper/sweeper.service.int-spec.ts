/**
 * SweeperService on a real Redis (its lease, report and totals) and real processes and files (every "node" is
 * this machine through LocalNodeShell, like the lab's nodes share one kernel and file system): one replica
 * sweeps at a time; a checkpoint's work directories belong to it while it is live; a workload record follows
 * the copy when the sweeper killed its frozen source.
 */
import { Logger } from '@nestjs/common';
import { SchedulerRegistry } from '@nestjs/schedule';
import { type ChildProcess, spawn } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import type { CheckpointRecord, MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { NodeOps, OWNER_MARKER_FILE, type OwnerMarker, PodmanOps, SystemClock } from '@spotlift/engine';
import { InMemoryRecords } from '@spotlift/store';
import { DirectoryStreamer } from '@spotlift/transport';
import { LocalNodeShell, aMigration, aNode, aWorkload, startRedis, stopRedis } from '@spotlift/testing';
import type { AppConfig } from '../config/app-config.js';
import { SweeperService } from './sweeper.service.js';

const PORT = 6431;
const procState = (pid: number) => {
  try {
    return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 'gone';
  } catch {
    return 'gone';
  }
};

describe('SweeperService (real Redis, real processes)', () => {
  let root: string;
  let redis: Redis;
  const children: ChildProcess[] = [];
  const nodes = new InMemoryRecords<NodeRecord>();
  const migrations = new InMemoryRecords<MigrationRecord>();
  const checkpoints = new InMemoryRecords<CheckpointRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  let service: SweeperService;

  const sleeper = (stopped: boolean): number => {
    const c = spawn('sleep', ['995'], { stdio: 'ignore' });
    children.push(c);
    if (stopped) process.kill(c.pid!, 'SIGSTOP');
    return c.pid!;
  };
  const leave = (id: string, pid: number, restored?: number) => {
    for (const [side, role] of [
      ['src', 'source'],
      ['dst', 'destination'],
    ] as const) {
      const m: OwnerMarker = {
        v: 1,
        migrationId: id,
        role,
        workloadId: 'wl-1',
        pid,
        tasks: 1,
        sourceNodeId: 'node-a',
        destinationNodeId: 'node-b',
        keepImages: false,
        lockFile: '/run/spotlift/locks/none-such.lock',
        createdAt: new Date().toISOString(),
      };
      mkdirSync(join(root, id, side), { recursive: true });
      writeFileSync(join(root, id, side, OWNER_MARKER_FILE), JSON.stringify(m));
    }
    if (restored) writeFileSync(join(root, id, 'dst', 'restored.pid'), String(restored));
  };

  beforeAll(async () => {
    Logger.overrideLogger(false);
    await startRedis(PORT);
    redis = new Redis({ port: PORT, maxRetriesPerRequest: 1 });
    root = mkdtempSync(join(tmpdir(), 'sweeper-svc-'));
    await nodes.save(aNode('node-a'));
    await nodes.save(aNode('node-b'));
    const config = {
      redisPrefix: `svc${Date.now().toString(36)}`,
      imageRoot: root,
      runsWorker: true,
      sweeper: { intervalMs: 0, keepImagesMaxAgeMs: 3_600_000, orphanGraceMs: 0 },
      live: { trialTimeoutMs: 60_000 },
    } as unknown as AppConfig;
    const shell = new LocalNodeShell();
    service = new SweeperService(
      new NodeOps(shell),
      nodes,
      migrations,
      checkpoints,
      workloads,
      redis,
      config,
      new SystemClock(),
      new SchedulerRegistry(),
      new PodmanOps(new NodeOps(shell), new DirectoryStreamer(shell)),
    );
  });

  afterAll(async () => {
    for (const c of children) c.kill('SIGKILL');
    rmSync(root, { recursive: true, force: true });
    redis.disconnect();
    await stopRedis(PORT);
  });

  it('sweeps on one replica at a time, and says so in GET /sweeper', async () => {
    const [a, b] = await Promise.all([service.runOnce(), service.runOnce()]);
    expect([a, b].filter((r) => r === undefined)).toHaveLength(1);
    expect((await service.status()).last).not.toBeNull();
  });

  it('leaves a live checkpoint’s directories alone, and finished migrations’ leftovers go', async () => {
    const frozen = sleeper(true);
    leave('cp-1-r2', frozen);
    await checkpoints.save({ id: 'cp-1', state: 'restoring' } as CheckpointRecord);
    const running = sleeper(false);
    leave('mig-done', running);
    await migrations.save(aMigration({ id: 'mig-done', state: 'rolled_back' }));
    const report = (await service.runOnce())!;
    expect(report.items.find((i) => i.migrationId === 'cp-1-r2')?.action).toBe('skip');
    expect(procState(frozen)).toBe('T');
    expect(report.items.find((i) => i.migrationId === 'mig-done')).toMatchObject({
      action: 'remove-images',
      removedFrom: ['node-a', 'node-b'],
    });
  });

  it('moves the workload record to the destination’s copy when it killed the frozen source; counts it', async () => {
    const source = sleeper(true);
    const copy = sleeper(false);
    await workloads.save(aWorkload({ id: 'wl-1', nodeId: 'node-a', pid: source, state: 'migrating' }));
    leave('mig-lost', source, copy);
    const report = (await service.runOnce())!;
    expect(report.items.find((i) => i.migrationId === 'mig-lost')).toMatchObject({ action: 'kill-source' });
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: copy, state: 'running' });
    const status = await service.status();
    expect(status.totals['kill-source']).toBe(1);
    expect(status.totals['image-directories-removed']).toBeGreaterThanOrEqual(4);
    expect(status.attention).toEqual([]);
  });
});
