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
