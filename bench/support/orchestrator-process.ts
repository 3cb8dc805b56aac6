import { spawn, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, openSync } from 'node:fs';
import { join } from 'node:path';
import { labAuthorizedKeys, labDir, repoRoot } from '@spotlift/testing';

/** The built orchestrator (dist/) as a child process, the way an operator runs it, plus a REST client. */
export interface OrchestratorProcess {
  child: ChildProcess;
  token: string;
  call<T>(method: string, path: string, body?: unknown): Promise<T>;
  stop(): void;
}

export async function startOrchestratorProcess(opts: {
  name: string;
  redisPort: number;
  apiPort: number;
  env?: Record<string, string>;
}): Promise<OrchestratorProcess> {
  const token = randomBytes(24).toString('hex');
  const base = `http://127.0.0.1:${opts.apiPort}`;
  const logDir = join(labDir(), 'bench');
  mkdirSync(logDir, { recursive: true });
  const out = openSync(join(logDir, `${opts.name}-orchestrator.log`), 'a');
  const child = spawn('node', [join(repoRoot(), 'dist/apps/orchestrator/src/main.js')], {
    env: {
      ...process.env,
      SPOTLIFT_CONFIG: join(labDir(), 'nodes.json'),
      SPOTLIFT_API_TOKEN: token,
      REDIS_URL: `redis://127.0.0.1:${opts.redisPort}`,
      SPOTLIFT_REDIS_PREFIX: `bench-${opts.name}-${Date.now()}`,
      PORT: String(opts.apiPort),
      SPOTLIFT_SSH_TUNNEL_AUTHORIZED_KEYS: labAuthorizedKeys(),
      ...opts.env,
    },
    stdio: ['ignore', out, out],
  });
  // Up to 60 s: other suites and builds may share the machine.
  for (let i = 0; i < 300 && child.exitCode === null; i++) {
    const ready = await fetch(`${base}/health/ready`).then(
      (r) => r.ok,
      () => false,
    );
    if (ready) {
      return {
        child,
        token,
        async call<T>(method: string, path: string, body?: unknown): Promise<T> {
          const res = await fetch(base + path, {
            method,
            headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
            ...(body ? { body: JSON.stringify(body) } : {}),
          });
          const json = (await res.json()) as T;
          if (!res.ok) throw new Error(`${method} ${path}: ${res.status} ${JSON.stringify(json)}`);
          return json;
        },
        stop: () => child.kill('SIGTERM'),
      };
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  child.kill();
  throw new Error(`orchestrator did not become ready; see .lab/bench/${opts.name}-orchestrator.log`);
}
