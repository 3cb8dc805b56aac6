/**
 * Watcher sharding over the in-memory lease world (the same atomic operations as Redis, with a clock the test
 * moves): takeover of a dead replica's nodes within two lease periods, nodes added and removed, balance, and
 * a random interleaving of periods, pauses, deaths and node changes in which no two replicas ever watch one
 * node while both believe their lease current.
 */
import fc from 'fast-check';
import { InMemoryLeaseWorld } from '../../../testing/src/in-memory-watch-leases.js';
import { shardQuota } from './watch-shards.js';
import { WatchShardKeeper } from './watch-shard-keeper.js';

const LEASE = 3_000;
const RENEW = 1_000;
const nodes = (n: number) => Array.from({ length: n }, (_, i) => `node-${i}`);

interface Replica {
  id: string;
  keeper: WatchShardKeeper;
  watching: Set<string>;
  /** World time of its last completed period (its leases are current until that + LEASE). */
  lastPeriod: number;
  alive: boolean;
}

function replica(world: InMemoryLeaseWorld, id: string, slack = 0): Replica {
  const watching = new Set<string>();
  const r: Replica = {
    id,
    watching,
    lastPeriod: Number.NEGATIVE_INFINITY,
    alive: true,
    keeper: new WatchShardKeeper(
      world.store(id),
      (n) => watching.add(n),
      (n) => watching.delete(n),
      slack,
    ),
  };
  return r;
}

async function period(world: InMemoryLeaseWorld, r: Replica, all: string[]): Promise<void> {
  await r.keeper.period(all);
  r.lastPeriod = world.now;
}

/** Every live replica runs a period each RENEW ms, for `ms`. */
async function run(world: InMemoryLeaseWorld, rs: Replica[], all: string[], ms: number): Promise<void> {
  for (let t = 0; t < ms; t += RENEW) {
    for (const r of rs) if (r.alive) await period(world, r, all);
    world.now += RENEW;
  }
}

const owners = (rs: Replica[], node: string) => rs.filter((r) => r.alive && r.watching.has(node)).map((r) => r.id);

