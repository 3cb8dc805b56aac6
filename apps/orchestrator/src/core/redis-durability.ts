import { Inject, Injectable, Logger, type OnModuleInit } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { AppConfig } from '../config/app-config.js';
import { redisWhere } from '../config/redis-config.js';
import { REDIS } from './core.module.js';
import { RedisLink } from './redis-link.js';

/** What the start-up check read from Redis (undefined: could not be read, e.g. the command is not allowed). */
export interface RedisPersistence {
  aofEnabled?: boolean;
  appendfsync?: string;
  maxmemoryPolicy?: string;
  /** Replicas connected to this master (INFO replication). */
  replicas?: number;
}

/** Problems that lose acknowledged state (`fatal`) and advice (`advice`: kept state survives, but less well). */
export interface DurabilityVerdict {
  fatal: string[];
  advice: string[];
}

/**
 * Judges what Redis reported: without AOF a restart loses everything written since the last snapshot (nodes,
 * workloads, migrations, queued jobs, claims); with an evicting maxmemory-policy Redis deletes keys when full.
 * A setting that could not be read is named as unverified (advice), never taken as fine or as bad.
 */
export function judgeDurability(p: RedisPersistence): DurabilityVerdict {
  const fatal: string[] = [];
  const advice: string[] = [];
  if (p.aofEnabled === false)
    fatal.push('appendonly is off: a Redis restart loses every write since the last RDB save');
  if (p.aofEnabled === undefined) advice.push('appendonly could not be read (INFO/CONFIG not allowed): unverified');
  if (p.maxmemoryPolicy !== undefined && p.maxmemoryPolicy !== 'noeviction') {
    fatal.push(`maxmemory-policy is ${p.maxmemoryPolicy}: Redis deletes keys (records, jobs) when it is full`);
  }
  if (p.maxmemoryPolicy === undefined) advice.push('maxmemory-policy could not be read: unverified');
  if (p.aofEnabled && p.appendfsync !== undefined && p.appendfsync === 'no') {
    advice.push('appendfsync is no: the kernel decides when writes reach the disk (everysec loses at most 1 s)');
  }
  if (p.replicas === 0)
    advice.push('no replica is connected: losing this host loses the state (run a replica with Sentinel)');
  return { fatal, advice };
}

const field = (info: string, name: string): string | undefined =>
  new RegExp(`^${name}:(.*)$`, 'm').exec(info)?.[1]?.trim();

/** Reads the settings: INFO first (allowed to most ACL users), CONFIG GET for what INFO does not tell. */
export async function readPersistence(redis: Redis): Promise<RedisPersistence> {
  const p: RedisPersistence = {};
  const info = await redis.info().catch(() => '');
  const aof = field(info, 'aof_enabled');
  if (aof !== undefined) p.aofEnabled = aof === '1';
  const policy = field(info, 'maxmemory_policy');
  if (policy !== undefined) p.maxmemoryPolicy = policy;
  const replicas = field(info, 'connected_slaves');
  if (replicas !== undefined && field(info, 'role') === 'master') p.replicas = Number(replicas);
  const config = async (name: string): Promise<string | undefined> => {
    const r = (await redis.config('GET', name).catch(() => [])) as string[];
    return r[1];
  };
  if (p.aofEnabled === undefined) {
    const v = await config('appendonly');
    if (v !== undefined) p.aofEnabled = v === 'yes';
  }
  if (p.maxmemoryPolicy === undefined) {
    const v = await config('maxmemory-policy');
    if (v !== undefined) p.maxmemoryPolicy = v;
  }
  const fsync = await config('appendfsync');
  if (fsync !== undefined) p.appendfsync = fsync;
  return p;
}

/** Raised at start in `refuse` mode: main.ts prints it and exits. */
export class RedisNotDurable extends Error {
  override readonly name = 'RedisNotDurable';
}

/**
 * Checks Redis's persistence at start (SPOTLIFT_REDIS_REQUIRE_DURABILITY): `refuse` stops the process with
 * the reasons, `warn` logs them. A Redis unreachable at start is checked once it answers (then only logged).
 */
@Injectable()
export class RedisDurabilityCheck implements OnModuleInit {
  private readonly logger = new Logger('redis');

  constructor(
    @Inject(REDIS) private readonly redis: Redis,
    private readonly link: RedisLink,
    private readonly config: AppConfig,
  ) {}

  async onModuleInit(): Promise<void> {
    const mode = this.config.redis.requireDurability;
    if (mode === 'off') return;
    if (!this.link.isUp) {
      let done = false;
      this.link.onUp(async () => {
        if (done) return;
        done = true;
        await this.check('warn');
      });
      return;
    }
    await this.check(mode);
  }

  private async check(mode: 'refuse' | 'warn'): Promise<void> {
    const verdict = judgeDurability(await readPersistence(this.redis));
    const where = redisWhere(this.config.redis);
    if (verdict.fatal.length && mode === 'refuse') {
      throw new RedisNotDurable(
        `Redis at ${where} would lose acknowledged state: ${verdict.fatal.join('; ')}. ` +
          'Run it with appendonly yes, appendfsync everysec, maxmemory-policy noeviction (README "Redis in production"), ' +
          'or set SPOTLIFT_REDIS_REQUIRE_DURABILITY=warn.',
      );
    }
    for (const reason of verdict.fatal) this.logger.warn({ msg: 'redis is not durable', redis: where, reason });
    for (const reason of verdict.advice) this.logger.log({ msg: 'redis durability note', redis: where, reason });
  }
}
