/** Every Redis client's connection comes from REDIS_URL and the sentinels, with TLS, ACL user, password and db. */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RedisEnv, bullConnection, redisOptions, redisSettings, redisWhere } from './redis-config.js';

const settings = (env: Record<string, string>, nodeEnv?: string) => redisSettings(RedisEnv.parse(env), nodeEnv);

describe('Redis connection options', () => {
  it('keeps TLS, the ACL user, the password and the db of a rediss:// URL, for our clients and for BullMQ', () => {
    const s = settings({ REDIS_URL: 'rediss://spot%40lift:p%3Ass@redis.example:6380/3' });
    const expected = {
      host: 'redis.example',
      port: 6380,
      tls: { servername: 'redis.example' },
      username: 'spot@lift',
      password: 'p:ss',
      db: 3,
    };
    expect(redisOptions(s)).toEqual(expected);
    const bull = bullConnection(s);
    expect(bull).toMatchObject(expected);
    expect(typeof bull.retryStrategy).toBe('function');
  });

  it('a plain URL stays plain: no TLS, default port, db 0 unless named', () => {
    expect(redisOptions(settings({ REDIS_URL: 'redis://127.0.0.1' }))).toEqual({ host: '127.0.0.1', port: 6379 });
    expect(redisOptions(settings({ REDIS_URL: 'redis://:secret@[::1]:7000/0' }))).toEqual({
      host: '::1',
      port: 7000,
      password: 'secret',
      db: 0,
    });
  });

  it('asks the sentinels for the master, keeping the URL credentials, db and TLS', () => {
    const s = settings({
      REDIS_URL: 'rediss://app:pw@ignored:1/2',
      SPOTLIFT_REDIS_SENTINELS: '10.0.0.1:26379,sentinel-b:26380',
      SPOTLIFT_REDIS_SENTINEL_NAME: 'spotlift',
      SPOTLIFT_REDIS_SENTINEL_PASSWORD: 'sp',
    });
    const o = redisOptions(s);
    expect(o).toEqual({
      sentinels: [
        { host: '10.0.0.1', port: 26379 },
        { host: 'sentinel-b', port: 26380 },
      ],
      name: 'spotlift',
      sentinelPassword: 'sp',
      reconnectOnError: expect.any(Function),
      tls: {},
      enableTLSForSentinelMode: true,
      sentinelTLS: {},
      username: 'app',
      password: 'pw',
      db: 2,
    });
    expect(bullConnection(s)).toMatchObject({ sentinels: o.sentinels, name: 'spotlift', db: 2, password: 'pw' });
    expect(redisWhere(s)).toBe('sentinel spotlift via 10.0.0.1:26379,sentinel-b:26380');
  });

  it('checks the server against SPOTLIFT_REDIS_TLS_CA, for the master and the sentinels; no SNI for an IP', () => {
    const dir = mkdtempSync(join(tmpdir(), 'redis-ca-'));
    try {
      const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n';
      writeFileSync(join(dir, 'ca.pem'), pem);
      writeFileSync(join(dir, 'key.pem'), '-----BEGIN PRIVATE KEY-----\n');
      const ca = Buffer.from(pem);
      const direct = settings({ REDIS_URL: 'rediss://u:p@10.1.2.3:6380', SPOTLIFT_REDIS_TLS_CA: join(dir, 'ca.pem') });
      expect(redisOptions(direct).tls).toEqual({ ca });
      const viaSentinels = settings({
        REDIS_URL: 'rediss://u:p@x:1',
        SPOTLIFT_REDIS_TLS_CA: join(dir, 'ca.pem'),
        SPOTLIFT_REDIS_SENTINELS: 'a:26379',
      });
      expect(redisOptions(viaSentinels)).toMatchObject({ tls: { ca }, sentinelTLS: { ca } });
      expect(() => settings({ SPOTLIFT_REDIS_TLS_CA: join(dir, 'key.pem') })).toThrow(/holds no PEM certificate/);
      expect(() => settings({ SPOTLIFT_REDIS_TLS_CA: join(dir, 'none.pem') })).toThrow(/cannot read/);
      expect(() => RedisEnv.parse({ SPOTLIFT_REDIS_TLS_CA: 'ca.pem' })).toThrow();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses what it cannot connect with, and never logs the password', () => {
    expect(() => RedisEnv.parse({ REDIS_URL: 'http://redis:6379' })).toThrow(/redis:\/\/ or rediss:\/\//);
    expect(() => RedisEnv.parse({ SPOTLIFT_REDIS_SENTINELS: 'a:1,b' })).toThrow(/host:port/);
    expect(() => redisOptions(settings({ REDIS_URL: 'redis://h:1/abc' }))).toThrow(/db must be a number/);
    expect(redisWhere(settings({ REDIS_URL: 'redis://u:topsecret@h:1' }))).not.toContain('topsecret');
  });

  it('refuses a Redis that is not durable in production and warns elsewhere, unless told otherwise', () => {
    expect(settings({}, 'production').requireDurability).toBe('refuse');
    expect(settings({}, 'development').requireDurability).toBe('warn');
    expect(settings({ SPOTLIFT_REDIS_REQUIRE_DURABILITY: 'off' }, 'production').requireDurability).toBe('off');
    expect(settings({}).retentionMs).toBe(7 * 86_400_000);
    expect(settings({ SPOTLIFT_RECORD_RETENTION_DAYS: '0' }).retentionMs).toBe(0);
  });
});
