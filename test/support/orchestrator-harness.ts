import type { INestApplication } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import type { Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { AppModule } from '../../apps/orchestrator/src/app.module.js';
import { setupApiDocs } from '../../apps/orchestrator/src/auth/api-docs.js';
import { loadConfig } from '../../apps/orchestrator/src/config/app-config.js';
import { labAuthorizedKeys, withoutTrialsAhead } from '@spotlift/testing';

/** What a test needs of any orchestrator, in this process or a child one: its API with the bearer token. */
export interface ApiClient {
  /** fetch against the API with the bearer token; JSON in and out. */
  api<T = unknown>(method: string, path: string, body?: unknown): Promise<{ status: number; body: T }>;
}

export interface Orchestrator extends ApiClient {
  app: INestApplication;
  baseUrl: string;
  token: string;
  close(): Promise<void>;
}

/**
 * Boots the real orchestrator app in this process (real Redis, real SSH to the lab nodes, real HTTP on an
 * ephemeral loopback port), from a config file written like an operator would.
 */
export async function startOrchestrator(opts: {
  nodesConfig: unknown;
  redisPort: number;
  prefix?: string;
  role?: 'all' | 'api' | 'worker';
  /** Where nodes keep images (SPOTLIFT_IMAGE_ROOT); the qemu lab's VMs put them on their /lab tmpfs. */
  imageRoot?: string;
  /** More orchestrator environment (e.g. SPOTLIFT_SSH_TUNNEL=relay). */
  env?: Record<string, string>;
}): Promise<Orchestrator> {
  const token = randomBytes(24).toString('hex');
  const configPath = join(tmpdir(), `spotlift-test-${process.pid}-${randomBytes(4).toString('hex')}.json`);
  writeFileSync(configPath, JSON.stringify(withoutTrialsAhead(opts.nodesConfig)));
  const config = loadConfig({
    SPOTLIFT_CONFIG: configPath,
    SPOTLIFT_API_TOKEN: token,
    REDIS_URL: `redis://127.0.0.1:${opts.redisPort}`,
    SPOTLIFT_REDIS_PREFIX: opts.prefix ?? `t${randomBytes(3).toString('hex')}`,
    PORT: '0',
    SPOTLIFT_ROLE: opts.role ?? 'all',
    SPOTLIFT_LOG_FORMAT: 'text',
    ...(opts.imageRoot ? { SPOTLIFT_IMAGE_ROOT: opts.imageRoot } : {}),
    // The lab's sshds read one shared authorized_keys (scripts/lab/nodes.sh): the ssh transport's
    // one-time node-to-node keys go there.
    SPOTLIFT_SSH_TUNNEL_AUTHORIZED_KEYS: labAuthorizedKeys(),
    ...opts.env,
  });
  const app = await NestFactory.create(AppModule.forRoot(config), {
    logger: ['error', 'warn'],
    ...(config.api.tls ? { httpsOptions: { cert: config.api.tls.cert, key: config.api.tls.key } } : {}),
  });
  app.enableShutdownHooks();
  setupApiDocs(app, config);
  await app.listen(0, '127.0.0.1');
  const { port } = (app.getHttpServer() as Server).address() as AddressInfo;
  const baseUrl = `${config.api.tls ? 'https' : 'http'}://127.0.0.1:${port}`;
  return {
    app,
    baseUrl,
    token,
    async api<T>(method: string, path: string, body?: unknown) {
      const res = await fetch(baseUrl + path, {
        method,
        headers: { authorization: `Bearer ${token}`, 'content-type': 'application/json' },
        ...(body === undefined ? {} : { body: typeof body === 'string' ? body : JSON.stringify(body) }),
      });
      const text = await res.text();
      return { status: res.status, body: (text ? JSON.parse(text) : undefined) as T };
    },
    close: () => app.close(),
  };
}

/** Polls a migration until it reaches an end state. */
export async function waitForMigration<T extends { state: string }>(
  orch: ApiClient,
  id: string,
  timeoutMs = 120_000,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const { body } = await orch.api<T>('GET', `/migrations/${id}`);
    if (['completed', 'rolled_back', 'failed', 'cancelled'].includes(body.state)) return body;
    if (Date.now() > until) throw new Error(`migration ${id} still ${body.state} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
