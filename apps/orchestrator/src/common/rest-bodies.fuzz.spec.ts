/**
 * Fuzzing every REST body through the real controllers, pipes, services and exception filter (a Nest testing
 * module over HTTP on loopback), with in-memory repositories, a recording node shell and recording queues.
 * Arbitrary JSON, arbitrary text sent as JSON, and near-valid bodies (a valid body with exactly one thing
 * broken, against real ids, so a pipe that let it through would reach the nodes) must all get a 4xx, never a
 * 5xx, and change nothing: repositories as they were, nothing queued, no node command, no notice raised.
 */
import type { INestApplication } from '@nestjs/common';
import { Logger } from '@nestjs/common';
import { APP_FILTER } from '@nestjs/core';
import { Test } from '@nestjs/testing';
import fc from 'fast-check';
import type { CheckpointRecord, GuardStatus, MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { Clock, CheckpointFlow, NodeOps, NodeProber, PodmanOps, SystemClock } from '@spotlift/engine';
import { DirectoryStreamer } from '@spotlift/transport';
import {
  CheckpointRepository,
  EvacuationRepository,
  InMemoryEvacuationRecords,
  InMemoryMigrationFlags,
  InMemoryProcessIndex,
  InMemoryRecords,
  InMemoryTokenRepository,
  InMemoryWorkloadClaims,
  ProcessIndex,
  WorkloadClaims,
  MigrationFlags,
  MigrationRepository,
  NodeRepository,
  WorkloadRepository,
} from '@spotlift/store';
import { parseWebhookNotice } from '@spotlift/notices';
import { ScriptedNodeShell, aMigration, aNode, aWorkload } from '@spotlift/testing';
import { CheckpointQueue } from '../checkpoints/checkpoint-queue.js';
import { CheckpointsController } from '../checkpoints/checkpoints.controller.js';
import { CheckpointsService, CreateCheckpoint, RestoreCheckpoint } from '../checkpoints/checkpoints.service.js';
import { ForensicsService } from '../checkpoints/forensics.service.js';
import { AppConfig, NodeSpec } from '../config/app-config.js';
import { MigrationCancelService } from '../migrations/migration-cancel.service.js';
import { MigrationQueue } from '../migrations/migration-queue.js';
import { MigrationsController } from '../migrations/migrations.controller.js';
import { CreateMigration, MigrationsService } from '../migrations/migrations.service.js';
import { NodeEvents } from '../nodes/node-events.js';
import { NodesController } from '../nodes/nodes.controller.js';
import { ReleasableMarks } from '../rebalance/releasable-marks.js';
import { NodesService } from '../nodes/nodes.service.js';
import { NoticeIntake } from '../notices/notice-intake.service.js';
import { NoticesController } from '../notices/notices.controller.js';
import { WorkloadsController } from '../workloads/workloads.controller.js';
import { RegisterWorkload, WorkloadsService } from '../workloads/workloads.service.js';
import { GuardStatusRepository } from '../guard/guard-status.js';
import { RedisLink } from '../core/redis-link.js';
import { DomainExceptionFilter } from './domain-exception.filter.js';
import { EvacuationQueue } from '../evacuations/evacuation-queue.js';
import { EvacuationsController } from '../evacuations/evacuations.controller.js';
import { EvacuationsService } from '../evacuations/evacuations.service.js';
import { ManualEvacuationBody, manualNotice } from '../evacuations/manual-evacuation.js';
import { KubeCordoner } from '../notices/kube-cordon.js';
import { BOOTSTRAP, CreateToken, TokenService } from '../auth/token-service.js';
import { TokensController } from '../auth/tokens.controller.js';
import type { AuthenticatedRequest } from './auth.guard.js';

const RUNS = 200;
const HOST_KEY = `ssh-ed25519 ${'A'.repeat(68)}`;
const future = () => new Date(Date.now() + 3_600_000).toISOString();

/** Everything a request could change, in one place. */
class World {
  readonly nodes = new InMemoryRecords<NodeRecord>();
  readonly workloads = new InMemoryRecords<WorkloadRecord>();
  readonly migrations = new InMemoryRecords<MigrationRecord>();
  readonly checkpoints = new InMemoryRecords<CheckpointRecord>();
  readonly shell = new ScriptedNodeShell();
  readonly flags = new InMemoryMigrationFlags();
  readonly claims = new InMemoryWorkloadClaims();
  readonly index = new InMemoryProcessIndex();
  readonly evacuations = new InMemoryEvacuationRecords();
  readonly tokens = new InMemoryTokenRepository();
  readonly queued: string[] = [];
  readonly pushed: unknown[] = [];

  async seed(): Promise<void> {
    for (const id of ['node-a', 'node-b', 'node-c']) await this.nodes.save(aNode(id));
    await this.workloads.save(aWorkload({ id: 'wl-1', nodeId: 'node-a' }));
    // An ended migration: cancelling it is a 409 whatever the body says.
    await this.migrations.save(aMigration({ id: 'mig-done', state: 'completed' }));
    const now = new Date().toISOString();
    await this.checkpoints.save({
      id: 'cp-1',
      workloadId: 'wl-1',
      sourceNodeId: 'node-a',
      storageNodeId: 'node-c',
      imageDir: '/var/lib/spotlift/checkpoints/wl-1/cp-1',
      state: 'stored',
      phases: [],
      criu: {},
      bytes: { pages: 0, images: 0 },
      createdAt: now,
      updatedAt: now,
    });
  }

  async snapshot(): Promise<string> {
    const lists = await Promise.all([
      this.nodes.list(),
      this.workloads.list(),
      this.migrations.list(),
      this.checkpoints.list(),
      this.evacuations.list(),
      this.tokens.list(),
      this.claims.holder('node:node-a:pid:1'),
    ]);
    return JSON.stringify({
      lists,
      queued: this.queued,
      pushed: this.pushed,
      commands: this.shell.calls.length,
    });
  }
}

async function startApp(world: World): Promise<{ app: INestApplication; base: string }> {
  const record =
    (what: string) =>
    (...args: unknown[]): Promise<never> => {
      world.queued.push(`${what}(${JSON.stringify(args)})`);
      return Promise.reject(new Error(`${what} must not be reached`));
    };
  const moduleRef = await Test.createTestingModule({
    controllers: [
      MigrationsController,
      NodesController,
      WorkloadsController,
      CheckpointsController,
      NoticesController,
      EvacuationsController,
      TokensController,
    ],
    providers: [
      EvacuationsService,
      { provide: EvacuationQueue, useValue: { enqueue: record('enqueueEvacuation') } },
      { provide: KubeCordoner, useValue: new KubeCordoner(new SystemClock()) },
      MigrationsService,
      MigrationCancelService,
      NodesService,
      ReleasableMarks,
      WorkloadsService,
      CheckpointsService,
      ForensicsService,
      NodeEvents,
      { provide: APP_FILTER, useClass: DomainExceptionFilter },
      { provide: Clock, useClass: SystemClock },
      { provide: NodeRepository, useValue: world.nodes },
      { provide: WorkloadRepository, useValue: world.workloads },
      { provide: MigrationRepository, useValue: world.migrations },
      { provide: CheckpointRepository, useValue: world.checkpoints },
      { provide: GuardStatusRepository, useValue: new InMemoryRecords<GuardStatus>() },
      { provide: MigrationFlags, useValue: world.flags },
      { provide: WorkloadClaims, useValue: world.claims },
      // Redis as the exception filter sees it: reachable (the fuzzed bodies never reach it anyway).
      { provide: RedisLink, useValue: { isUp: true, report: () => undefined } },
      { provide: ProcessIndex, useValue: world.index },
      { provide: EvacuationRepository, useValue: world.evacuations },
      { provide: TokenService, useValue: new TokenService(world.tokens, 'fuzz-bootstrap-token-0123456789') },
      { provide: NodeOps, useValue: new NodeOps(world.shell) },
      { provide: PodmanOps, useValue: new PodmanOps(new NodeOps(world.shell), new DirectoryStreamer(world.shell)) },
      { provide: NodeProber, useValue: new NodeProber(world.shell, new SystemClock(), '/var/lib/spotlift/images') },
      { provide: MigrationQueue, useValue: { enqueue: record('enqueue'), removeIfIdle: record('removeIfIdle') } },
      {
        provide: CheckpointQueue,
        useValue: { enqueueTake: record('enqueueTake'), enqueueRestore: record('enqueueRestore') },
      },
      { provide: CheckpointFlow, useValue: { removeImages: record('removeImages') } },
      {
        provide: NoticeIntake,
        useValue: { pushed: (n: unknown) => (world.pushed.push(n), Promise.resolve({ duplicate: false })) },
      },
      {
        provide: AppConfig,
        useValue: { evacuation: { storageNodeId: 'node-c' }, checkpointRoot: '/var/lib/spotlift/checkpoints' },
      },
    ],
  }).compile();
  const app = moduleRef.createNestApplication({ logger: false });
  // The guard is not under test here (auth.guard.spec.ts): every request is the bootstrap admin's.
  app.use((req: AuthenticatedRequest, _res: unknown, next: () => void) => {
    req.principal = BOOTSTRAP;
    next();
  });
  await app.listen(0, '127.0.0.1');
  return { app, base: await app.getUrl() };
}

// ---- arbitraries -------------------------------------------------------------------------------------------

const json = fc.jsonValue({ maxDepth: 3 });
const objectOf = (arb: fc.Arbitrary<unknown>) => fc.dictionary(fc.string({ maxLength: 12 }), arb, { maxKeys: 6 });
/** Anything JSON, as the text sent: scalars, arrays, objects (mostly), and prototype-pollution attempts. */
const anyJsonText = fc.oneof(
  { weight: 3, arbitrary: objectOf(json).map((v) => JSON.stringify(v)) },
  { weight: 1, arbitrary: json.map((v) => JSON.stringify(v)) },
  {
    weight: 1,
    arbitrary: fc.constantFrom(
      '{"__proto__":{"admin":true}}',
      '{"constructor":{"prototype":{"admin":true}}}',
      '{"workload":"wl-1","__proto__":{"keepImages":true},"transport":"udp"}',
    ),
  },
);
const opt = <T>(arb: fc.Arbitrary<T>) => fc.option(arb, { nil: undefined });
const compact = (o: Record<string, unknown>) =>
  Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined));
