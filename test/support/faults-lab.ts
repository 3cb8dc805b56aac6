import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { Redis, type RedisOptions } from 'ioredis';
import type { MigrationRecord, PhaseName } from '@spotlift/domain';
import { labDir, netnsPath, nodeOfPid, startRedis } from '@spotlift/testing';

/**
 * What the fault-injection suite needs to see and break in the lab: when a migration enters a phase, the
 * processes that are copies of a workload, what a migration left behind, and the SSH sessions of one
 * orchestrator process to one node.
 */

/**
 * Calls `onPhase` the moment a migration's record names a new phase. Reads the record through Redis keyspace
 * notifications on the suite's private Redis: the phase is saved before its body runs, and verify or commit
 * last a few milliseconds, too short for polling over HTTP to land a kill inside them reliably.
 */
export class PhaseWatcher {
  private readonly sub: Redis;
  private readonly get: Redis;

  constructor(
    /** The suite's plain Redis on loopback, or how to reach its master (TLS, ACL user). */
    redis: number | RedisOptions,
    private readonly prefix: string,
  ) {
    const where = typeof redis === 'number' ? { port: redis } : redis;
    this.sub = new Redis({ ...where, lazyConnect: true, maxRetriesPerRequest: 1 });
    this.get = new Redis({ ...where, lazyConnect: true, maxRetriesPerRequest: 1 });
    // The suite stops this Redis on purpose: the watcher's clients just reconnect.
    for (const c of [this.sub, this.get]) c.on('error', () => undefined);
  }

  async start(): Promise<void> {
    await Promise.all([this.sub.connect(), this.get.connect()]);
    await this.rearm();
  }

  /** Keyspace notifications are configuration, lost when the Redis process restarts. */
  async rearm(): Promise<void> {
    await this.get.config('SET', 'notify-keyspace-events', 'K$');
  }

  /** Resolves with the record as first seen in `phase` (its phase started, not ended). */
  async when(migrationId: string, phase: PhaseName, timeoutMs = 120_000): Promise<MigrationRecord> {
    const key = `${this.prefix}:migration:${migrationId}`;
    const channel = `__keyspace@0__:${key}`;
    return new Promise<MigrationRecord>((resolve, reject) => {
      const timer = setTimeout(() => done(new Error(`migration ${migrationId} never entered '${phase}'`)), timeoutMs);
      const check = async () => {
        // The suite stops this Redis on purpose: a read that fails then is simply not a sighting.
        const raw = await this.get.get(key).catch(() => null);
        const m = raw ? (JSON.parse(raw) as MigrationRecord) : undefined;
        const last = m?.phases.at(-1);
        if (m && last?.name === phase && last.endedAt === undefined) done(undefined, m);
        else if (m && ['completed', 'rolled_back', 'failed', 'cancelled'].includes(m.state)) {
          done(new Error(`migration ${migrationId} ended (${m.state}) without '${phase}' being seen`));
        }
      };
      const onMessage = (ch: string) => {
        if (ch === channel) void check();
      };
      const done = (error?: Error, m?: MigrationRecord) => {
        clearTimeout(timer);
        this.sub.off('message', onMessage);
        void this.sub.unsubscribe(channel).catch(() => undefined);
        if (error) reject(error);
        else resolve(m!);
      };
      this.sub.on('message', onMessage);
      void this.sub
        .subscribe(channel)
        .then(check)
        .catch(() => undefined);
    });
  }

  stop(): void {
    this.sub.disconnect();
    this.get.disconnect();
  }
}

