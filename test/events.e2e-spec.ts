/**
 * GET /events against the real orchestrator: real Redis (the stream), the lab's sshd nodes and real CRIU for the
 * migration whose phases it streams, real HTTP. Filters, replay with Last-Event-ID, roles, heartbeats, a client
 * that stops reading, and what happens while Redis is away.
 */
import { connect, type Socket } from 'node:net';
import type { DeliveredEvent, MigrationRecord } from '@spotlift/domain';
import { startRedis, stopRedis } from '@spotlift/testing';
import { compareIds } from '../apps/orchestrator/src/events/event-hub.js';
import { followEvents } from '../apps/cli/src/event-stream-client.js';
import { EXIT } from '../apps/cli/src/exit-codes.js';
import { run } from '../apps/cli/src/main.js';
import type { Redis } from 'ioredis';
import { REDIS } from '../apps/orchestrator/src/core/core.module.js';
import { EventPublisher } from '../apps/orchestrator/src/events/event-publisher.js';
import { type E2eEnv, setupE2e, sleep } from './support/e2e-env.js';
import { openEvents, type SseReader } from './support/sse.js';

let env: E2eEnv;
const open: SseReader[] = [];

async function stream(query = '', headers: Record<string, string> = {}, token = env.orch.token) {
  const s = await openEvents(env.orch.baseUrl, token, query, headers);
  open.push(s);
  return s;
}

async function token(role: string, extra: object = {}): Promise<string> {
  const res = await env.orch.api<{ token: string }>('POST', '/tokens', { name: `events-${role}`, role, ...extra });
  expect(res.status).toBe(201);
  return res.body.token;
}

const ended = (m: string) => (e: DeliveredEvent) =>
  e.type === 'migration.state' && e.migration === m && ['completed', 'rolled_back', 'failed'].includes(e.state);

beforeAll(async () => {
  env = await setupE2e({
    nodes: 3,
    redisPort: 6477,
    env: { SPOTLIFT_EVENTS_HEARTBEAT_MS: '500', SPOTLIFT_EVENTS_CLIENT_BUFFER_BYTES: '262144' },
  });
}, 240_000);

afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

afterAll(async () => {
  await env?.teardown();
}, 120_000);

