import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { labDir } from './paths.js';
import { runLabScript } from './exec.js';

/** Starts a private redis-server on 127.0.0.1:PORT (no persistence) and waits for PING. Idempotent. */
export async function startRedis(port: number): Promise<void> {
  await runLabScript('redis.sh', ['start', String(port)], 30_000);
}

/** Shuts down the lab's redis on PORT (no save). A no-op if it is not running. */
export async function stopRedis(port: number): Promise<void> {
  await runLabScript('redis.sh', ['stop', String(port)], 30_000);
}

/**
 * Starts the lab's redis on PORT with TLS only and ACL users `spotlift` and `narrow` (password `secret`,
 * `default` off; scripts/lab/redis.sh). Returns the path of the CA that signed its certificate. Idempotent.
 */
export async function startRedisTls(port: number): Promise<{ caFile: string }> {
  await runLabScript('redis.sh', ['start-tls', String(port)], 30_000);
  return { caFile: join(labDir(), 'redis', String(port), 'tls', 'ca.pem') };
}

/** A Sentinel set of redis.sh `start-sentinel-tls`: what a test connects to, and the orchestrator environment. */
export interface SentinelSet {
  /** The first master; after a failover the replica's port may be the master's. */
  master: number;
  replica: number;
  sentinels: number[];
  name: string;
  sentinelPassword: string;
  caFile: string;
  /** SPOTLIFT_REDIS_* and REDIS_URL for an orchestrator on this set (TLS, ACL user `spotlift`, db 0). */
  env: Record<string, string>;
}

/**
 * Starts a master on PORT, a replica on PORT+1 and three sentinels on PORT+20000..20002, all TLS only
 * (scripts/lab/redis.sh start-sentinel-tls). `stopRedis(PORT)` stops all five. Idempotent.
 */
export async function startRedisSentinelTls(port: number): Promise<SentinelSet> {
  await runLabScript('redis.sh', ['start-sentinel-tls', String(port)], 60_000);
  const caFile = join(labDir(), 'redis', String(port), 'tls', 'ca.pem');
  const sentinels = [0, 1, 2].map((i) => port + 20_000 + i);
  const name = 'spotlift-lab';
  const sentinelPassword = 'sentinel-secret';
  return {
    master: port,
    replica: port + 1,
    sentinels,
    name,
    sentinelPassword,
    caFile,
    env: {
      // The host and port are the sentinels' to name; the scheme (TLS), user, password and db are kept.
      REDIS_URL: `rediss://spotlift:secret@127.0.0.1:${port}/0`,
      SPOTLIFT_REDIS_TLS_CA: caFile,
      SPOTLIFT_REDIS_SENTINELS: sentinels.map((p) => `127.0.0.1:${p}`).join(','),
      SPOTLIFT_REDIS_SENTINEL_NAME: name,
      SPOTLIFT_REDIS_SENTINEL_PASSWORD: sentinelPassword,
    },
  };
}

/** The pid of the set's data node on PORT (its master or its replica), from its pidfile. */
export function sentinelSetPid(set: SentinelSet, port: number): number {
  const dir = join(labDir(), 'redis', String(set.master), port === set.master ? '' : 'replica');
  return Number(readFileSync(join(dir, 'redis.pid'), 'utf8').trim());
}
