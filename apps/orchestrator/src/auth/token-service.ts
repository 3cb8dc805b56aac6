import { z } from 'zod';
import { type ApiTokenRecord, BadRequestError, NotFoundError } from '@spotlift/domain';
import { TOKEN_INDEX, type Page, type PageQuery, type TokenRepository, pageOf } from '@spotlift/store';
import type { Principal } from './access-policy.js';
import { bootstrapMatches, newToken, parseToken, secretMatches, sha256 } from './token-secrets.js';

/**
 * How long a token lookup is reused in memory: a revoked token keeps working on another replica for at most
 * this long (on the replica that revoked it, not at all: it drops its cache entry). Unknown ids are cached too,
 * so guessed tokens cost one Redis read per id per period.
 */
export const TOKEN_CACHE_MS = 2_000;
/** Cache entries at most; beyond, the cache starts over (a flood of guessed ids cannot grow memory). */
const CACHE_MAX = 10_000;

/** The bootstrap token (SPOTLIFT_API_TOKEN): admin, for the demo, the tests and creating the first tokens. */
export const BOOTSTRAP: Principal = { tokenId: 'bootstrap', name: 'SPOTLIFT_API_TOKEN', role: 'admin' };

const NodeId = z.string().regex(/^[a-z0-9][a-z0-9-]{0,62}$/, 'lower-case letters, digits and dashes, at most 63');
export const CreateToken = z
  .object({
    name: z
      .string()
      .min(1)
      .max(120)
      .regex(/^[\w .:@/-]+$/, 'letters, digits, spaces and . _ : @ / -'),
    role: z.enum(['viewer', 'operator', 'admin', 'agent']),
    nodeId: NodeId.optional().describe('required for (and only for) agent tokens: the one node it speaks for'),
    expiresAt: z.iso.datetime({ offset: true }).optional(),
  })
  .strict();
export type CreateToken = z.infer<typeof CreateToken>;

/** A token as listed: everything but the digest. */
export type TokenView = Omit<ApiTokenRecord, 'secretSha256'>;

export type Authentication =
  | { ok: true; principal: Principal }
  | {
      ok: false;
      reason: string;
      /** set when the secret was right but the token is revoked or expired */ tokenId?: string;
    };

function view(record: ApiTokenRecord): TokenView {
  const { secretSha256: _secret, ...rest } = record;
  return rest;
}

/** Verifies presented tokens (bootstrap or stored) and manages stored ones. No Nest: unit-tested with fakes. */
export class TokenService {
  private readonly bootstrap: Buffer;
  private readonly cache = new Map<string, { record: ApiTokenRecord | undefined; until: number }>();

  constructor(
    private readonly repo: TokenRepository,
    bootstrapToken: string,
    private readonly now: () => number = Date.now,
    private readonly cacheMs = TOKEN_CACHE_MS,
  ) {
    this.bootstrap = sha256(bootstrapToken);
  }

  async authenticate(authorization: string | undefined): Promise<Authentication> {
    if (!authorization) return { ok: false, reason: 'no bearer token' };
    const bearer = /^bearer +(\S+) *$/i.exec(authorization); // the scheme is case-insensitive (RFC 9110)
    if (!bearer) return { ok: false, reason: 'not a bearer token' };
    const presented = bearer[1]!;
    if (bootstrapMatches(presented, this.bootstrap)) return { ok: true, principal: BOOTSTRAP };
    const parsed = parseToken(presented);
    if (!parsed) return { ok: false, reason: 'unknown token' };
    const record = await this.lookup(parsed.id);
    // Unknown id and wrong secret get the same answer: the caller learns nothing about which ids exist.
    if (!record || !secretMatches(parsed.secret, record.secretSha256)) return { ok: false, reason: 'unknown token' };
    if (record.revokedAt) return { ok: false, reason: `token revoked at ${record.revokedAt}`, tokenId: record.id };
    if (record.expiresAt && Date.parse(record.expiresAt) <= this.now()) {
      return { ok: false, reason: `token expired at ${record.expiresAt}`, tokenId: record.id };
    }
    return {
      ok: true,
      principal: {
        tokenId: record.id,
        name: record.name,
        role: record.role,
        ...(record.nodeId ? { nodeId: record.nodeId } : {}),
      },
    };
  }

  private async lookup(id: string): Promise<ApiTokenRecord | undefined> {
    const now = this.now();
    const hit = this.cache.get(id);
    if (hit && hit.until > now) return hit.record;
    const record = await this.repo.get(id);
    if (this.cache.size >= CACHE_MAX) this.cache.clear();
    this.cache.set(id, { record, until: now + this.cacheMs });
    return record;
  }

  /** Creates a token; the returned `token` string is the only time its secret exists outside the caller. */
  async create(input: CreateToken, by: Principal): Promise<TokenView & { token: string }> {
    if (input.role === 'agent' && !input.nodeId) {
      throw new BadRequestError('an agent token needs the nodeId it speaks for');
    }
    if (input.role !== 'agent' && input.nodeId) {
      throw new BadRequestError(`nodeId is for agent tokens only; a '${input.role}' token is not scoped to a node`);
    }
    if (input.expiresAt && Date.parse(input.expiresAt) <= this.now()) {
      throw new BadRequestError(`expiresAt ${input.expiresAt} is in the past`);
    }
    const { id, token, secretSha256 } = newToken();
    const record: ApiTokenRecord = {
      id,
      name: input.name,
      role: input.role,
      ...(input.nodeId ? { nodeId: input.nodeId } : {}),
      createdAt: new Date(this.now()).toISOString(),
      ...(input.expiresAt ? { expiresAt: new Date(input.expiresAt).toISOString() } : {}),
      createdBy: by.tokenId,
      secretSha256,
    };
    await this.repo.create(record);
    this.cache.delete(id); // a cached "unknown" for this id must not outlive its creation
    return { ...view(record), token };
  }

  async list(): Promise<TokenView[]> {
    return (await this.repo.list()).map(view);
  }

  /** One page of tokens; read whole from Redis (tokens are made by hand: a few hundred at most). */
  async page(query: PageQuery): Promise<Page<TokenView>> {
    const page = pageOf(await this.repo.list(), query, TOKEN_INDEX);
    return { ...page, items: page.items.map(view) };
  }

  /** Revokes a token: on this replica at once, on the others within TOKEN_CACHE_MS. Idempotent. */
  async revoke(id: string): Promise<TokenView> {
    const revoked = await this.repo.revoke(id, new Date(this.now()).toISOString());
    this.cache.delete(id);
    if (!revoked) throw new NotFoundError('token', id);
    return view(revoked);
  }
}
