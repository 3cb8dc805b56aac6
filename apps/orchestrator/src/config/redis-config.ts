import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import type { RedisOptions as BullRedisOptions } from 'bullmq';
import type { RedisOptions } from 'ioredis';
import { z } from 'zod';

/** The Redis environment (see README "Redis in production"), kept here so app-config.ts only spreads it. */
export const RedisEnv = z.object({
  /**
   * `redis://` or `rediss://` (TLS), with an ACL user, a password and a db: `rediss://user:pass@host:6380/2`.
   * With sentinels set, its host and port are not used (the sentinels name the master); the rest is.
   */
  REDIS_URL: z
    .url()
    .refine((u) => /^rediss?:$/.test(new URL(u).protocol), 'redis:// or rediss://')
    .default('redis://127.0.0.1:6379'),
  /**
   * PEM file of the CA(s) that signed Redis's (and the sentinels') TLS certificate, for a `rediss://` URL whose
   * server a private CA signed; unset: the system's CAs.
   */
  SPOTLIFT_REDIS_TLS_CA: z.string().startsWith('/').optional(),
  /** Redis Sentinel: `host:port,host:port`; every client asks them for the current master of `NAME`. */
  SPOTLIFT_REDIS_SENTINELS: z
    .string()
    .regex(/^[A-Za-z0-9.:[\]-]+:\d{1,5}(,[A-Za-z0-9.:[\]-]+:\d{1,5})*$/, 'host:port[,host:port...]')
    .optional(),
  SPOTLIFT_REDIS_SENTINEL_NAME: z
    .string()
    .regex(/^[A-Za-z0-9._-]{1,64}$/)
    .default('mymaster'),
  /** The sentinels' own password, when they have one (`requirepass` in sentinel.conf). */
  SPOTLIFT_REDIS_SENTINEL_PASSWORD: z.string().min(1).optional(),
  /**
   * What to do at start when Redis would lose acknowledged state (no AOF, an evicting maxmemory-policy):
   * `refuse` (exit with the reason; the default under NODE_ENV=production), `warn` (log it; the default
   * elsewhere), `off`.
   */
  SPOTLIFT_REDIS_REQUIRE_DURABILITY: z.enum(['refuse', 'warn', 'off']).optional(),
  // How long our client waits for a command's reply, queueing in the client and this process's event loop
  // included: past it the command fails (the API's 503). Raise it for large fleets on loaded hosts (README).
  SPOTLIFT_REDIS_COMMAND_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(1_000),
  /** Finished migrations and evacuations are deleted once they are this many days old (0: kept forever). */
  SPOTLIFT_RECORD_RETENTION_DAYS: z.coerce.number().min(0).max(3650).default(7),
});

export interface RedisSettings {
  url: string;
  sentinels?: { host: string; port: number }[];
  sentinelName: string;
  sentinelPassword?: string;
  /** The CA(s) a `rediss://` server's certificate is checked against (SPOTLIFT_REDIS_TLS_CA); unset: the system's. */
  tlsCa?: Buffer;
  requireDurability: 'refuse' | 'warn' | 'off';
  /** Finished records older than this are trimmed (0: never). */
  retentionMs: number;
  /** Our fail-fast client's per-command timeout (SPOTLIFT_REDIS_COMMAND_TIMEOUT_MS). */
  commandTimeoutMs: number;
}

export function redisSettings(e: z.infer<typeof RedisEnv>, nodeEnv = process.env.NODE_ENV): RedisSettings {
  return {
    url: e.REDIS_URL,
    ...(e.SPOTLIFT_REDIS_SENTINELS
      ? {
          sentinels: e.SPOTLIFT_REDIS_SENTINELS.split(',').map((hp) => {
            const at = hp.lastIndexOf(':');
            return { host: hp.slice(0, at).replace(/^\[|\]$/g, ''), port: Number(hp.slice(at + 1)) };
          }),
        }
      : {}),
    sentinelName: e.SPOTLIFT_REDIS_SENTINEL_NAME,
    ...(e.SPOTLIFT_REDIS_SENTINEL_PASSWORD ? { sentinelPassword: e.SPOTLIFT_REDIS_SENTINEL_PASSWORD } : {}),
    ...(e.SPOTLIFT_REDIS_TLS_CA ? { tlsCa: readCa(e.SPOTLIFT_REDIS_TLS_CA) } : {}),
    requireDurability: e.SPOTLIFT_REDIS_REQUIRE_DURABILITY ?? (nodeEnv === 'production' ? 'refuse' : 'warn'),
    retentionMs: Math.round(e.SPOTLIFT_RECORD_RETENTION_DAYS * 86_400_000),
    commandTimeoutMs: e.SPOTLIFT_REDIS_COMMAND_TIMEOUT_MS,
  };
}

