/**
 * Token format and hashing, pure. A token is `spl_<id>_<secret>`: the id (12 hex) finds the record in one
 * lookup, the secret (32 random bytes, base64url) is only ever stored as its sha256.
 *
 * Why a plain sha256 and not bcrypt/scrypt: the secret is 256 random bits, not a password a person chose, so a
 * leaked digest cannot be brute-forced whatever the hash speed; a slow hash would only add milliseconds to
 * every API call. Digests are compared with timingSafeEqual on equal-length (32-byte) buffers, so the
 * comparison time says nothing about the secret nor its length.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';

const TOKEN = /^spl_([0-9a-f]{12})_([A-Za-z0-9_-]{43})$/;

export function sha256(value: string): Buffer {
  return createHash('sha256').update(value, 'utf8').digest();
}

/** A new token: its id, the full secret string shown once to its creator, and the digest to store. */
export function newToken(): { id: string; token: string; secretSha256: string } {
  const id = randomBytes(6).toString('hex');
  const secret = randomBytes(32).toString('base64url');
  return { id, token: `spl_${id}_${secret}`, secretSha256: sha256(secret).toString('hex') };
}

/** Splits a presented token; undefined when it is not in our format (then it can only be the bootstrap token). */
export function parseToken(presented: string): { id: string; secret: string } | undefined {
  const m = TOKEN.exec(presented);
  return m ? { id: m[1]!, secret: m[2]! } : undefined;
}

/** Constant-time: both sides are 32-byte digests, whatever was presented. */
export function secretMatches(secret: string, storedSha256Hex: string): boolean {
  const stored = Buffer.from(storedSha256Hex, 'hex');
  const given = sha256(secret);
  return stored.length === given.length && timingSafeEqual(given, stored);
}

/**
 * The bootstrap token (SPOTLIFT_API_TOKEN) against a presented string: both hashed first, so timingSafeEqual
 * always compares 32 bytes and the time taken does not depend on (nor leak) the configured token's length.
 */
export function bootstrapMatches(presented: string, bootstrapSha256: Buffer): boolean {
  return timingSafeEqual(sha256(presented), bootstrapSha256);
}
