/** What the start-up check makes of Redis's persistence settings. */
import { judgeDurability } from './redis-durability.js';

describe('Redis durability verdict', () => {
  it('passes AOF with noeviction and a replica', () => {
    expect(
      judgeDurability({ aofEnabled: true, appendfsync: 'everysec', maxmemoryPolicy: 'noeviction', replicas: 1 }),
    ).toEqual({ fatal: [], advice: [] });
  });

  it('names no AOF and an evicting policy as state that would be lost', () => {
    const v = judgeDurability({ aofEnabled: false, maxmemoryPolicy: 'allkeys-lru', replicas: 1 });
    expect(v.fatal).toEqual([
      expect.stringMatching(/appendonly is off/),
      expect.stringMatching(/maxmemory-policy is allkeys-lru/),
    ]);
  });

  it('takes settings it could not read (CONFIG and INFO refused by an ACL) as unverified, not as fine or bad', () => {
    const v = judgeDurability({});
    expect(v.fatal).toEqual([]);
    expect(v.advice).toEqual([
      expect.stringMatching(/appendonly.*unverified/),
      expect.stringMatching(/maxmemory.*unverified/),
    ]);
  });

  it('advises on appendfsync no and on a master without replicas', () => {
    const v = judgeDurability({ aofEnabled: true, appendfsync: 'no', maxmemoryPolicy: 'noeviction', replicas: 0 });
    expect(v.fatal).toEqual([]);
    expect(v.advice).toEqual([expect.stringMatching(/appendfsync is no/), expect.stringMatching(/no replica/)]);
  });
});
