/** RedisWatchLeases on a real redis-server: the atomic lease operations two replicas rely on. */
import { Redis } from 'ioredis';
import { startRedis, stopRedis } from '../../../testing/src/lab/redis.js';
import { RedisWatchLeases } from './watch-leases.js';
import { WatchShardKeeper } from './watch-shard-keeper.js';

const PORT = 6436;
const LEASE = 1_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

let redis: Redis;
let prefix = 'wl0';
let run = 0;
const leases = (self: string) => new RedisWatchLeases(redis, prefix, self, { leaseMs: LEASE, renewMs: 300 });

beforeAll(async () => {
  await startRedis(PORT);
  redis = new Redis({ port: PORT, host: '127.0.0.1', maxRetriesPerRequest: 1 });
}, 60_000);
beforeEach(() => {
  prefix = `wl${++run}`;
});
afterAll(async () => {
  redis?.disconnect();
  await stopRedis(PORT);
});

describe('RedisWatchLeases on a private redis-server', () => {
  it('gives a free node to exactly one of two replicas reaching for it at once', async () => {
    const [a, b] = [leases('a'), leases('b')];
    const [ga, gb] = await Promise.all([a.acquire(['n1', 'n2']), b.acquire(['n2', 'n1'])]);
    expect([...ga, ...gb].sort()).toEqual(['n1', 'n2']);
    const holders = await a.holders(['n1', 'n2', 'n3']);
    expect(holders.size).toBe(2);
    for (const n of ga) expect(holders.get(n)).toBe('a');
  });

  it('renews only its own leases; a lapsed one taken by another is reported lost and left alone', async () => {
    const [a, b] = [leases('a'), leases('b')];
    await a.acquire(['n1', 'n2']);
    await sleep(LEASE / 2);
    expect(await a.renew(['n1'])).toEqual([]);
    await sleep(LEASE * 0.7);
    // n1 was extended, n2 lapsed
    expect(await b.acquire(['n1', 'n2'])).toEqual(['n2']);
    expect(await a.renew(['n1', 'n2'])).toEqual(['n2']);
    expect((await a.holders(['n2'])).get('n2')).toBe('b');
    await a.release(['n1', 'n2']);
    expect([...(await a.holders(['n1', 'n2']))]).toEqual([['n2', 'b']]);
  });

  it('takes back a lease that lapsed while nobody took it (a late renewal does not drop the watch)', async () => {
    const [a, b] = [leases('a'), leases('b')];
    await a.acquire(['n1']);
    await sleep(LEASE * 1.3);
    expect((await a.holders(['n1'])).size).toBe(0);
    expect(await a.renew(['n1'])).toEqual([]);
    expect((await a.holders(['n1'])).get('n1')).toBe('a');
    expect(await b.acquire(['n1'])).toEqual([]);
  });

  it('counts a replica live until a lease passes without its heartbeat; leave() removes it at once', async () => {
    const [a, b, c] = [leases('a'), leases('b'), leases('c')];
    await a.heartbeat();
    await c.heartbeat();
    expect((await b.heartbeat()).sort()).toEqual(['a', 'b', 'c']);
    await c.leave([]);
    await sleep(LEASE + 100);
    expect(await b.heartbeat()).toEqual(['b']);
  });

  it('two keepers split six nodes; one gone without a word, the other holds all within two leases', async () => {
    const watching = { a: new Set<string>(), b: new Set<string>() };
    const keeper = (id: 'a' | 'b') =>
      new WatchShardKeeper(
        leases(id),
        (n) => watching[id].add(n),
        (n) => watching[id].delete(n),
      );
    const [ka, kb] = [keeper('a'), keeper('b')];
    const nodes = ['n1', 'n2', 'n3', 'n4', 'n5', 'n6'];
    for (let i = 0; i < 3; i++) {
      await ka.period(nodes);
      await kb.period(nodes);
      await sleep(300);
    }
    expect(watching.a.size).toBe(3);
    expect(watching.b.size).toBe(3);
    expect([...watching.a].filter((n) => watching.b.has(n))).toEqual([]);
    // a stops renewing (killed): b holds every node within two lease periods
    const t0 = Date.now();
    while (watching.b.size < 6 && Date.now() - t0 < 4 * LEASE) {
      await kb.period(nodes);
      await sleep(300);
    }
    expect(watching.b.size).toBe(6);
    expect(Date.now() - t0).toBeLessThanOrEqual(2 * LEASE + 300);
  });
});