describe('WatchShardKeeper', () => {
  it('two replicas split three nodes, each watched once, none over its share', async () => {
    const world = new InMemoryLeaseWorld(LEASE);
    const rs = [replica(world, 'r1'), replica(world, 'r2')];
    const all = nodes(3);
    await run(world, rs, all, 3 * RENEW);
    for (const n of all) expect(owners(rs, n)).toHaveLength(1);
    for (const r of rs) expect(r.watching.size).toBeLessThanOrEqual(shardQuota(3, 2, 0));
    expect(rs.every((r) => r.watching.size > 0)).toBe(true);
  });

  it("a dead replica's nodes are watched again within two lease periods", async () => {
    const world = new InMemoryLeaseWorld(LEASE);
    const rs = [replica(world, 'r1'), replica(world, 'r2')];
    const all = nodes(10);
    await run(world, rs, all, 3 * RENEW);
    const dead = rs.find((r) => r.watching.size > 0)!;
    const orphans = [...dead.watching];
    dead.alive = false; // SIGKILL: no release
    const diedAt = world.now;
    let coveredAt: number | undefined;
    for (let t = 0; t < 4 * LEASE && coveredAt === undefined; t += RENEW) {
      await run(world, rs, all, RENEW);
      if (orphans.every((n) => owners(rs, n).length === 1)) coveredAt = world.now;
    }
    expect(coveredAt).toBeDefined();
    expect(coveredAt! - diedAt).toBeLessThanOrEqual(2 * LEASE);
    const survivor = rs.find((r) => r.alive)!;
    expect(survivor.watching.size).toBe(10);
  });

  it('a replica shutting down gives its leases back: the other takes them at its next period', async () => {
    const world = new InMemoryLeaseWorld(LEASE);
    const rs = [replica(world, 'r1'), replica(world, 'r2')];
    const all = nodes(4);
    await run(world, rs, all, 3 * RENEW);
    await rs[0]!.keeper.leave();
    rs[0]!.alive = false;
    expect(rs[0]!.watching.size).toBe(0);
    await run(world, rs, all, RENEW);
    expect(rs[1]!.watching.size).toBe(4);
  });

  it('picks up added nodes and stops watching removed ones', async () => {
    const world = new InMemoryLeaseWorld(LEASE);
    const rs = [replica(world, 'r1'), replica(world, 'r2')];
    await run(world, rs, nodes(2), 2 * RENEW);
    await run(world, rs, nodes(6), 2 * RENEW);
    for (const n of nodes(6)) expect(owners(rs, n)).toHaveLength(1);
    await run(world, rs, ['node-5'], RENEW);
    expect(rs.flatMap((r) => [...r.watching])).toEqual(['node-5']);
  });

  it('a replica coming up later gets a share: the first gives back its excess', async () => {
    const world = new InMemoryLeaseWorld(LEASE);
    const r1 = replica(world, 'r1', 0);
    const all = nodes(8);
    await run(world, [r1], all, 2 * RENEW);
    expect(r1.watching.size).toBe(8);
    const r2 = replica(world, 'r2', 0);
    await run(world, [r1, r2], all, 3 * RENEW);
    expect(r1.watching.size).toBe(4);
    expect(r2.watching.size).toBe(4);
    for (const n of all) expect(owners([r1, r2], n)).toHaveLength(1);
  });

  it('keeps watching when the store fails (the notice matters more than a second watcher)', async () => {
    const world = new InMemoryLeaseWorld(LEASE);
    const store = world.store('r1');
    let broken = false;
    const failing = Object.assign(Object.create(store) as typeof store, {
      self: 'r1',
      heartbeat: () => (broken ? Promise.reject(new Error('redis away')) : store.heartbeat()),
    });
    const watching = new Set<string>();
    const keeper = new WatchShardKeeper(
      failing,
      (n) => watching.add(n),
      (n) => watching.delete(n),
    );
    await keeper.period(nodes(2));
    broken = true;
    await expect(keeper.period(nodes(2))).rejects.toThrow('redis away');
    expect([...watching].sort()).toEqual(nodes(2));
  });

  it('random interleavings: never two replicas with current leases on one node; then each node once, shares even', async () => {
    const step = fc.oneof(
      fc.record({ kind: fc.constant('period' as const), who: fc.nat(3) }),
      fc.record({ kind: fc.constant('tick' as const), ms: fc.integer({ min: 1, max: 2 * LEASE }) }),
      fc.record({ kind: fc.constant('kill' as const), who: fc.nat(3) }),
      fc.record({ kind: fc.constant('revive' as const), who: fc.nat(3) }),
      fc.record({ kind: fc.constant('leave' as const), who: fc.nat(3) }),
      fc.record({ kind: fc.constant('nodes' as const), n: fc.integer({ min: 0, max: 8 }) }),
    );
    await fc.assert(
      fc.asyncProperty(fc.array(step, { maxLength: 80 }), async (steps) => {
        const world = new InMemoryLeaseWorld(LEASE);
        let gen = 0;
        const rs = Array.from({ length: 4 }, (_, i) => replica(world, `r${i}-${gen}`));
        let all = nodes(5);
        for (const s of steps) {
          if (s.kind === 'tick') world.now += s.ms;
          else if (s.kind === 'nodes') all = nodes(s.n);
          else if (s.kind === 'kill') rs[s.who]!.alive = false;
          else if (s.kind === 'revive' && !rs[s.who]!.alive) rs[s.who] = replica(world, `r${s.who}-${++gen}`);
          else if (s.kind === 'leave' && rs[s.who]!.alive) {
            await rs[s.who]!.keeper.leave();
            rs[s.who]!.alive = false;
          } else if (s.kind === 'period' && rs[s.who]!.alive) await period(world, rs[s.who]!, all);
          // A replica whose last period is older than a lease may be watching on stale belief (a long pause);
          // among the others, never two on one node.
          const current = rs.filter((r) => r.alive && world.now - r.lastPeriod < LEASE);
          for (const n of nodes(8)) expect(current.filter((r) => r.watching.has(n)).length).toBeLessThanOrEqual(1);
        }
        // Then everyone alive runs steadily: every node watched exactly once, within two lease periods.
        await run(world, rs, all, 2 * LEASE);
        for (const n of all) expect(owners(rs, n).length).toBe(rs.some((r) => r.alive) ? 1 : 0);
        const alive = rs.filter((r) => r.alive);
        for (const r of alive) expect(r.watching.size).toBeLessThanOrEqual(shardQuota(all.length, alive.length, 0));
      }),
      { numRuns: 300 },
    );
  });
});
