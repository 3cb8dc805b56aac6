/**
 * The guard itself, without an app: a real Reflector reading the real decorators of a small controller, the
 * token service on an in-memory store, the audit log in memory. 401 vs 403, the agent's node check on the body,
 * and which calls reach the audit log.
 */
import 'reflect-metadata';
import {
  Controller,
  type ExecutionContext,
  ForbiddenException,
  Get,
  Post,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { EventEmitter } from 'node:events';
import type { NodeRecord } from '@spotlift/domain';
import { InMemoryAuditLog, InMemoryRecords, InMemoryTokenRepository, type NodeRepository } from '@spotlift/store';
import { bodyNodeId } from '../auth/access-policy.js';
import { AuditRecorder } from '../auth/audit-recorder.js';
import { Public, RequireRole } from '../auth/roles.decorator.js';
import { BOOTSTRAP, TokenService } from '../auth/token-service.js';
import { AuthGuard } from './auth.guard.js';

@Controller('things')
class ThingsController {
  @Get()
  @RequireRole('viewer')
  list(): void {}

  @Post()
  @RequireRole('operator', { agentNode: bodyNodeId })
  push(): void {}

  @Post('undeclared')
  undeclared(): void {}

  @Get('health')
  @Public()
  health(): void {}

  @Get('memory')
  @RequireRole('admin', { audited: true })
  memory(): void {}
}

const BOOT = 'bootstrap-token-0123456789abcdef';

function setup() {
  const log = new InMemoryAuditLog();
  const tokens = new TokenService(new InMemoryTokenRepository(), BOOT);
  const nodes = new InMemoryRecords<NodeRecord>() as unknown as NodeRepository;
  const guard = new AuthGuard(tokens, new AuditRecorder(log, () => undefined), new Reflector(), nodes);
  const closed: EventEmitter[] = [];
  const run = async (handler: keyof ThingsController, method: string, token?: string, body?: unknown) => {
    const req = {
      method,
      path: '/things',
      route: { path: '/things' },
      headers: token ? { authorization: `Bearer ${token}` } : {},
      body,
      params: {},
    };
    const res = Object.assign(new EventEmitter(), { statusCode: 200 });
    closed.push(res);
    const context = {
      getHandler: () => ThingsController.prototype[handler],
      getClass: () => ThingsController,
      switchToHttp: () => ({ getRequest: () => req, getResponse: () => res }),
    } as unknown as ExecutionContext;
    try {
      const ok = await guard.canActivate(context);
      res.emit('close');
      return { ok, req };
    } catch (error) {
      res.statusCode = error instanceof UnauthorizedException ? 401 : error instanceof ForbiddenException ? 403 : 500;
      res.emit('close');
      return { ok: false, error: error as Error, req };
    }
  };
  return { log, tokens, run, nodes };
}

describe('AuthGuard', () => {
  it('lets public routes through without a token and records nothing', async () => {
    const { run, log } = setup();
    expect((await run('health', 'GET')).ok).toBe(true);
    expect(log.entries).toEqual([]);
  });

  it('401 without a valid token, 403 without the role; both audited', async () => {
    const { run, log, tokens } = setup();
    const noToken = await run('list', 'GET');
    expect(noToken.error).toBeInstanceOf(UnauthorizedException);
    const viewer = await tokens.create({ name: 'grafana', role: 'viewer' }, BOOTSTRAP);
    expect((await run('list', 'GET', viewer.token)).ok).toBe(true);
    const push = await run('push', 'POST', viewer.token, { nodeId: 'node-a' });
    expect(push.error).toBeInstanceOf(ForbiddenException);
    expect(push.error?.message).toBe("this call needs the 'operator' role; token 'grafana' has 'viewer'");
    expect(log.entries.map((e) => [e.method, e.status, e.tokenName ?? null])).toEqual([
      ['POST', 403, 'grafana'],
      ['GET', 401, null],
    ]);
  });

  it('an agent passes for its own node only; the principal is on the request', async () => {
    const { run, tokens, log } = setup();
    const agent = await tokens.create({ name: 'agent-a', role: 'agent', nodeId: 'node-a' }, BOOTSTRAP);
    const own = await run('push', 'POST', agent.token, { nodeId: 'node-a' });
    expect(own.ok).toBe(true);
    expect((own.req as { principal?: unknown }).principal).toMatchObject({ role: 'agent', nodeId: 'node-a' });
    expect((await run('push', 'POST', agent.token, { nodeId: 'node-b' })).error).toBeInstanceOf(ForbiddenException);
    expect((await run('list', 'GET', agent.token)).error).toBeInstanceOf(ForbiddenException);
    expect(log.entries.map((e) => [e.method, e.status, e.targets.nodeId ?? null])).toEqual([
      ['GET', 403, null],
      ['POST', 403, 'node-b'],
      ['POST', 200, 'node-a'],
    ]);
  });

  it('refuses the agent of a fenced node (confirmed lost), audited; an operator still passes', async () => {
    const { run, tokens, log, nodes } = setup();
    const agent = await tokens.create({ name: 'agent-a', role: 'agent', nodeId: 'node-a' }, BOOTSTRAP);
    const op = await tokens.create({ name: 'op', role: 'operator' }, BOOTSTRAP);
    await nodes.save({ id: 'node-a', fence: { at: '2026-12-07T00:00:00.000Z', reason: 'lost' } } as NodeRecord);
    const refused = await run('push', 'POST', agent.token, { nodeId: 'node-a' });
    expect(refused.error).toBeInstanceOf(ForbiddenException);
    expect(refused.error!.message).toBe("node 'node-a' is fenced (confirmed lost); its agent tokens are refused");
    expect((await run('push', 'POST', op.token, { nodeId: 'node-a' })).ok).toBe(true);
    expect(log.entries.map((e) => [e.method, e.status, e.denied ?? null])).toEqual([
      ['POST', 200, null],
      ['POST', 403, "node 'node-a' is fenced (confirmed lost); its agent tokens are refused"],
    ]);
  });

  it('closes undeclared routes to everyone but admins', async () => {
    const { run, tokens } = setup();
    const op = await tokens.create({ name: 'oncall', role: 'operator' }, BOOTSTRAP);
    expect((await run('undeclared', 'POST', op.token)).error?.message).toMatch(/needs the 'admin' role/);
    expect((await run('undeclared', 'POST', BOOT)).ok).toBe(true);
  });

  it('audits state-changing calls, not successful reads', async () => {
    const { run, log } = setup();
    await run('list', 'GET', BOOT);
    await run('push', 'POST', BOOT, { nodeId: 'node-c' });
    expect(log.entries.map((e) => [e.method, e.tokenId])).toEqual([['POST', 'bootstrap']]);
  });

  it('audits successful reads of routes that ask for it (a checkpoint’s memory), and their refusals', async () => {
    const { run, log, tokens } = setup();
    const viewer = await tokens.create({ name: 'grafana', role: 'viewer' }, BOOTSTRAP);
    await run('memory', 'GET', BOOT);
    await run('memory', 'GET', viewer.token);
    // newest first
    expect(log.entries.map((e) => [e.method, e.status, e.tokenName])).toEqual([
      ['GET', 403, 'grafana'],
      ['GET', 200, 'SPOTLIFT_API_TOKEN'],
    ]);
  });
});