const long = (n: number) => 'x'.repeat(n);

/** A body the endpoint accepts, and per field the values that must each make it a 400. */
interface Endpoint {
  path: string;
  /** The validation the controller applies (schema or parser): true when it accepts the body. */
  accepts: (body: unknown) => boolean;
  valid: fc.Arbitrary<Record<string, unknown>>;
  required: string[];
  wrong: Record<string, unknown[]>;
}

const ENDPOINTS: Record<string, Endpoint> = {
  'POST /migrations': {
    path: '/migrations',
    // The service refuses a deadline that has passed before it looks at any node: part of validation here.
    accepts: (b) => {
      const r = CreateMigration.safeParse(b);
      return r.success && (r.data.deadline === undefined || Date.parse(r.data.deadline) > Date.now());
    },
    valid: fc
      .record({
        workload: fc.constant('wl-1'),
        destination: opt(fc.constant('node-b')),
        strategy: opt(fc.constantFrom('stop-and-copy', 'pre-copy', 'post-copy', 'hybrid', 'auto')),
        downtimeBudgetMs: opt(fc.integer({ min: 1, max: 3_600_000 })),
        deadline: opt(fc.constant(null).map(future)),
        maxRounds: opt(fc.integer({ min: 1, max: 100 })),
        transport: opt(fc.constantFrom('tcp', 'tls', 'ssh')),
        keepImages: opt(fc.boolean()),
      })
      .map(compact),
    required: ['workload'],
    wrong: {
      workload: [null, 1, '', long(65), {}, ['wl-1']],
      destination: [null, 2, '', long(64)],
      strategy: ['warp', 'STOP-AND-COPY', 1, null],
      downtimeBudgetMs: [0, -1, 1.5, '100', 3_600_001, null],
      deadline: ['tomorrow', 123, '2026-13-01T00:00:00Z', '2000-01-01T00:00:00Z'],
      maxRounds: [0, 101, 2.5, '3'],
      transport: ['udp', 'TLS', null, 1],
      keepImages: ['true', 1, null],
    },
  },
  'POST /workloads': {
    path: '/workloads',
    accepts: (b) => RegisterWorkload.safeParse(b).success,
    valid: fc
      .record({
        name: fc.string({ minLength: 1, maxLength: 120 }),
        node: fc.constant('node-a'),
        pid: fc.integer({ min: 1, max: 4_194_304 }),
        priority: opt(fc.integer({ min: 1, max: 10 })),
        dirtyRateBytesPerSec: opt(fc.integer({ min: 0, max: 2 ** 30 })),
        paths: opt(fc.constant(['/srv/data/app'])),
      })
      .map(compact),
    required: ['name', 'node', 'pid'],
    wrong: {
      name: ['', long(121), 1, null],
      node: ['', long(64), 7, null],
      pid: [0, -1, 1.5, '42', 4_194_305, null],
      pidfile: ['/run/app.pid'],
      kind: ['docker', 'podman', 1, null],
      container: ['web', '-web', '', 'a b', 7],
      priority: [0, 11, 2.5, '5'],
      dirtyRateBytesPerSec: [-1, '1', 101 * 2 ** 30],
      paths: ['/srv', ['relative/path'], [1], ['/'], Array.from({ length: 65 }, (_, i) => `/srv/${i}`)],
    },
  },
  'POST /nodes': {
    path: '/nodes',
    accepts: (b) => NodeSpec.strict().safeParse(b).success,
    valid: fc
      .record({
        id: fc.stringMatching(/^[a-z0-9][a-z0-9-]{0,20}$/),
        host: fc.constant('10.77.0.9'),
        hostKey: fc.constant(HOST_KEY),
        port: opt(fc.integer({ min: 1, max: 65535 })),
        user: opt(fc.constantFrom('root', 'spotlift')),
        lifecycle: opt(fc.constantFrom('spot', 'on-demand')),
        labels: opt(fc.dictionary(fc.string({ maxLength: 8 }), fc.string({ maxLength: 8 }), { maxKeys: 3 })),
      })
      .map(compact),
    required: ['id', 'host', 'hostKey'],
    wrong: {
      id: ['UPPER', '', '-x', 1, long(64)],
      host: ['', 1, null, long(254)],
      hostKey: ['nonsense', '', 1],
      port: [0, 65536, 22.5, '22'],
      user: ['', long(65)],
      lifecycle: ['reserved', null],
      labels: [{ a: 1 }, 'x', []],
      sharedStorage: [
        { group: 'g', paths: [] },
        { group: '', paths: ['/mnt'] },
        { group: 'g', paths: ['mnt'] },
      ],
      checkpointRoot: ['relative', '/with space'],
    },
  },
  'POST /notices': {
    path: '/notices',
    accepts: (b) => parseWebhookNotice(b).ok,
    valid: fc
      .record({
        nodeId: fc.constant('node-a'),
        kind: fc.constantFrom('termination', 'rebalance', 'maintenance', 'preemption'),
        secondsUntil: fc.integer({ min: 10, max: 3600 }),
        source: opt(fc.constantFrom('aws', 'gcp', 'azure', 'k8s', 'webhook')),
        reason: opt(fc.string({ maxLength: 50 })),
        action: opt(fc.string({ minLength: 1, maxLength: 20 })),
        eventId: opt(fc.string({ minLength: 1, maxLength: 20 })),
      })
      .map(compact),
    required: ['nodeId', 'kind', 'secondsUntil'],
    wrong: {
      nodeId: ['', '   ', 1, null, long(254)],
      kind: ['eviction', null, 1],
      secondsUntil: [-1, 'soon', 60 * 60 * 24 * 61, null],
      deadline: [future(), 'tomorrow', '2000-01-01T00:00:00Z'],
      source: ['aws2', 1],
      reason: [long(1001), 1],
      action: ['', long(101)],
      eventId: ['', long(201)],
    },
  },
  'POST /evacuations': {
    path: '/evacuations',
    // The deadline rules (not past, at most 60 days ahead) are the service's first step, before any record.
    accepts: (b) => {
      const r = ManualEvacuationBody.safeParse(b);
      if (!r.success) return false;
      try {
        manualNotice(r.data, new Date());
        return true;
      } catch {
        return false;
      }
    },
    valid: fc
      .record({
        node: fc.constant('node-a'),
        secondsUntil: fc.integer({ min: 10, max: 3600 }),
        reason: opt(fc.string({ maxLength: 50 })),
      })
      .map(compact),
    required: ['node', 'secondsUntil'],
    wrong: {
      node: ['', '   ', 1, null, long(254), ['node-a']],
      secondsUntil: [0, -1, 'soon', 60 * 60 * 24 * 61, null],
      deadline: [future(), 'tomorrow', '2000-01-01T00:00:00Z'],
      reason: [long(1001), 1],
    },
  },
  'POST /checkpoints': {
    path: '/checkpoints',
    accepts: (b) => CreateCheckpoint.safeParse(b).success,
    valid: fc
      .record({
        workload: fc.constant('wl-1'),
        storage: opt(fc.constant('node-c')),
        transport: opt(fc.constantFrom('tcp', 'tls', 'ssh')),
        mode: opt(fc.constantFrom('storage', 'forensic')),
      })
      .map(compact),
    required: ['workload'],
    wrong: {
      workload: ['', 1, long(65), null],
      storage: ['', long(64), 3, null],
      transport: ['udp', null],
      mode: ['guard', 'FORENSIC', 1, null],
    },
  },
  'POST /tokens': {
    path: '/tokens',
    // Whether the role needs a nodeId, and an expiry in the past, are the service's first checks.
    accepts: (b) => {
      const r = CreateToken.safeParse(b);
      if (!r.success) return false;
      const t = r.data;
      if ((t.role === 'agent') !== (t.nodeId !== undefined)) return false;
      return t.expiresAt === undefined || Date.parse(t.expiresAt) > Date.now();
    },
    valid: fc
      .oneof(
        fc.record({
          name: fc.stringMatching(/^[\w .:@/-]{1,40}$/),
          role: fc.constantFrom('viewer', 'operator', 'admin'),
          expiresAt: opt(fc.constant(null).map(future)),
        }),
        fc.record({
          name: fc.stringMatching(/^[\w .:@/-]{1,40}$/),
          role: fc.constant('agent'),
          nodeId: fc.constant('node-a'),
          expiresAt: opt(fc.constant(null).map(future)),
        }),
      )
      .map(compact),
    required: ['name', 'role'],
    wrong: {
      name: ['', long(121), 'semi;colon', 'new\nline', 1, null],
      role: ['root', 'Admin', 'agent ', null, 1],
      nodeId: ['', 'Node-A', '-x', long(64), 1, null],
      expiresAt: ['tomorrow', '2000-01-01T00:00:00Z', 123, null],
    },
  },
  'POST /checkpoints/:id/restore': {
    path: '/checkpoints/cp-1/restore',
    accepts: (b) => RestoreCheckpoint.safeParse(b).success,
    valid: fc.record({ destination: opt(fc.constant('node-b')) }).map(compact),
    required: [],
    wrong: { destination: ['', long(64), 1, null, ['node-b']] },
  },
};