/** Read at boot: an unreadable CA file is a config error now, not a TLS failure on every reconnect later. */
function readCa(path: string): Buffer {
  let pem: Buffer;
  try {
    pem = readFileSync(path);
  } catch (error) {
    throw new Error(`SPOTLIFT_REDIS_TLS_CA: cannot read ${path}: ${(error as Error).message}`);
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) {
    throw new Error(`SPOTLIFT_REDIS_TLS_CA: ${path} holds no PEM certificate`);
  }
  return pem;
}

/**
 * Where and how to connect, from the URL and the sentinels: every client (ours, BullMQ's, the event reader)
 * is built from these, so TLS, the ACL user, the password and the db reach all of them. `extra` are the
 * client's own behaviour options (timeouts, retries).
 */
export function redisOptions(s: RedisSettings, extra: RedisOptions = {}): RedisOptions {
  const url = new URL(s.url);
  const db = url.pathname.replace(/^\//, '');
  if (db && !/^\d{1,2}$/.test(db)) throw new Error(`REDIS_URL: the db must be a number, not '${db}'`);
  const ca = s.tlsCa ? { ca: s.tlsCa } : {};
  // SNI takes a host name only (an IP address there is deprecated in Node); the certificate is checked against
  // the host either way.
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const sni = isIP(host) ? {} : { servername: host };
  const tls = url.protocol === 'rediss:' ? { tls: { ...sni, ...ca } } : {};
  const auth = {
    ...(url.username ? { username: decodeURIComponent(url.username) } : {}),
    ...(url.password ? { password: decodeURIComponent(url.password) } : {}),
    ...(db ? { db: Number(db) } : {}),
  };
  const where: RedisOptions = s.sentinels
    ? {
        sentinels: s.sentinels,
        name: s.sentinelName,
        ...(s.sentinelPassword ? { sentinelPassword: s.sentinelPassword } : {}),
        // A dead master breaks the connection, and the reconnect asks the sentinels again; a write that meets the
        // old master demoted to a replica (a planned failover) reconnects to the new one and is sent again. Not
        // ioredis's `failoverDetector`: its +switch-master handler, landing while a client re-resolves after a
        // SIGKILLed master, ends that client for good ("Connection is closed." on every later command; seen in
        // test/sentinel-failover.e2e-spec.ts), and its own sentinel clients print unhandled TLS errors.
        reconnectOnError: (error: Error) => (error.message.startsWith('READONLY') ? 2 : false),
        // The master's connection is TLS as the URL says; the sentinels' too (one network, one policy).
        ...(url.protocol === 'rediss:'
          ? { tls: { ...ca }, enableTLSForSentinelMode: true, sentinelTLS: { ...ca } }
          : {}),
      }
    : { host, port: Number(url.port || 6379), ...tls };
  return { ...where, ...auth, ...extra };
}

/** The URL without its password, for logs. */
export function redisWhere(s: RedisSettings): string {
  const url = new URL(s.url);
  if (url.password) url.password = '***';
  return s.sentinels
    ? `sentinel ${s.sentinelName} via ${s.sentinels.map((x) => `${x.host}:${x.port}`).join(',')}`
    : url.toString();
}

/**
 * BullMQ's connection: the same options (bullmq types them apart from ioredis's). Reconnects every second at
 * most (BullMQ's default backs off to 20 s): jobs flow again, and a job whose lock an outage cost is handed
 * out again, soon after Redis is back.
 */
export function bullConnection(s: RedisSettings): BullRedisOptions {
  return redisOptions(s, { retryStrategy: (times: number) => Math.min(times * 200, 1_000) }) as BullRedisOptions;
}
