/**
 * Guard mode's price and payoff, through spotlift (the built orchestrator, real CRIU on the lab nodes): a
 * 256 MiB workload with a 16 MiB hot set (scripts/lab/workload.py) on node-a, node-c the storage node.
 * 1. A full `--leave-running` checkpoint taken on demand (POST /checkpoints, forensic) N times: the baseline.
 * 2. Guard mode every 10 s until N guard checkpoints are stored: freeze and bytes of each.
 * 3. A loss: node-a's sshd killed and the workload frozen there (SIGSTOP), the loss confirmed at once; the
 *    time to the workload running elsewhere from its last guard checkpoint (the silence threshold included,
 *    3 s here) and the restore itself; then sshd back, and the sweeper killing the stale copy.
 * Incremental guard checkpoints (pre-dump chains) need dirty-page tracking (the qemu lab): on these
 * namespace nodes every guard checkpoint is a full one, so 1 and 2 measure the same kind of dump.
 *
 *   bash bench/run.sh guard [--count N] [--interval 10] [--mib 256]
 */
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CheckpointRecord, WorkloadRecord } from '@spotlift/domain';
import {
  HeartbeatCollector,
  labDir,
  labUp,
  netnsPath,
  nodeAddress,
  pidAlive,
  runLabScript,
  startBenchOrchestrator,
  startRedis,
  startWorkload,
  stopRedis,
  stopWorkload,
  type OrchestratorProcess,
} from '@spotlift/testing';
import { median } from '../support/stats.js';

const REDIS_PORT = 6440;
const MIB = 2 ** 20;

function arg(name: string, fallback: string): string {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && process.argv[i + 1] ? process.argv[i + 1]! : fallback;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until<T>(what: string, fn: () => Promise<T | undefined>, ms: number): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== undefined) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(200);
  }
}

const freezeMs = (c: CheckpointRecord) => (c.criu.dump?.frozenTimeUs ?? NaN) / 1000;
const storedMiB = (c: CheckpointRecord) => (c.bytes.stored ?? NaN) / MIB;

/** The lab config with node-c as the storage node, for the bench's orchestrator. */
function configWithStorage(): string {
  const lab = JSON.parse(readFileSync(join(labDir(), 'nodes.json'), 'utf8')) as { evacuation?: object };
  const path = join(tmpdir(), `spotlift-guard-bench-${process.pid}.json`);
  writeFileSync(
    path,
    JSON.stringify({ ...lab, evacuation: { ...lab.evacuation, trialRefreshSeconds: 0, storageNodeId: 'node-c' } }),
  );
  return path;
}

/** node-a vanishes for SSH: its sshd listener and every session in its network namespace killed. */
function killSshd(node: string): void {
  const listener = Number(readFileSync(join(labDir(), 'nodes', node, 'sshd.pid'), 'utf8').trim());
  const sessions = execFileSync(
    'nsenter',
    [`--net=${netnsPath(node)}`, 'ss', '-tnpH', 'state', 'established', '( sport = :22 )'],
    { encoding: 'utf8' },
  );
  const pids = [listener, ...[...sessions.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]))];
  for (const pid of new Set(pids)) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      // already gone
    }
  }
}

async function settled(orch: OrchestratorProcess, id: string): Promise<CheckpointRecord> {
  return until(
    `checkpoint ${id}`,
    async () => {
      const c = await orch.call<CheckpointRecord>('GET', `/checkpoints/${id}`);
      return c.state === 'stored' || c.state === 'failed' ? c : undefined;
    },
    180_000,
  );
}

function table(rows: string[][]): string {
  const widths = rows[0]!.map((_, i) => Math.max(...rows.map((r) => r[i]!.length)));
  return rows.map((r) => r.map((c, i) => c.padEnd(widths[i]!)).join('  ')).join('\n');
}