/** A valid body with exactly one thing broken (as the text sent): a wrong value, a required field gone, a field nobody knows. */
function nearValid(e: Endpoint): fc.Arbitrary<{ raw: string; what: string }> {
  type Change = { how: string; apply: (b: Record<string, unknown>) => string };
  const wrongField: fc.Arbitrary<Change> = fc
    .constantFrom(...Object.entries(e.wrong).flatMap(([k, vs]) => vs.map((v) => [k, v] as const)))
    .map(([k, v]) => ({ how: `${k} = ${JSON.stringify(v)}`, apply: (b) => JSON.stringify({ ...b, [k]: v }) }));
  // Written as text so that `__proto__` arrives as a key, as JSON.parse on the server reads it.
  const unknownField: fc.Arbitrary<Change> = fc
    .tuple(fc.constantFrom('extra', 'Workload', 'destinaton', 'isAdmin', '__proto__', 'constructor'), json)
    .map(([k, v]) => ({
      how: `unknown field ${k}`,
      apply: (b) => {
        const rest = JSON.stringify(b).slice(1);
        return `{${JSON.stringify(k)}:${JSON.stringify(v)}${rest === '}' ? '' : ','}${rest}`;
      },
    }));
  const missing: fc.Arbitrary<Change> = e.required.length
    ? fc.constantFrom(...e.required).map((k) => ({
        how: `${k} missing`,
        apply: (b) => JSON.stringify(Object.fromEntries(Object.entries(b).filter(([x]) => x !== k))),
      }))
    : unknownField;
  return fc
    .tuple(e.valid, fc.oneof(wrongField, unknownField, missing))
    .map(([body, m]) => ({ raw: m.apply(body), what: m.how }));
}

