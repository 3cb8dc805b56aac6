/**
 * The access rules, pure (no Nest, no I/O) so the whole role table is unit-tested without an app:
 * which role a route needs, and whether a caller's token has it.
 */
import type { Role } from '@spotlift/domain';

/** The roles a route can require; they nest: admin > operator > viewer. */
export type RequiredRole = Exclude<Role, 'agent'>;
const RANK: Record<RequiredRole, number> = { viewer: 1, operator: 2, admin: 3 };

/** What a route declares (the `RequireRole` decorator). */
export interface RouteAccess {
  role: RequiredRole;
  /**
   * Where the node id an `agent` token may act for sits in the request; routes without it are closed to
   * agents. Only `POST /notices` has one (the body's `nodeId`).
   */
  agentNode?: (request: { body?: unknown; params?: Record<string, unknown> }) => unknown;
  /** Audit every call, reads too: routes that show what a workload holds (a checkpoint's memory, files). */
  audited?: boolean;
}

/** Routes that declare nothing need admin: a route added without a decorator is closed, not open. */
export const UNDECLARED: RouteAccess = { role: 'admin' };

/** The caller, once its token is verified. */
export interface Principal {
  tokenId: string;
  name: string;
  role: Role;
  /** For `agent` tokens: the one node they speak for. */
  nodeId?: string;
}

export type Decision = { ok: true } | { ok: false; message: string };

export function decide(
  principal: Principal,
  access: RouteAccess | undefined,
  request: { body?: unknown; params?: Record<string, unknown> },
): Decision {
  const route = access ?? UNDECLARED;
  if (principal.role === 'agent') {
    if (!route.agentNode) {
      return {
        ok: false,
        message: `this call needs the '${route.role}' role; token '${principal.name}' is an agent token (it may only push notices for node '${principal.nodeId}')`,
      };
    }
    const nodeId = route.agentNode(request);
    if (typeof nodeId === 'string' && principal.nodeId !== undefined && nodeId === principal.nodeId)
      return { ok: true };
    return {
      ok: false,
      message: `agent token '${principal.name}' may act for node '${principal.nodeId}' only, not for ${typeof nodeId === 'string' ? `'${nodeId.slice(0, 64)}'` : 'a request without a node id'}`,
    };
  }
  if (RANK[principal.role] >= RANK[route.role]) return { ok: true };
  return {
    ok: false,
    message: `this call needs the '${route.role}' role; token '${principal.name}' has '${principal.role}'`,
  };
}

/** The body's `nodeId`, for routes agents may call for their own node. */
export function bodyNodeId(request: { body?: unknown }): unknown {
  const body = request.body;
  return body && typeof body === 'object' ? (body as { nodeId?: unknown }).nodeId : undefined;
}