async function main(): Promise<void> {
  const count = Number(arg('count', '4'));
  const interval = Number(arg('interval', '10'));
  const mib = Number(arg('mib', '256'));
  await labUp({ nodes: 3 });
  await startRedis(REDIS_PORT);
  const collector = new HeartbeatCollector();
  await collector.start();
  const orch = await startBenchOrchestrator('guard', REDIS_PORT, {
    SPOTLIFT_CONFIG: configWithStorage(),
    SPOTLIFT_GUARD_TICK_MS: '1000',
    SPOTLIFT_NODE_LOSS_AFTER_MS: '3000',
    SPOTLIFT_SWEEP_INTERVAL_MS: '2000',
  });
  const name = `bench-guard-${randomBytes(3).toString('hex')}`;
  const pid = await startWorkload('node-a', { name, memMiB: mib, hotMiB: 16, udpPort: collector.port });
  let restoredPid: number | undefined;
  try {
    await collector.waitForCount(name, 3, { from: nodeAddress('node-a'), timeoutMs: 180_000 });
    const w = await orch.call<WorkloadRecord>('POST', '/workloads', { name, node: 'node-a', pid });

    // 1. The baseline: full --leave-running checkpoints on demand, one interval apart.
    const full: CheckpointRecord[] = [];
    for (let i = 0; i < count; i++) {
      const cp = await orch.call<CheckpointRecord>('POST', '/checkpoints', { workload: w.id, mode: 'forensic' });
      full.push(await settled(orch, cp.id));
      console.error(`[bench] full checkpoint ${i + 1}/${count}: ${full.at(-1)!.state}`);
      if (i + 1 < count) await sleep(interval * 1000);
    }

    // 2. Guard mode every `interval` s until `count` guard checkpoints are stored.
    const since = new Date().toISOString();
    await orch.call('PUT', `/workloads/${w.id}/guard`, { intervalSeconds: interval, keep: count + 1 });
    const guardOf = async () =>
      (await orch.call<CheckpointRecord[]>('GET', '/checkpoints')).filter(
        (c) => c.workloadId === w.id && c.mode === 'guard' && c.createdAt >= since,
      );
    const guard = await until(
      `${count} guard checkpoints`,
      async () => {
        const mine = (await guardOf()).filter((c) => c.state === 'stored');
        return mine.length >= count ? mine.slice(0, count) : undefined;
      },
      (count + 2) * interval * 1000 + 120_000,
    );
    // No take under way when the node goes.
    await orch.call('PUT', `/workloads/${w.id}/guard`, { intervalSeconds: 3600, keep: count + 1 });
    await until(
      'no guard checkpoint under way',
      async () => ((await guardOf()).every((c) => c.state !== 'queued' && c.state !== 'taking') ? true : undefined),
      120_000,
    );

    // 3. The loss, confirmed at once: the threshold (3 s) plus placement plus the restore.
    const lostAt = Date.now();
    process.kill(pid, 'SIGSTOP');
    killSshd('node-a');
    await orch.call('POST', '/nodes/node-a/lost', { reason: 'bench' });
    const moved = await until(
      'the workload restored elsewhere',
      async () => {
        const now = await orch.call<WorkloadRecord>('GET', `/workloads/${w.id}`);
        return now.nodeId !== 'node-a' && now.state === 'running' ? now : undefined;
      },
      300_000,
    );
    const runningAfterS = (Date.now() - lostAt) / 1000;
    restoredPid = moved.pid;
    const restored = (await guardOf()).find((c) => c.restore?.takeover)!;
    const restoreS = (Date.parse(restored.restore!.resumedAt!) - Date.parse(restored.restore!.requestedAt)) / 1000;
    await runLabScript('nodes.sh', ['up', '3'], 180_000);
    const stale = await until(
      'the stale copy killed',
      async () =>
        (await orch.call<CheckpointRecord>('GET', `/checkpoints/${restored.id}`)).restore?.takeover?.staleGoneAt,
      120_000,
    );

    const f = (xs: number[], d = 0) => `${median(xs).toFixed(d)} (${xs.map((x) => x.toFixed(d)).join(' ')})`;
    const rows = [
      ['', 'freeze per checkpoint, ms', 'stored per checkpoint, MiB', 'take, s'],
      [
        'full on demand (baseline)',
        f(full.map(freezeMs)),
        f(full.map(storedMiB), 1),
        f(
          full.map((c) => (Date.parse(c.storedAt!) - Date.parse(c.createdAt)) / 1000),
          1,
        ),
      ],
      [
        `guard every ${interval} s`,
        f(guard.map(freezeMs)),
        f(guard.map(storedMiB), 1),
        f(
          guard.map((c) => (Date.parse(c.storedAt!) - Date.parse(c.createdAt)) / 1000),
          1,
        ),
      ],
    ];
    const meanFreeze = guard.map(freezeMs).reduce((a, b) => a + b, 0) / guard.length;
    console.log(`guard mode, ${mib} MiB workload with a 16 MiB hot set (medians, the runs in brackets; same run)`);
    console.log(table(rows));
    console.log(
      `guard overhead: ${((meanFreeze * 3600) / interval / 1000).toFixed(1)} s frozen per hour at ${interval} s (${((meanFreeze / (interval * 1000)) * 100).toFixed(2)}% of the time)`,
    );
    console.log(
      `loss of node-a (confirmed at once): running on ${moved.nodeId} from ${restored.id} ${runningAfterS.toFixed(1)} s after the loss (3 s silence threshold included); the restore itself ${restoreS.toFixed(1)} s; stale copy on node-a gone at ${stale}`,
    );
    console.log(
      'incremental guard checkpoints (pre-dump chains, only the dirtied pages) need the qemu lab: full dumps here, so both rows are the same kind of dump',
    );
    console.log(`${readFileSync('/proc/loadavg', 'utf8').trim()} (loadavg)`);
  } finally {
    for (const p of [restoredPid, pid]) if (p && pidAlive(p)) await stopWorkload(p).catch(() => undefined);
    await runLabScript('nodes.sh', ['up', '3'], 180_000).catch(() => undefined);
    await orch.kill('SIGTERM');
    await collector.stop();
    await stopRedis(REDIS_PORT);
  }
}

main().catch((error: Error) => {
  console.error(error.stack ?? error.message);
  process.exit(1);
});