// ---- properties ----------------------------------------------------------------------------------------------

describe('REST bodies under fuzzing: always a 4xx, never a 5xx, nothing changed', () => {
  const world = new World();
  let app: INestApplication;
  let base: string;

  beforeAll(async () => {
    Logger.overrideLogger(false);
    await world.seed();
    ({ app, base } = await startApp(world));
  });
  afterAll(async () => {
    await app.close();
  });

  const post = (path: string, raw: string) => send('POST', path, raw);
  const send = async (method: string, path: string, raw: string): Promise<{ status: number; text: string }> => {
    const res = await fetch(base + path, {
      method,
      headers: { 'content-type': 'application/json' },
      body: raw,
    });
    return { status: res.status, text: await res.text() };
  };

  /** Runs one property: every body gets a 4xx and the world is as it was. */
  const refusedUnchanged = async (path: string, arb: fc.Arbitrary<{ raw: string; what: string }>) => {
    const before = await world.snapshot();
    await fc.assert(
      fc.asyncProperty(arb, async ({ raw, what }) => {
        const res = await post(path, raw);
        if (res.status < 400 || res.status >= 500)
          throw new Error(
            `${path} answered ${res.status} to ${what}: ${raw.slice(0, 300)} -> ${res.text.slice(0, 300)}`,
          );
        const after = await world.snapshot();
        if (after !== before) throw new Error(`${path} changed state on ${what}: ${raw.slice(0, 300)}`);
      }),
      { numRuns: RUNS },
    );
  };

  it.each(Object.entries(ENDPOINTS))('%s: arbitrary JSON', async (_name, e) => {
    // `{}` is a valid restore body (placement chooses): what the endpoint accepts is not fuzz.
    const refused = anyJsonText.filter((raw) => !e.accepts(JSON.parse(raw)));
    await refusedUnchanged(
      e.path,
      refused.map((raw) => ({ raw, what: 'arbitrary JSON' })),
    );
  });

  it.each(Object.entries(ENDPOINTS))('%s: near-valid bodies (one thing broken)', async (_name, e) => {
    await refusedUnchanged(e.path, nearValid(e));
  });

  it.each(Object.entries(ENDPOINTS))('%s: text that is not JSON, sent as JSON', async (_name, e) => {
    const notJson = fc.string({ maxLength: 60 }).filter((s) => {
      if (s.trim() === '') return false; // an empty body reads as `{}`
      try {
        JSON.parse(s);
        return false;
      } catch {
        return true;
      }
    });
    await refusedUnchanged(
      e.path,
      notJson.map((raw) => ({ raw, what: 'not JSON' })),
    );
  });

  it('list query strings: 200 with an array or a 400, never a 5xx, nothing changed; the next-page header walks a list', async () => {
    const before = await world.snapshot();
    const lists = ['/nodes', '/workloads', '/migrations', '/evacuations', '/checkpoints'];
    const name = fc.constantFrom('limit', 'cursor', 'state', 'node', 'workload', 'since', 'until', 'sort', 'limit[]');
    const value = fc.oneof(
      fc.string({ maxLength: 20 }),
      fc.constantFrom('-1', '0', '1', '1000', '1001', 'abc', 'running', 'stored', 'node-a', '2026-12-01T00:00:00Z'),
    );
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(...lists),
        fc.array(fc.tuple(name, value), { maxLength: 4 }),
        async (path, q) => {
          const query = new URLSearchParams(q).toString();
          const res = await fetch(`${base}${path}?${query}`);
          const text = await res.text();
          if (res.status !== 200 && res.status !== 400) {
            throw new Error(`${path}?${query} answered ${res.status}: ${text.slice(0, 300)}`);
          }
          if (res.status === 200 && !Array.isArray(JSON.parse(text))) throw new Error(`${path}?${query}: not an array`);
        },
      ),
      { numRuns: RUNS },
    );
    expect(await world.snapshot()).toBe(before);
    for (const q of ['limit=-1', 'limit=1001', 'cursor=nope', 'state=exploded', 'state=running&state=gone']) {
      expect((await fetch(`${base}/migrations?${q}`)).status).toBe(400);
    }
    const seen: string[] = [];
    let cursor: string | null = null;
    do {
      const res: Response = await fetch(`${base}/nodes?limit=1${cursor ? `&cursor=${cursor}` : ''}`);
      seen.push(...((await res.json()) as NodeRecord[]).map((n) => n.id));
      cursor = res.headers.get('x-next-cursor');
    } while (cursor);
    expect(seen).toEqual(['node-a', 'node-b', 'node-c']);
  });

  it('ids in paths that name nothing, whatever the body: 404 (or 400 for the body) and nothing changed (cancel, restore, probe, clear-notice, drain, undrain, every DELETE)', async () => {
    const before = await world.snapshot();
    await fc.assert(
      fc.asyncProperty(
        fc.constantFrom(
          'POST /migrations/%/cancel',
          'POST /checkpoints/%/restore',
          'POST /nodes/%/probe',
          'POST /nodes/%/clear-notice',
          'POST /nodes/%/drain',
          'POST /nodes/%/undrain',
          'POST /workloads/%/refresh',
          'DELETE /nodes/%',
          'DELETE /workloads/%',
          'DELETE /checkpoints/%',
          'DELETE /tokens/%',
        ),
        fc
          .string({ minLength: 1, maxLength: 40 })
          .filter((s) => !['cp-1', 'wl-1', 'mig-done', 'node-a', 'node-b', 'node-c', '.', '..'].includes(s)),
        fc.oneof(fc.constant('{}'), anyJsonText),
        async (route, id, raw) => {
          const [method, template] = route.split(' ') as [string, string];
          // The restore body is validated before the lookup: only a valid one reaches the 404.
          const body = template.includes('restore') ? '{}' : raw;
          const res = await send(method, template.replace('%', encodeURIComponent(id)), body);
          // A body that is not an object may be refused first (400: the JSON parser takes objects and arrays).
          const refused = body === '{}' ? res.status === 404 : res.status >= 400 && res.status < 500;
          if (!refused)
            throw new Error(`${route} with id ${JSON.stringify(id)} and ${body}: ${res.status} ${res.text}`);
          if ((await world.snapshot()) !== before)
            throw new Error(`${route} with id ${JSON.stringify(id)} changed state`);
        },
      ),
      { numRuns: RUNS },
    );
  });

  it('POST /migrations/:id/cancel of an ended migration, whatever the body: 409 and nothing changed', async () => {
    await refusedUnchanged(
      '/migrations/mig-done/cancel',
      fc.oneof(fc.constant('{}'), anyJsonText).map((raw) => ({ raw, what: 'a cancel body' })),
    );
    expect((await post('/migrations/mig-done/cancel', '{}')).status).toBe(409);
  });

  it.each(Object.entries(ENDPOINTS))(
    '%s: the valid bodies near-valid ones start from are accepted (one step from accepted, not a strawman)',
    (_name, e) => {
      fc.assert(
        fc.property(e.valid, (body) => e.accepts(body)),
        { numRuns: RUNS },
      );
      // And the endpoint's validation refuses every near-valid body itself, not only something after it.
      fc.assert(
        fc.property(nearValid(e), ({ raw }) => !e.accepts(JSON.parse(raw))),
        { numRuns: RUNS },
      );
    },
  );
});
