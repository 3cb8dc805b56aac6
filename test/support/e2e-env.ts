import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import {
  HeartbeatCollector,
  withoutTrialsAhead,
  labDir,
  labUp,
  netnsPath,
  nodeAddress,
  pidAlive,
  startRedis,
  startWorkload,
  stopRedis,
  stopWorkload,
  type LabConfig,
  type WorkloadOptions,
  OrchestratorProcess,
  buildOrchestrator,
} from '@spotlift/testing';
import { workloadCopies } from './faults-lab.js';
import { startOrchestrator, waitForMigration, type ApiClient, type Orchestrator } from './orchestrator-harness.js';

/** The real world a migration suite needs: lab nodes, a private Redis, a heartbeat collector, the orchestrator. */
export interface E2eEnv<O extends ApiClient = Orchestrator> {
  lab: LabConfig;
  redisPort: number;
  /** The Redis key prefix the orchestrator and its replicas share. */
  prefix: string;
  collector: HeartbeatCollector;
  orch: O;
  /** `replicas` more orchestrators of the same deployment (same Redis, same prefix, same config). */
  replicas: O[];
  /**
   * Starts a lab workload (scripts/lab/workload.py, heartbeats to the collector) on `node`, waits for its first
   * heartbeats and registers it. Every copy of it (original or restored, on any node) is stopped at teardown.
   */
  launch(name: string, node: string, opts?: LaunchOptions): Promise<{ pid: number; workload: WorkloadRecord }>;
  /** launch without the registration: the workload runs and heartbeats, no record exists. */
  start(name: string, node: string, opts?: Omit<LaunchOptions, 'fields'>): Promise<number>;
  /** A pid (a restored copy, a workload started by hand) the teardown stops too. */
  track(pid: number): void;
  /** POST /migrations (201 expected). */
  create(body: object): Promise<MigrationRecord>;
  /** Waits for a migration's end state; on a timeout the error says which phases it got through. */
  finished(id: string, timeoutMs?: number): Promise<MigrationRecord>;
  /** create + finished. */
  migrate(body: object, timeoutMs?: number): Promise<MigrationRecord>;
  teardown(): Promise<void>;
}

export interface LaunchOptions {
  /** Default 64. */
  memMiB?: number;
  /** How long to wait for the first heartbeats (default: the suite's, 30 s). */
  heartbeatTimeoutMs?: number;
  /** More of scripts/lab/workload.py's options (data files, ghost file, cwd, ...). */
  workload?: Omit<WorkloadOptions, 'name' | 'memMiB' | 'udpPort'>;
  /** More fields of POST /workloads (paths, priority, ...). */
  fields?: Record<string, unknown>;
}

export interface E2eOptions {
  redisPort: number;
  nodes?: number;
  /** Defaults of `finished` (120 s) and of `launch`'s wait for the first heartbeats (30 s). */
  migrationTimeoutMs?: number;
  heartbeatTimeoutMs?: number;
  /**
   * The config file the orchestrators read, made from the lab's (extra sections, node fields); default: the lab's.
   * Called once the lab is up (a fake metadata server on the lab bridge can be started here).
   */
  config?: (lab: LabConfig) => unknown;
  /** Redis key prefix (default: a fresh one per suite). */
  prefix?: string;
  /** More orchestrator environment, for every replica (e.g. SPOTLIFT_SSH_TUNNEL=relay). */
  env?: Record<string, string>;
  /** Further replicas: a count, or one environment each (added to `env`, e.g. SPOTLIFT_ROLE). */
  replicas?: number | Record<string, string>[];
  /** In-process (default): the app in the test's process. `process`: the built orchestrator as child processes. */
  mode?: 'in-process' | 'process';
}

/** A process's state letter from /proc (`gone` once it exited). */
export function procState(pid: number): string {
  try {
    return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 'gone';
  } catch {
    return 'gone';
  }
}

export function setupE2e(opts: E2eOptions & { mode: 'process' }): Promise<E2eEnv<OrchestratorProcess>>;
export function setupE2e(opts: E2eOptions & { mode?: 'in-process' }): Promise<E2eEnv>;
export async function setupE2e(opts: E2eOptions): Promise<E2eEnv<Orchestrator | OrchestratorProcess>> {
  const lab = await labUp({ nodes: opts.nodes ?? 3 });
  await startRedis(opts.redisPort);
  const collector = new HeartbeatCollector();
  await collector.start();
  const prefix = opts.prefix ?? `t${randomBytes(3).toString('hex')}`;
  const nodesConfig: unknown = opts.config ? await opts.config(lab) : lab;
  const envs = [
    {},
    ...(typeof opts.replicas === 'number' ? Array.from({ length: opts.replicas }, () => ({})) : (opts.replicas ?? [])),
  ].map((own) => ({ ...opts.env, ...own }));
  let orchs: (Orchestrator | OrchestratorProcess)[];
  if (opts.mode === 'process') {
    const main = await buildOrchestrator();
    // Always a file of the suite's own: no trials ahead of notices unless it asks (withoutTrialsAhead).
    const dir = join(labDir(), 'e2e');
    mkdirSync(dir, { recursive: true });
    const configPath = join(dir, `config-${prefix}.json`);
    writeFileSync(configPath, JSON.stringify(withoutTrialsAhead(nodesConfig)));
    orchs = envs.map(
      (env) =>
        new OrchestratorProcess(
          main,
          opts.redisPort,
          { NODE_OPTIONS: '', SPOTLIFT_CONFIG: configPath, ...env },
          prefix,
        ),
    );
    // One after another: each registers the config nodes at boot.
    for (const o of orchs) await (o as OrchestratorProcess).start();
  } else {
    orchs = [];
    for (const env of envs) {
      orchs.push(await startOrchestrator({ nodesConfig, redisPort: opts.redisPort, prefix, env }));
    }
  }
  const orch = orchs[0]!;
  const names: string[] = [];
  const started: number[] = [];
  const start = async (name: string, node: string, o: LaunchOptions = {}): Promise<number> => {
    const pid = await startWorkload(node, { ...o.workload, name, memMiB: o.memMiB ?? 64, udpPort: collector.port });
    names.push(name);
    started.push(pid);
    await collector.waitForCount(name, 5, {
      from: nodeAddress(node),
      timeoutMs: o.heartbeatTimeoutMs ?? opts.heartbeatTimeoutMs ?? 30_000,
    });
    return pid;
  };
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
    prefix,
    collector,
    orch,
    replicas: orchs.slice(1),
    start,
    async launch(name, node, o = {}) {
      const pid = await start(name, node, o);
      const res = await orch.api<WorkloadRecord>('POST', '/workloads', { name, node, pid, ...o.fields });
      if (res.status !== 201) throw new Error(`POST /workloads: ${res.status} ${JSON.stringify(res.body)}`);
      return { pid, workload: res.body };
    },
    track: (pid) => void started.push(pid),
    create,
    finished,
    migrate: async (body, timeoutMs) => finished((await create(body)).id, timeoutMs),
    async teardown() {
      // Every copy by name too: a restored copy a test never waited for (a crash case) is found in /proc.
      for (const name of names) for (const c of workloadCopies(name)) started.push(c.pid);
      for (const pid of new Set(started)) if (pidAlive(pid)) await stopWorkload(pid).catch(() => undefined);
      for (const o of orchs.toReversed()) {
        if (o instanceof OrchestratorProcess) await o.kill('SIGTERM');
        else await o.close();
      }
      await collector.stop();
      await stopRedis(opts.redisPort);
      // The lab stays up for the next suite; test.sh takes it down at the end.
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