function procState(pid: number): string | undefined {
  try {
    return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
}

export interface WorkloadCopy {
  pid: number;
  state: string;
  node: string | undefined;
}

/**
 * Every live process on this machine that is a copy of the lab workload NAME (`workload.py --name NAME`, the
 * python process itself), original or restored, frozen or running. Independent of what any record says.
 */
export function workloadCopies(name: string): WorkloadCopy[] {
  const copies: WorkloadCopy[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    const pid = Number(entry);
    let cmd: string[];
    try {
      if (!readFileSync(`/proc/${pid}/comm`, 'utf8').startsWith('python')) continue;
      cmd = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0');
    } catch {
      continue;
    }
    const i = cmd.indexOf('--name');
    if (i < 0 || cmd[i + 1] !== name || !cmd.some((a) => a.endsWith('workload.py'))) continue;
    const state = procState(pid);
    if (!state || state === 'Z' || state === 'X') continue;
    copies.push({ pid, state, node: nodeOfPid(pid) });
  }
  return copies;
}

/** Copies that run (not stopped, not traced). */
export function runningCopies(name: string): WorkloadCopy[] {
  return workloadCopies(name).filter((c) => c.state !== 'T' && c.state !== 't');
}

/** The migration's directory (`<imageRoot>/<id>`, one file system for every lab node) and CRIU processes of it. */
export function leftovers(
  migrationId: string,
  imageRoot = '/var/lib/spotlift/images',
): { dir: boolean; criu: number[] } {
  const criu: number[] = [];
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      if (readFileSync(`/proc/${entry}/comm`, 'utf8').trim() !== 'criu') continue;
      if (readFileSync(`/proc/${entry}/cmdline`, 'utf8').includes(`/${migrationId}/`)) criu.push(Number(entry));
    } catch {
      /* gone meanwhile */
    }
  }
  return { dir: existsSync(join(imageRoot, migrationId)), criu };
}

/**
 * The pids of node NODE's sshd that matter to process ORCH_PID: the listener (from its pidfile) and the sshd
 * sessions serving ORCH_PID's TCP connections to it. Sessions of anyone else using the lab are left out.
 * Computed ahead of the kill, so the kill itself is instant.
 */
export function sshdPidsFor(node: string, orchPid: number): number[] {
  const ports = execFileSync('ss', ['-tnpH', 'state', 'established', '( dport = :22 )'], { encoding: 'utf8' })
    .split('\n')
    .filter((l) => l.includes(`pid=${orchPid},`))
    .map((l) => l.trim().split(/\s+/)[2]?.split(':').pop())
    .filter((p): p is string => !!p);
  const sessions = execFileSync(
    'nsenter',
    [`--net=${netnsPath(node)}`, 'ss', '-tnpH', 'state', 'established', '( sport = :22 )'],
    {
      encoding: 'utf8',
    },
  )
    .split('\n')
    .filter((l) => ports.some((p) => l.trim().split(/\s+/)[3]?.endsWith(`:${p}`)))
    .flatMap((l) => [...l.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1])));
  const listener = Number(readFileSync(join(labDir(), 'nodes', node, 'sshd.pid'), 'utf8').trim());
  return [listener, ...new Set(sessions)];
}

/** SIGKILLs each pid (the orchestrator's pooled connection breaks, no new one can be made). */
export function killAll(pids: number[]): void {
  for (const pid of pids) {
    try {
      process.kill(pid, 'SIGKILL');
    } catch {
      /* already gone */
    }
  }
}

/**
 * Stops the suite's Redis the way outages happen: `empty` is a crash that loses the data (SIGKILL, and its AOF
 * deleted, as a Redis without persistence or one whose disk is gone: it comes back empty); `with-data` is a
 * restart (SHUTDOWN SAVE; the AOF the lab runs with is flushed too: every write up to the stop survives).
 */
export async function stopRedisAs(port: number, how: 'empty' | 'with-data'): Promise<void> {
  const dir = join(labDir(), 'redis', String(port));
  const pid = Number(readFileSync(join(dir, 'redis.pid'), 'utf8').trim());
  rmSync(join(dir, 'dump.rdb'), { force: true });
  if (how === 'empty') process.kill(pid, 'SIGKILL');
  else execFileSync('redis-cli', ['-h', '127.0.0.1', '-p', String(port), 'shutdown', 'save']);
  for (let i = 0; i < 200 && existsSync(`/proc/${pid}`); i++) await new Promise((r) => setTimeout(r, 25));
  if (existsSync(`/proc/${pid}`)) throw new Error(`redis ${pid} did not stop`);
  if (how === 'empty') rmSync(join(dir, 'appendonlydir'), { recursive: true, force: true });
}

/** Starts the suite's Redis again (loading what stopRedisAs saved), then drops the RDB so no later start sees it. */
export async function startRedisAgain(port: number): Promise<void> {
  await startRedis(port);
  rmSync(join(labDir(), 'redis', String(port), 'dump.rdb'), { force: true });
}
