import {
  type CanActivate,
  type ExecutionContext,
  ForbiddenException,
  Injectable,
  Optional,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import type { Request, Response } from 'express';
import { NodeRepository } from '@spotlift/store';
import { decide, type Principal, type RouteAccess } from '../auth/access-policy.js';
import { AuditRecorder, type AuditedRequest, STATE_CHANGING } from '../auth/audit-recorder.js';
import { ACCESS, PUBLIC } from '../auth/roles.decorator.js';
import { TokenService } from '../auth/token-service.js';

export { Public } from '../auth/roles.decorator.js';

/** A request once the guard let it through: who called. */
export type AuthenticatedRequest = Request & AuditedRequest & { principal?: Principal };

/**
 * Every route but the public ones: a valid token (401 otherwise), then the role the route declares (403
 * otherwise, naming the role needed); agent tokens only for their own node, never a fenced one. Refused calls and every
 * state-changing call go to the audit log with their final status.
 */
@Injectable()
export class AuthGuard implements CanActivate {
  constructor(
    private readonly tokens: TokenService,
    private readonly audit: AuditRecorder,
    private readonly reflector: Reflector,
    @Optional() private readonly nodes?: NodeRepository,
  ) {}

  async canActivate(context: ExecutionContext): Promise<boolean> {
    const targets = [context.getHandler(), context.getClass()];
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, targets)) return true;
    const req = context.switchToHttp().getRequest<AuthenticatedRequest>();
    const res = context.switchToHttp().getResponse<Response>();
    const auth = await this.tokens.authenticate(req.headers.authorization);
    if (!auth.ok) {
      this.audit.recordWhenDone(req, res, { denied: auth.reason, ...(auth.tokenId ? { tokenId: auth.tokenId } : {}) });
      throw new UnauthorizedException(`a valid bearer token is required (${auth.reason})`);
    }
    const access = this.reflector.getAllAndOverride<RouteAccess>(ACCESS, targets);
    const decision = decide(auth.principal, access, req);
    if (!decision.ok) {
      this.audit.recordWhenDone(req, res, { principal: auth.principal, denied: decision.message });
      throw new ForbiddenException(decision.message);
    }
    // A fenced node (lost, its workloads restored elsewhere) no longer speaks: its agent's notices would
    // act on records that are not its own any more.
    const own = auth.principal.role === 'agent' ? auth.principal.nodeId : undefined;
    if (own && (await this.nodes?.get(own))?.fence) {
      const denied = `node '${own}' is fenced (confirmed lost); its agent tokens are refused`;
      this.audit.recordWhenDone(req, res, { principal: auth.principal, denied });
      throw new ForbiddenException(denied);
    }
    req.principal = auth.principal;
    if (STATE_CHANGING.has(req.method) || access?.audited)
      this.audit.recordWhenDone(req, res, { principal: auth.principal });
    return true;
  }
}
