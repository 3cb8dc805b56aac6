import { SetMetadata } from '@nestjs/common';
import type { RequiredRole, RouteAccess } from './access-policy.js';

export const ACCESS = 'spotlift:access';
export const PUBLIC = 'spotlift:public';

/** Marks a route that needs no token (health probes). */
export const Public = () => SetMetadata(PUBLIC, true);

/**
 * The role a route needs (the guard checks it; routes without one need admin). `agentNode` opens the route to
 * `agent` tokens, for the node id it reads from the request only.
 */
export const RequireRole = (role: RequiredRole, opts: Omit<RouteAccess, 'role'> = {}) =>
  SetMetadata(ACCESS, { role, ...opts } satisfies RouteAccess);
