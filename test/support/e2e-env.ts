import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import {
  HeartbeatCollector,
  labIsHealthy,
  labUp,
  netnsPath,
  nodeAddress,
  pidAlive,
  startRedis,
  startWorkload,
  stopRedis,
  stopWorkload,
  type LabConfig,
} from '@spotlift/testing';
import { startOrchestrator, waitForMigration, type Orchestrator } from './orchestrator-harness.js';

/** The real world a migration suite needs: lab nodes, a private Redis, a heartbeat collector, the orchestrator. */
export interface E2eEnv {
  lab: LabConfig;
  redisPort: number;
  collector: HeartbeatCollector;
  orch: Orchestrator;
  /**
   * Starts a lab workload (scripts/lab/workload.py, heartbeats to the collector) on `node`, waits for its first
   * heartbeats and registers it. It, and every tree a migration restores, is stopped at teardown.
   */
  launch(
    name: string,
    node: string,
    opts?: { memMiB?: number; heartbeatTimeoutMs?: number },
  ): Promise<{ pid: number; workload: WorkloadRecord }>;
  /** POST /migrations (201 expected). */
  create(body: object): Promise<MigrationRecord>;
  /** Waits for a migration's end state; on a timeout the error says which phases it got through. */
  finished(id: string, timeoutMs?: number): Promise<MigrationRecord>;
  /** create + finished. */
  migrate(body: object, timeoutMs?: number): Promise<MigrationRecord>;
  teardown(): Promise<void>;
}

/** A process's state letter from /proc (`gone` once it exited). */
export function procState(pid: number): string {
  try {
    return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 'gone';
  } catch {
    return 'gone';
  }
}

export async function setupE2e(opts: {
  nodes?: number;
  redisPort: number;
  /** Defaults of `finished` (120 s) and of `launch`'s wait for the first heartbeats (30 s). */
  migrationTimeoutMs?: number;
  heartbeatTimeoutMs?: number;
  /** More orchestrator environment (e.g. SPOTLIFT_EVENTS_HEARTBEAT_MS). */
  env?: Record<string, string>;
}): Promise<E2eEnv> {
  const ownLab = !(await labIsHealthy());
  const lab = await labUp({ nodes: opts.nodes ?? 3 });
  await startRedis(opts.redisPort);
  const collector = new HeartbeatCollector();
  await collector.start();
  const orch = await startOrchestrator({
    nodesConfig: lab,
    redisPort: opts.redisPort,
    ...(opts.env ? { env: opts.env } : {}),
  });
  const started: number[] = [];
  const create = async (body: object): Promise<MigrationRecord> => {
    const res = await orch.api<MigrationRecord>('POST', '/migrations', body);
    if (res.status !== 201) throw new Error(`POST /migrations: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  };
  const finished = async (id: string, timeoutMs?: number): Promise<MigrationRecord> => {
    const done = await waitForMigration<MigrationRecord>(orch, id, timeoutMs ?? opts.migrationTimeoutMs).catch(
      async (error: Error) => {
        const now = await orch.api<MigrationRecord>('GET', `/migrations/${id}`);
        throw new Error(`${error.message}: ${JSON.stringify(now.body.phases)}`);
      },
    );
    if (done.restoredPid) started.push(done.restoredPid);
    return done;
  };
  return {
    lab,
    redisPort: opts.redisPort,
    collector,
    orch,
    async launch(name, node, o = {}) {
      const pid = await startWorkload(node, { name, memMiB: o.memMiB ?? 64, udpPort: collector.port });
      started.push(pid);
      await collector.waitForCount(name, 5, {
        from: nodeAddress(node),
        timeoutMs: o.heartbeatTimeoutMs ?? opts.heartbeatTimeoutMs ?? 30_000,
      });
      const res = await orch.api<WorkloadRecord>('POST', '/workloads', { name, node, pid });
      if (res.status !== 201) throw new Error(`POST /workloads: ${res.status} ${JSON.stringify(res.body)}`);
      return { pid, workload: res.body };
    },
    create,
    finished,
    migrate: async (body, timeoutMs) => finished((await create(body)).id, timeoutMs),
    async teardown() {
      for (const pid of started) if (pidAlive(pid)) await stopWorkload(pid);
      await orch.close();
      await collector.stop();
      await stopRedis(opts.redisPort);
      void ownLab; // the lab stays up for the next suite; test.sh takes it down at the end
    },
  };
}

/** Runs a command inside a lab node's network namespace, in the background (e.g. to hold a port). */
export function spawnInNode(nodeId: string, argv: string[]): ChildProcess {
  return spawn('nsenter', [`--net=${netnsPath(nodeId)}`, ...argv], { stdio: 'ignore' });
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}
