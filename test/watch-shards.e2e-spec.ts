/**
 * Watchers sharded across replicas, with real processes: two built orchestrators (worker role included) on one
 * real Redis, the three lab nodes each with its own fake IMDS on the lab bridge (polled by curl on the node over
 * SSH). Each node is watched by exactly one replica; one replica SIGKILLed: its nodes are watched by the other
 * within two lease periods, and a Spot notice raised on one of them right after the kill still starts an
 * evacuation. Who watches what is read from the replicas' JSON logs.
 */
import { readFileSync } from 'node:fs';
import type { EvacuationRecord } from '@spotlift/domain';
import { FakeImdsServer, LAB_HOST_ADDRESS, type OrchestratorProcess } from '@spotlift/testing';
import { setupE2e, type E2eEnv } from './support/e2e-env.js';
import { until } from './support/poll.js';

const REDIS_PORT = 6437;
const LEASE_MS = 2_000;
const RENEW_MS = 500;
const NODES = ['node-a', 'node-b', 'node-c'];

let env: E2eEnv<OrchestratorProcess>;
const imds = new Map<string, FakeImdsServer>();

beforeAll(async () => {
  env = await setupE2e({
    mode: 'process',
    redisPort: REDIS_PORT,
    env: {
      SPOTLIFT_LOG_FORMAT: 'json',
      SPOTLIFT_WATCH_LEASE_MS: String(LEASE_MS),
      SPOTLIFT_WATCH_RENEW_MS: String(RENEW_MS),
    },
    replicas: 1,
    config: async (l) => {
      for (const id of NODES) imds.set(id, await new FakeImdsServer().start({ host: LAB_HOST_ADDRESS }));
      return {
        ...l,
        nodes: l.nodes.map((n) => ({ ...n, metadata: { provider: 'aws', baseUrl: imds.get(n.id)!.url } })),
      };
    },
  });
}, 300_000);

afterAll(async () => {
  await env?.teardown();
  for (const s of imds.values()) await s.stop();
}, 120_000);

/** The nodes a replica watches now, replayed from its log's "watching notices" / "stopped watching" lines. */
function watchedBy(o: OrchestratorProcess): Set<string> {
  const now = new Set<string>();
  for (const line of readFileSync(o.logFile, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    const { message } = JSON.parse(line) as { message?: { msg?: string; target?: string } };
    const { msg, target } = typeof message === 'object' && message ? message : {};
    if (!target || !NODES.includes(target)) continue;
    if (msg === 'watching notices') now.add(target);
    else if (msg?.startsWith('stopped watching notices')) now.delete(target);
  }
  return now;
}

describe('notice watchers sharded across two orchestrator processes by Redis leases', () => {
  it('each node watched by one replica; one killed: its nodes watched again within two leases, a notice then not lost', async () => {
    const [r1, r2] = [env.orch, env.replicas[0]!];
    // Settled: every node watched, by exactly one replica, both replicas watching some, and polled.
    const split = await until(
      'every node watched once, by both replicas between them',
      () => {
        const [a, b] = [watchedBy(r1), watchedBy(r2)];
        const once = NODES.every((n) => Number(a.has(n)) + Number(b.has(n)) === 1);
        // Shared: the replica that came up first gives back what exceeds its share, ceil(3 / 2) = 2.
        return Promise.resolve(once && a.size > 0 && b.size > 0 ? { a, b } : undefined);
      },
      30_000,
      100,
    );
    await until(
      'each IMDS polled',
      () => Promise.resolve([...imds.values()].every((s) => s.tokensIssued >= 1) || undefined),
      10_000,
    );
    // The replica holding more nodes dies without a word (no lease given back).
    const [victim, survivor, orphans] = split.a.size >= split.b.size ? [r1, r2, split.a] : [r2, r1, split.b];
    expect(orphans.size).toBeGreaterThan(0);
    const orphan = [...orphans][0]!;
    await victim.kill('SIGKILL');
    const killedAt = Date.now();
    // Raised right after the kill, while nobody watches that node yet.
    imds.get(orphan)!.setSpotInterruption({ action: 'terminate', time: new Date(killedAt + 120_000) });
    await until(
      'the survivor watching every node',
      () => Promise.resolve(NODES.every((n) => watchedBy(survivor).has(n)) || undefined),
      4 * LEASE_MS,
      50,
    );
    const takeoverMs = Date.now() - killedAt;
    const evacuation = await until(
      `an evacuation of ${orphan}`,
      async () => {
        const res = await survivor.api<EvacuationRecord[]>('GET', '/evacuations');
        return res.status === 200 ? res.body.find((e) => e.nodeId === orphan) : undefined;
      },
      10_000,
      100,
    );
    const noticeMs = Date.now() - killedAt;
    console.log(
      `watch shards: split ${[...split.a].join(',')} | ${[...split.b].join(',')}; killed the holder of ${[...orphans].join(',')}; ` +
        `survivor watching all after ${takeoverMs} ms (bound: lease ${LEASE_MS} + renew ${RENEW_MS}); evacuation of ${orphan} seen after ${noticeMs} ms`,
    );
    expect(takeoverMs).toBeLessThanOrEqual(2 * LEASE_MS);
    expect(evacuation.notice).toMatchObject({ source: 'aws', kind: 'preemption', action: 'terminate' });
    expect(survivor.alive).toBe(true);
  }, 120_000);
});