describe('GET /events', () => {
  it('streams a real migration: every phase started and ended with its duration, the downtime, the end; filters hold', async () => {
    const { workload } = await env.launch('ev-move', 'node-a');
    const byWorkload = await stream(`?workload=${workload.id}`);
    const byNodeB = await stream('?node=node-b');
    const byNodeC = await stream('?node=node-c');
    const m = await env.create({ workload: workload.id, destination: 'node-b' });
    const byMigration = await stream(`?migration=${m.id}&node=node-a`);
    await byWorkload.waitFor(ended(m.id), 120_000, 'end of the migration');
    const done = (await env.orch.api<MigrationRecord>('GET', `/migrations/${m.id}`)).body;
    expect(done.state).toBe('completed');

    const mine = byWorkload.events.filter((e) => e.migration === m.id);
    expect(mine[0]).toMatchObject({ type: 'migration.queued', source: 'node-a', destination: 'node-b' });
    const phaseEvents = mine.filter((e) => e.type === 'migration.phase');
    // Each phase of the record: one `started`, one `ended` with the record's duration and outcome, in order.
    const names = (status: string) => phaseEvents.filter((e) => e.status === status).map((e) => e.phase);
    expect(names('started')).toEqual(done.phases.map((p) => p.name));
    expect(names('ended')).toEqual(done.phases.map((p) => p.name));
    for (const p of done.phases)
      expect(phaseEvents.find((e) => e.phase === p.name && e.status === 'ended')).toMatchObject({
        ok: p.ok,
        durationMs: p.durationMs,
      });
    expect(mine.find((e) => e.type === 'migration.downtime')).toMatchObject({ downtimeMs: done.downtimeMs });
    expect(mine[mine.length - 1]).toMatchObject({
      type: 'migration.state',
      state: 'completed',
      downtimeMs: done.downtimeMs,
    });
    // Ids are stream ids, strictly increasing.
    const ids = byWorkload.events.map((e) => e.id);
    expect([...ids].sort(compareIds)).toEqual(ids);
    expect(new Set(ids).size).toBe(ids.length);

    // node-b is the destination: it sees the migration; node-c saw none of it; ?migration=&node= is both.
    await byNodeB.waitFor(ended(m.id), 10_000);
    expect(byNodeB.events.filter((e) => e.migration === m.id).map((e) => e.id)).toEqual(mine.map((e) => e.id));
    expect(byNodeC.events.filter((e) => e.migration === m.id)).toEqual([]);
    await byMigration.waitFor(ended(m.id), 10_000);
    expect(byMigration.events.every((e) => e.migration === m.id)).toBe(true);
  });

  it('a client that reconnects with Last-Event-ID misses nothing and gets nothing twice', async () => {
    const { workload } = await env.launch('ev-resume', 'node-b');
    const whole = await stream(`?workload=${workload.id}`);
    const first = await stream(`?workload=${workload.id}`);
    const m = await env.create({ workload: workload.id, destination: 'node-c' });
    // Leave as soon as the freeze started: the rest of the migration happens while this client is away.
    await first.waitFor((e) => e.type === 'migration.phase' && e.phase === 'dump', 60_000, 'dump');
    first.close();
    const seen = [...first.events];
    await whole.waitFor(ended(m.id), 120_000, 'end of the migration');
    const last = seen[seen.length - 1]!.id;
    // The header, as EventSource and the dashboard send it; then the query form, for clients that cannot.
    const again = await stream(`?workload=${workload.id}`, { 'last-event-id': last });
    await again.waitFor(ended(m.id), 10_000, 'the replayed end');
    expect([...seen, ...again.events].map((e) => e.id)).toEqual(whole.events.map((e) => e.id));
    expect(again.events.length).toBeGreaterThan(0);
    const byQuery = await stream(`?workload=${workload.id}&lastEventId=${last}`);
    await byQuery.waitFor(ended(m.id), 10_000);
    expect(byQuery.events.map((e) => e.id)).toEqual(again.events.map((e) => e.id));
  });

  it("the CLI's follower (spotlift watch) follows a real migration to its end, the same events as the stream", async () => {
    const { workload } = await env.launch('ev-watch', 'node-c');
    const reference = await stream(`?workload=${workload.id}`);
    const stop = new AbortController();
    const seen: DeliveredEvent[] = [];
    const following = (async () => {
      const settings = { url: env.orch.baseUrl, token: env.orch.token };
      for await (const e of followEvents(settings, { filter: { workload: workload.id }, signal: stop.signal })) {
        seen.push(e);
        if (e.type === 'migration.state' && e.state !== 'running') break;
      }
    })();
    await sleep(300);
    const m = await env.create({ workload: workload.id, destination: 'node-a' });
    await following;
    stop.abort();
    await reference.waitFor(ended(m.id), 10_000);
    expect(seen.map((e) => e.id)).toEqual(reference.events.map((e) => e.id));
    expect(seen[seen.length - 1]).toMatchObject({ type: 'migration.state', state: 'completed' });
  });

  it('`spotlift migrate` follows a real migration through the stream: each phase printed, exit 0', async () => {
    const { workload } = await env.launch('ev-cli-migrate', 'node-b');
    const out: string[] = [];
    const err: string[] = [];
    const io = { out: (l: string) => out.push(l), err: (l: string) => err.push(l), env: {} };
    const argv = ['--url', env.orch.baseUrl, '--token', env.orch.token, 'migrate', workload.id, '--to', 'node-c'];
    const code = await run(argv, io);
    expect({ code, err: err.filter((l) => /error|HTTP/i.test(l)) }).toEqual({ code: EXIT.ok, err: [] });
    const lines = [...out, ...err].join('\n');
    for (const phase of ['preflight', 'dump', 'restore', 'verify', 'commit']) expect(lines).toMatch(new RegExp(phase));
    const m = (await env.orch.api<MigrationRecord[]>('GET', '/migrations')).body.find(
      (x) => x.workloadId === workload.id,
    );
    expect(m).toMatchObject({ state: 'completed', destinationNodeId: 'node-c' });
  });

  it('needs a viewer token: none 401, an agent 403; a viewer streams; bad input 400', async () => {
    const none = await stream('', {}, '');
    expect(none.status).toBe(401);
    const agent = await stream('', {}, await token('agent', { nodeId: 'node-a' }));
    expect(agent.status).toBe(403);
    expect(agent.refusal).toMatch(/viewer/);
    const viewer = await stream('', {}, await token('viewer'));
    expect(viewer.status).toBe(200);
    await viewer.waitForComment(5_000); // heartbeats every 500 ms in this suite
    for (const [query, headers] of [
      ['?nod=node-a', {}],
      ['?node=a%20b', {}],
      ['', { 'last-event-id': 'yesterday' }],
      ['?lastEventId=1-x', {}],
    ] as const) {
      const bad = await stream(query, headers);
      expect(bad.status).toBe(400);
    }
  });

  it('a notice on a node streams the notice, the node going terminating and the evacuation to its end', async () => {
    const nodeC = await stream('?node=node-c');
    const res = await env.orch.api<{ evacuation: { id: string } }>('POST', '/notices', {
      nodeId: 'node-c',
      kind: 'termination',
      secondsUntil: 120,
      reason: 'events suite',
    });
    expect(res.status).toBe(202);
    const evac = res.body.evacuation.id;
    await nodeC.waitFor(
      (e) => e.type === 'evacuation.state' && e.evacuation === evac && e.state === 'completed',
      30_000,
    );
    expect(nodeC.events.find((e) => e.type === 'notice')).toMatchObject({
      evacuation: evac,
      kind: 'termination',
      source: 'webhook',
      reason: 'events suite',
    });
    expect(nodeC.events.find((e) => e.type === 'node.updated')).toMatchObject({
      previousState: 'ready',
      node: { state: 'terminating' },
    });
    expect((await env.orch.api('POST', '/nodes/node-c/clear-notice')).status).toBe(200);
    await nodeC.waitFor((e) => e.type === 'node.updated' && e.node.state === 'ready', 10_000);
  });

  it('a client that stops reading is dropped at its bound (256 KiB here); a reading client gets everything meanwhile', async () => {
    const reading = await stream('?node=node-z');
    const slow = await rawStream();
    const publisher = env.orch.app.get(EventPublisher);
    // 16 MB in all, more than the loopback socket buffers hold, in fewer events than the stream keeps (10,000).
    const detail = 'x'.repeat(2_000);
    const total = 8_000;
    const redis = env.orch.app.get<symbol, Redis>(REDIS);
    const droppedBefore = publisher.dropped;
    for (let i = 0; i < total; i++) {
      // Our client gives each command 1 s: let each batch reach Redis before the next (a PING answers after it).
      if (i % 500 === 0) await redis.ping();
      publisher.publish([
        {
          type: 'migration.phase',
          phase: 'dump',
          status: 'ended',
          detail,
          at: new Date().toISOString(),
          nodes: ['node-z'],
        },
      ]);
    }
    await redis.ping();
    expect(publisher.dropped).toBe(droppedBefore);
    await reading.waitFor(() => reading.events.length >= total, 60_000, `${total} events`);
    // The slow client's socket was destroyed by the server: reading what reached it ends, far short of it all.
    slow.socket.resume();
    await slow.closed;
    expect(slow.bytes).toBeLessThan(total * detail.length);
    expect(slow.bytes).toBeGreaterThan(0);
    expect(reading.events).toHaveLength(total);
    console.log(
      `events: a client that stopped reading got ${slow.bytes} bytes of ${total * detail.length} before it was dropped`,
    );
  });

  it('Redis away: a new GET /events is a 503; a connected client stays and gets what is published once Redis is back', async () => {
    const live = await stream('?node=node-y');
    await live.waitForComment(5_000);
    await stopRedis(env.redisPort);
    try {
      // The connected client hears it first; then a new one is refused.
      await live.waitForNotice('redis', 15_000);
      expect(live.notices).toEqual([{ type: 'redis', data: { reachable: false } }]);
      const refused = await stream('?node=node-y');
      expect(refused.status).toBe(503);
    } finally {
      await startRedis(env.redisPort);
    }
    const ready = async () => (await fetch(`${env.orch.baseUrl}/health/ready`)).status === 200;
    for (let i = 0; i < 100 && !(await ready()); i++) await sleep(100);
    env.orch.app
      .get(EventPublisher)
      .publish([{ type: 'node.removed', at: new Date().toISOString(), nodes: ['node-y'] }]);
    await live.waitFor((e) => e.type === 'node.removed', 15_000, 'the event published after the outage');
    expect(live.events.map((e) => e.type)).toEqual(['node.removed']);
    expect(live.notices).toEqual([
      { type: 'redis', data: { reachable: false } },
      { type: 'redis', data: { reachable: true } },
    ]);
  });
});

/** GET /events over a raw socket that stops reading after the response headers. */
async function rawStream(): Promise<{ socket: Socket; bytes: number; closed: Promise<void> }> {
  const url = new URL(env.orch.baseUrl);
  const socket = connect(Number(url.port), url.hostname);
  const state = { socket, bytes: 0, closed: new Promise<void>((r) => socket.on('close', () => r())) };
  await new Promise<void>((r) => socket.once('connect', () => r()));
  socket.write(
    `GET /events?node=node-z HTTP/1.1\r\nHost: ${url.host}\r\nAuthorization: Bearer ${env.orch.token}\r\n\r\n`,
  );
  await new Promise<void>((resolve) =>
    socket.once('data', (chunk: Buffer) => {
      expect(chunk.toString('latin1')).toMatch(/^HTTP\/1\.1 200/);
      socket.pause();
      resolve();
    }),
  );
  socket.on('data', (chunk: Buffer) => (state.bytes += chunk.length));
  socket.on('error', () => undefined);
  await sleep(200);
  return state;
}
