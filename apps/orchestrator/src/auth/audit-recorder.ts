import type { AuditEntry } from '@spotlift/domain';
import type { AuditLog } from '@spotlift/store';
import type { Principal } from './access-policy.js';

/** Calls that change state; every one is audited, whatever its outcome. Refused calls are audited whatever the method. */
export const STATE_CHANGING = new Set(['POST', 'PUT', 'PATCH', 'DELETE']);

/** Body fields that name ids; nothing else of a body reaches the log (no bodies, no secrets). */
const BODY_ID_FIELDS = ['id', 'workload', 'destination', 'storage', 'nodeId', 'node'] as const;
/** What an id looks like; anything else (long, odd characters) is left out rather than logged. */
const ID = /^[A-Za-z0-9._:@-]{1,128}$/;

/** The request as far as the audit log reads it (an Express request fits). */
export interface AuditedRequest {
  method: string;
  path: string;
  route?: { path?: unknown };
  params?: Record<string, unknown>;
  body?: unknown;
  ip?: string;
  /** Ids a handler adds (e.g. the id of the token it created), set on the request by the handler. */
  auditTargets?: Record<string, string>;
}

export function auditTargets(req: AuditedRequest): Record<string, string> {
  const targets: Record<string, string> = {};
  const add = (key: string, value: unknown) => {
    if (typeof value === 'string' && ID.test(value)) targets[key] = value;
  };
  for (const [key, value] of Object.entries(req.params ?? {})) add(key, value);
  if (req.body && typeof req.body === 'object' && !Array.isArray(req.body)) {
    const body = req.body as Record<string, unknown>;
    for (const key of BODY_ID_FIELDS) add(key, body[key]);
  }
  for (const [key, value] of Object.entries(req.auditTargets ?? {})) add(key, value);
  return targets;
}

/** One audit entry, pure. */
export function auditEntry(
  req: AuditedRequest,
  status: number,
  at: Date,
  who: { principal?: Principal; tokenId?: string; denied?: string },
): AuditEntry {
  const p = who.principal;
  return {
    at: at.toISOString(),
    ...(p ? { tokenId: p.tokenId, tokenName: p.name, role: p.role } : who.tokenId ? { tokenId: who.tokenId } : {}),
    method: req.method,
    route: typeof req.route?.path === 'string' ? req.route.path : req.path,
    targets: auditTargets(req),
    status,
    ...(who.denied ? { denied: who.denied } : {}),
    ...(req.ip ? { remote: req.ip } : {}),
  };
}

/**
 * Refusals of callers without any valid token, per remote address and minute, that are recorded one by one;
 * beyond, one summary entry per address and minute says how many were not. Without this bound anyone who
 * can reach the port could push every real entry out of the capped log with a loop of bad tokens.
 */
export const ANONYMOUS_REFUSALS_PER_MINUTE = 60;
const WINDOW_MS = 60_000;
const MAX_TRACKED = 10_000;

/**
 * Writes audit entries once the response is over (its final status, whichever filter wrote it). A failed
 * write is logged and never fails the call: the audit log is a record, not a gate.
 */
export class AuditRecorder {
  private readonly anonymous = new Map<string, { windowStart: number; count: number }>();

  constructor(
    private readonly log: AuditLog,
    private readonly warn: (msg: object) => void,
    private readonly now: () => Date = () => new Date(),
  ) {}

  /** Records when `res` closes ('close' fires also for a caller that hung up: the call may have acted). */
  recordWhenDone(
    req: AuditedRequest,
    res: { once(event: 'close', cb: () => void): unknown; statusCode: number },
    who: { principal?: Principal; tokenId?: string; denied?: string },
  ): void {
    res.once('close', () => {
      const at = this.now();
      if (!who.principal && !who.tokenId && !this.admitAnonymous(req.ip ?? '-', at)) return;
      this.record(auditEntry(req, res.statusCode, at, who));
    });
  }

  /** Whether this anonymous refusal is recorded; writes the summary of the previous window when one ends. */
  private admitAnonymous(remote: string, at: Date): boolean {
    const t = at.getTime();
    const seen = this.anonymous.get(remote);
    if (!seen || t - seen.windowStart >= WINDOW_MS) {
      if (seen && seen.count > ANONYMOUS_REFUSALS_PER_MINUTE) this.summarise(remote, seen, at);
      if (!seen && this.anonymous.size >= MAX_TRACKED) this.anonymous.clear();
      this.anonymous.set(remote, { windowStart: t, count: 1 });
      return true;
    }
    seen.count++;
    return seen.count <= ANONYMOUS_REFUSALS_PER_MINUTE;
  }

  private summarise(remote: string, seen: { windowStart: number; count: number }, at: Date): void {
    this.record({
      at: at.toISOString(),
      method: '*',
      route: '*',
      targets: {},
      status: 401,
      denied: `${seen.count - ANONYMOUS_REFUSALS_PER_MINUTE} more refusals without a valid token from ${remote} in the minute from ${new Date(seen.windowStart).toISOString()} not recorded one by one`,
      remote,
    });
  }

  record(entry: AuditEntry): void {
    this.log.append(entry).catch((error: Error) => {
      this.warn({ msg: 'audit entry not written', error: error.message, entry });
    });
  }
}
