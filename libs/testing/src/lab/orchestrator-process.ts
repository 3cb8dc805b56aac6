import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, openSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { labAuthorizedKeys, labDir, repoRoot } from './paths.js';

/**
 * The real orchestrator as a child process (`node <dist>/apps/orchestrator/src/main.js`), so a test can
 * SIGKILL it mid-migration and start it again on the same Redis, prefix, token and port, like an operator's
 * process manager would; the benches start theirs with it too (from the repository's `dist/`). A suite builds
 * it once into a private directory under the lab dir: other engineers building `dist/` at the same time cannot
 * hand this suite half-written files.
 */
export function buildOrchestrator(outDir = join(labDir(), 'faults', 'dist')): Promise<string> {
  const root = repoRoot();
  const tsc = join(root, 'node_modules', '.bin', 'tsc');
  const alias = join(root, 'node_modules', '.bin', 'tsc-alias');
  const run = (bin: string, args: string[]) =>
    new Promise<string>((resolve) =>
      execFile(bin, args, { cwd: root, maxBuffer: 16 << 20, timeout: 240_000 }, (error, stdout, stderr) =>
        resolve(error ? `${stdout}${stderr}`.trim() || error.message : ''),
      ),
    );
  return (async () => {
    // tsc still emits when another engineer's file has a type error; main.js is what this suite needs.
    const diagnostics = await run(tsc, ['-p', 'tsconfig.build.json', '--outDir', outDir]);
    const aliasError = await run(alias, ['-p', 'tsconfig.build.json', '--outDir', outDir]);
    const main = join(outDir, 'apps', 'orchestrator', 'src', 'main.js');
    if (!existsSync(main) || aliasError) throw new Error(`build failed: ${aliasError || diagnostics}`);
    if (diagnostics) console.warn(`tsc reported (the build was emitted anyway):\n${diagnostics.slice(0, 2000)}`);
    return main;
  })();
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Where a process writes its log, and a fixed port (default: a free one, kept across restarts). */
export interface OrchestratorProcessPlace {
  /** Default `<lab>/faults`. */
  logDir?: string;
  port?: number;
}

/** The orchestrator the repository's `npm run build` wrote (what the benches run after bench/run.sh built it). */
export function builtOrchestratorMain(): string {
  return join(repoRoot(), 'dist', 'apps', 'orchestrator', 'src', 'main.js');
}

/**
 * A suite's orchestrator config: no post-copy trials ahead of notices unless the suite sets
 * `evacuation.trialRefreshSeconds` itself. They are on by default in the product (pair-trials.ts); here a trial
 * starting on its own would add probe migrations, trial records and node locks that suites count or time.
 */
export function withoutTrialsAhead(config: unknown): unknown {
  const c = config as { evacuation?: Record<string, unknown> };
  return { ...c, evacuation: { trialRefreshSeconds: 0, ...c.evacuation } };
}

/** The lab's nodes.json as a suite's config (withoutTrialsAhead), written to a file of this process. */
function labConfigForTests(): string {
  const path = join(tmpdir(), `spotlift-lab-config-${process.pid}.json`);
  const lab: unknown = JSON.parse(readFileSync(join(labDir(), 'nodes.json'), 'utf8'));
  writeFileSync(path, JSON.stringify(withoutTrialsAhead(lab)));
  return path;
}

export class OrchestratorProcess {
  readonly token = randomBytes(24).toString('hex');
  readonly prefix: string;
  private child: ChildProcess | undefined;
  private port = 0;
  readonly logFile: string;

  constructor(
    private readonly main: string,
    private readonly redisPort: number,
    private readonly env: Record<string, string> = {},
    /** Redis key prefix; replicas of one deployment share it. */
    prefix = `faults${Date.now().toString(36)}${randomBytes(2).toString('hex')}`,
    place: OrchestratorProcessPlace = {},
  ) {
    this.prefix = prefix;
    this.port = place.port ?? 0;
    const dir = place.logDir ?? join(labDir(), 'faults');
    mkdirSync(dir, { recursive: true });
    this.logFile = join(dir, `orchestrator-${this.prefix}-${randomBytes(3).toString('hex')}.log`);
  }

  get pid(): number | undefined {
    return this.child?.pid;
  }

  /** The process runs (was started and has not exited). */
  get alive(): boolean {
    return !!this.child && this.child.exitCode === null && this.child.signalCode === null;
  }

  get baseUrl(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  /** Starts the process and resolves once /health/ready answers (nodes are registered before it listens). */
  async start(): Promise<void> {
    if (!this.port) this.port = await freePort();
    const out = openSync(this.logFile, 'a');
    // Extra node flags for benches (e.g. `--cpu-prof --cpu-prof-dir=/tmp/p`, which NODE_OPTIONS does not take).
    const nodeArgs = (process.env.SPOTLIFT_ORCHESTRATOR_NODE_ARGS ?? '').split(' ').filter(Boolean);
    this.child = spawn('node', [...nodeArgs, this.main], {
      env: {
        ...process.env,
        SPOTLIFT_CONFIG: labConfigForTests(),
        SPOTLIFT_API_TOKEN: this.token,
        REDIS_URL: `redis://127.0.0.1:${this.redisPort}`,
        SPOTLIFT_REDIS_PREFIX: this.prefix,
        HOST: '127.0.0.1',
        PORT: String(this.port),
        SPOTLIFT_LOG_FORMAT: 'text',
        ...this.env,
      },
      stdio: ['ignore', out, out],
    });
    const child = this.child;
    // Up to 120 s: boot registers and probes the config nodes, slow on a machine other suites share.
    for (let i = 0; i < 1200; i++) {
      if (child.exitCode !== null) throw new Error(`orchestrator exited with ${child.exitCode}; see ${this.logFile}`);
      try {
        if ((await fetch(`${this.baseUrl}/health/ready`)).ok) return;
      } catch {
        /* not listening yet */
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error(`orchestrator did not become ready in 120 s; see ${this.logFile}`);
  }

  /** SIGKILL: no shutdown hook runs, SSH channels and the BullMQ lock are simply abandoned. */
  async kill(signal: NodeJS.Signals = 'SIGKILL'): Promise<void> {
    const child = this.child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((r) => child.once('exit', () => r()));
    child.kill(signal);
    await exited;
  }

  async api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }> {
    const res = await fetch(this.baseUrl + path, {
      method,
      headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
      ...(body === undefined ? {} : { body: JSON.stringify(body) }),
    });
    const text = await res.text();
    return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
  }

  /** As `api`, for scripts: the body of a 2xx answer, else an error with the status and the body. */
  async call<T = unknown>(method: string, path: string, body?: unknown): Promise<T> {
    const res = await this.api<T>(method, path, body);
    if (res.status < 200 || res.status >= 300)
      throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(res.body)}`);
    return res.body;
  }

  /** Polls GET /migrations/:id until an end state. */
  async waitForEnd<T extends { state: string }>(id: string, timeoutMs = 180_000): Promise<T> {
    const until = Date.now() + timeoutMs;
    for (;;) {
      const { body } = await this.api<T>('GET', `/migrations/${id}`).catch(() => ({
        body: { state: 'unreachable' } as T,
      }));
      if (['completed', 'rolled_back', 'failed', 'cancelled'].includes(body.state)) return body;
      if (Date.now() > until) throw new Error(`migration ${id} still ${body.state} after ${timeoutMs} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  }
}

/**
 * A benchmark's orchestrator (bench/run.sh builds `dist/` first): the lab's nodes, a key prefix of its own, the
 * lab's shared authorized_keys for the ssh transport's node-to-node keys, its log in `<lab>/bench`.
 */
export async function startBenchOrchestrator(
  name: string,
  redisPort: number,
  env: Record<string, string> = {},
): Promise<OrchestratorProcess> {
  return (await startBenchReplicas(name, redisPort, env, 1))[0]!;
}

/** `count` replicas of one benchmark deployment (one key prefix), as {@link startBenchOrchestrator} starts one. */
export async function startBenchReplicas(
  name: string,
  redisPort: number,
  env: Record<string, string>,
  count: number,
): Promise<OrchestratorProcess[]> {
  const prefix = `bench-${name}-${Date.now()}`;
  const replicas = Array.from(
    { length: count },
    () =>
      new OrchestratorProcess(
        builtOrchestratorMain(),
        redisPort,
        { SPOTLIFT_SSH_TUNNEL_AUTHORIZED_KEYS: labAuthorizedKeys(), ...env },
        prefix,
        { logDir: join(labDir(), 'bench') },
      ),
  );
  const started = await Promise.allSettled(replicas.map((r) => r.start()));
  const failed = started.find((r) => r.status === 'rejected');
  if (failed) {
    await Promise.all(replicas.map((r) => r.kill('SIGTERM')));
    throw failed.reason;
  }
  return replicas;
}
