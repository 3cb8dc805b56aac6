/**
 * The token service with an in-memory store and a hand-moved clock (no timers): formats, hashing, roles,
 * revocation and expiry, and the bound on how long a cached token outlives its revocation on another replica.
 */
import { InMemoryTokenRepository } from '@spotlift/store';
import { BOOTSTRAP, TOKEN_CACHE_MS, TokenService } from './token-service.js';
import { bootstrapMatches, parseToken, sha256 } from './token-secrets.js';

const BOOT = 'bootstrap-token-0123456789abcdef';
const bearer = (t: string) => `Bearer ${t}`;

function setup() {
  let now = Date.parse('2026-12-06T12:00:00Z');
  const repo = new InMemoryTokenRepository();
  const clock = { now: () => now, advance: (ms: number) => (now += ms) };
  // two replicas sharing one store, each with its own cache
  const a = new TokenService(repo, BOOT, clock.now);
  const b = new TokenService(repo, BOOT, clock.now);
  return { repo, clock, a, b };
}

describe('TokenService', () => {
  it('accepts the bootstrap token as admin, and nothing near it', async () => {
    const { a } = setup();
    expect(await a.authenticate(bearer(BOOT))).toEqual({ ok: true, principal: BOOTSTRAP });
    for (const wrong of [BOOT.slice(0, -1), BOOT + 'x', BOOT.toUpperCase(), '', 'x']) {
      expect((await a.authenticate(bearer(wrong))).ok).toBe(false);
    }
    expect(await a.authenticate(undefined)).toEqual({ ok: false, reason: 'no bearer token' });
    expect(await a.authenticate(`Basic ${BOOT}`)).toEqual({ ok: false, reason: 'not a bearer token' });
    expect(await a.authenticate(`Bearer ${BOOT} extra`)).toEqual({ ok: false, reason: 'not a bearer token' });
    expect((await a.authenticate(`bearer ${BOOT}`)).ok).toBe(true);
  });

  it('compares the bootstrap token as two 32-byte digests, whatever the presented length', () => {
    const digest = sha256(BOOT);
    expect(digest).toHaveLength(32);
    expect(bootstrapMatches(BOOT, digest)).toBe(true);
    // a shorter or much longer guess is compared, not refused on length (which would leak the length)
    expect(bootstrapMatches('a', digest)).toBe(false);
    expect(bootstrapMatches('a'.repeat(10_000), digest)).toBe(false);
  });

  it('creates spl_<id>_<secret> tokens, stores only the secret digest, lists without it', async () => {
    const { a, repo } = setup();
    const created = await a.create({ name: 'grafana', role: 'viewer' }, BOOTSTRAP);
    const parsed = parseToken(created.token);
    expect(parsed?.id).toBe(created.id);
    expect(parsed!.secret).toHaveLength(43);
    const stored = await repo.get(created.id);
    expect(stored?.secretSha256).toBe(sha256(parsed!.secret).toString('hex'));
    expect(JSON.stringify(stored)).not.toContain(parsed!.secret);
    expect(stored).toMatchObject({ name: 'grafana', role: 'viewer', createdBy: 'bootstrap' });
    const listed = await a.list();
    expect(listed).toHaveLength(1);
    expect(listed[0]).not.toHaveProperty('secretSha256');
    expect(listed[0]).not.toHaveProperty('token');
    expect(await a.authenticate(bearer(created.token))).toEqual({
      ok: true,
      principal: { tokenId: created.id, name: 'grafana', role: 'viewer' },
    });
  });

  it('answers a wrong secret for a real id like an unknown token', async () => {
    const { a } = setup();
    const created = await a.create({ name: 'x', role: 'operator' }, BOOTSTRAP);
    const forged = `spl_${created.id}_${'A'.repeat(43)}`;
    expect(await a.authenticate(bearer(forged))).toEqual({ ok: false, reason: 'unknown token' });
    expect(await a.authenticate(bearer(`spl_000000000000_${'A'.repeat(43)}`))).toEqual({
      ok: false,
      reason: 'unknown token',
    });
  });

  it('scopes agent tokens to one node, and only agent tokens', async () => {
    const { a } = setup();
    await expect(a.create({ name: 'agent', role: 'agent' }, BOOTSTRAP)).rejects.toThrow(/needs the nodeId/);
    await expect(a.create({ name: 'op', role: 'operator', nodeId: 'node-a' }, BOOTSTRAP)).rejects.toThrow(
      /agent tokens only/,
    );
    const agent = await a.create({ name: 'agent-a', role: 'agent', nodeId: 'node-a' }, BOOTSTRAP);
    const auth = await a.authenticate(bearer(agent.token));
    expect(auth.ok && auth.principal).toEqual({ tokenId: agent.id, name: 'agent-a', role: 'agent', nodeId: 'node-a' });
  });

  it('revokes at once on the revoking replica, and within TOKEN_CACHE_MS on the others', async () => {
    const { a, b, clock } = setup();
    const t = await a.create({ name: 'ci', role: 'operator' }, BOOTSTRAP);
    expect((await b.authenticate(bearer(t.token))).ok).toBe(true); // b caches it
    const revoked = await a.revoke(t.id);
    expect(revoked.revokedAt).toBeDefined();
    expect(await a.authenticate(bearer(t.token))).toMatchObject({ ok: false, reason: /revoked/, tokenId: t.id });
    expect((await b.authenticate(bearer(t.token))).ok).toBe(true); // still cached: the documented bound
    clock.advance(TOKEN_CACHE_MS);
    expect(await b.authenticate(bearer(t.token))).toMatchObject({ ok: false, reason: /revoked/ });
    // idempotent, keeps the first time; unknown ids are a 404
    clock.advance(5_000);
    expect((await a.revoke(t.id)).revokedAt).toBe(revoked.revokedAt);
    await expect(a.revoke('nope')).rejects.toThrow(/token 'nope' does not exist/);
  });

  it('refuses expired tokens, and an expiry in the past at creation', async () => {
    const { a, clock } = setup();
    const expiresAt = new Date(clock.now() + 60_000).toISOString();
    const t = await a.create({ name: 'short', role: 'viewer', expiresAt }, BOOTSTRAP);
    expect((await a.authenticate(bearer(t.token))).ok).toBe(true);
    clock.advance(60_000);
    expect(await a.authenticate(bearer(t.token))).toMatchObject({ ok: false, reason: /expired/ });
    await expect(
      a.create({ name: 'old', role: 'viewer', expiresAt: new Date(clock.now() - 1).toISOString() }, BOOTSTRAP),
    ).rejects.toThrow(/in the past/);
  });
});
