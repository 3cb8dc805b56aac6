/**
 * The role table as the controllers declare it (read from their decorators, so a route that loses or changes
 * its decorator fails here), and the decision for every role on every kind of route.
 */
import 'reflect-metadata';
import { RequestMethod, type Type } from '@nestjs/common';
import { CheckpointsController } from '../checkpoints/checkpoints.controller.js';
import { EvacuationsController } from '../evacuations/evacuations.controller.js';
import { EventsController } from '../events/events.controller.js';
import { UiController } from '../events/ui.controller.js';
import { HealthController } from '../health/health.controller.js';
import { MetricsController } from '../metrics/metrics.controller.js';
import { MigrationsController } from '../migrations/migrations.controller.js';
import { NodesController } from '../nodes/nodes.controller.js';
import { NoticesController } from '../notices/notices.controller.js';
import { WorkloadsController } from '../workloads/workloads.controller.js';
import { bodyNodeId, decide, type Principal, type RouteAccess, UNDECLARED } from './access-policy.js';
import { ACCESS, PUBLIC } from './roles.decorator.js';
import { AuditController, TokensController } from './tokens.controller.js';

const CONTROLLERS: Type[] = [
  HealthController,
  NodesController,
  WorkloadsController,
  MigrationsController,
  MetricsController,
  NoticesController,
  EvacuationsController,
  CheckpointsController,
  TokensController,
  AuditController,
  EventsController,
  UiController,
];

/** `METHOD /path` -> the role it needs ('public', 'admin*' for undeclared routes, '+agent' when agents may call it). */
function roleTable(): Record<string, string> {
  const table: Record<string, string> = {};
  for (const controller of CONTROLLERS) {
    const base = String(Reflect.getMetadata('path', controller) ?? '');
    const proto = controller.prototype as Record<string, unknown>;
    for (const name of Object.getOwnPropertyNames(proto)) {
      const handler = proto[name];
      if (name === 'constructor' || typeof handler !== 'function') continue;
      const method = Reflect.getMetadata('method', handler) as RequestMethod | undefined;
      if (method === undefined) continue;
      const sub = String(Reflect.getMetadata('path', handler) ?? '/');
      const path = `/${base}${sub === '/' ? '' : `/${sub}`}`.replace(/\/+/g, '/');
      const key = `${RequestMethod[method]} ${path}`;
      const isPublic = Reflect.getMetadata(PUBLIC, handler) ?? Reflect.getMetadata(PUBLIC, controller);
      const access = Reflect.getMetadata(ACCESS, handler) as RouteAccess | undefined;
      table[key] = isPublic ? 'public' : access ? access.role + (access.agentNode ? '+agent' : '') : 'admin*';
    }
  }
  return table;
}

describe('the role table', () => {
  it('is what the README documents: reads for viewers, moves for operators, fleet and access for admins', () => {
    expect(roleTable()).toEqual({
      'GET /health/live': 'public',
      'GET /health/ready': 'public',
      'GET /nodes': 'viewer',
      'GET /nodes/:id': 'viewer',
      'GET /nodes/:id/trials': 'viewer',
      'POST /nodes': 'admin',
      'POST /nodes/:id/probe': 'admin',
      'POST /nodes/:id/clear-notice': 'admin',
      'POST /nodes/:id/drain': 'operator',
      'POST /nodes/:id/lost': 'operator',
      'POST /nodes/:id/undrain': 'operator',
      'DELETE /nodes/:id/releasable': 'operator',
      'DELETE /nodes/:id': 'admin',
      'GET /workloads': 'viewer',
      'GET /workloads/:id': 'viewer',
      'GET /workloads/:id/guard': 'viewer',
      'PUT /workloads/:id/guard': 'operator',
      'DELETE /workloads/:id/guard': 'operator',
      'POST /workloads': 'operator',
      'POST /workloads/:id/refresh': 'operator',
      'DELETE /workloads/:id': 'operator',
      'POST /migrations': 'operator',
      'GET /migrations': 'viewer',
      'GET /migrations/:id': 'viewer',
      'POST /migrations/:id/cancel': 'operator',
      'GET /metrics': 'viewer',
      'POST /notices': 'operator+agent',
      'POST /evacuations': 'operator',
      'GET /evacuations': 'viewer',
      'GET /evacuations/:id': 'viewer',
      'POST /checkpoints': 'operator',
      'GET /checkpoints': 'viewer',
      'GET /checkpoints/:id': 'viewer',
      'POST /checkpoints/:id/restore': 'operator',
      'GET /checkpoints/:id/inspect': 'admin',
      'POST /checkpoints/:id/search': 'admin',
      'GET /checkpoints/:id/export': 'admin',
      'DELETE /checkpoints/:id': 'admin',
      'POST /tokens': 'admin',
      'GET /tokens': 'admin',
      'DELETE /tokens/:id': 'admin',
      'GET /audit': 'admin',
      'GET /events': 'viewer',
      // The dashboard's static files; the data it shows needs a viewer token (GET /events and the reads).
      'GET /ui': 'public',
      'GET /ui/:file': 'public',
    });
  });

  it('declares a role on every route but the health probes and the dashboard files (undeclared would mean admin only)', () => {
    const undeclared = Object.entries(roleTable()).filter(([, role]) => role === 'admin*');
    expect(undeclared).toEqual([]);
  });
});

const viewer: Principal = { tokenId: 't1', name: 'grafana', role: 'viewer' };
const operator: Principal = { tokenId: 't2', name: 'oncall', role: 'operator' };
const admin: Principal = { tokenId: 't3', name: 'root', role: 'admin' };
const agentA: Principal = { tokenId: 't4', name: 'agent-a', role: 'agent', nodeId: 'node-a' };

const read: RouteAccess = { role: 'viewer' };
const move: RouteAccess = { role: 'operator' };
const fleet: RouteAccess = { role: 'admin' };
const notices: RouteAccess = { role: 'operator', agentNode: bodyNodeId };

describe('decide', () => {
  it.each([
    [viewer, [true, false, false]],
    [operator, [true, true, false]],
    [admin, [true, true, true]],
    [agentA, [false, false, false]],
  ] as const)('%o: read, move, fleet', (who, expected) => {
    expect([read, move, fleet].map((route) => decide(who, route, {}).ok)).toEqual(expected);
  });

  it('names the role needed and the role held', () => {
    expect(decide(viewer, move, {})).toEqual({
      ok: false,
      message: "this call needs the 'operator' role; token 'grafana' has 'viewer'",
    });
    const agent = decide(agentA, read, {});
    expect(agent.ok).toBe(false);
    expect(!agent.ok && agent.message).toMatch(/needs the 'viewer' role.*agent token.*node 'node-a'/);
  });

  it('lets an agent push notices for its own node only', () => {
    expect(decide(agentA, notices, { body: { nodeId: 'node-a', kind: 'termination' } }).ok).toBe(true);
    for (const body of [{ nodeId: 'node-b' }, { nodeId: 'node-a ' }, { nodeId: ['node-a'] }, {}, 'node-a', null]) {
      const d = decide(agentA, notices, { body });
      expect(d.ok).toBe(false);
      expect(!d.ok && d.message).toMatch(/may act for node 'node-a' only/);
    }
    // an agent token without a node (cannot be created, but the rule must not open on it)
    expect(decide({ ...agentA, nodeId: undefined }, notices, { body: {} }).ok).toBe(false);
    // everyone else by role
    expect(decide(operator, notices, { body: { nodeId: 'node-b' } }).ok).toBe(true);
    expect(decide(viewer, notices, { body: { nodeId: 'node-b' } }).ok).toBe(false);
  });

  it('treats an undeclared route as admin only', () => {
    expect(decide(operator, undefined, {}).ok).toBe(false);
    expect(decide(admin, undefined, {}).ok).toBe(true);
    expect(UNDECLARED.role).toBe('admin');
  });
});
