/** The worker's flags while Redis is away: unreadable cancel = not cancelled, the commit claim kept locally. */
import { type CancelOutcome, InMemoryMigrationFlags, MigrationFlags, OutageTolerantFlags } from './migration-flags.js';

class Switchable extends MigrationFlags {
  down = false;
  readonly mem = new InMemoryMigrationFlags();
  private check(): Promise<void> {
    return this.down ? Promise.reject(new Error('Connection is closed.')) : Promise.resolve();
  }
  requestCancel = async (id: string): Promise<CancelOutcome> => (await this.check(), this.mem.requestCancel(id));
  cancelRequested = async (id: string) => (await this.check(), this.mem.cancelRequested(id));
  claimCommit = async (id: string) => (await this.check(), this.mem.claimCommit(id));
}

describe('OutageTolerantFlags', () => {
  it('with Redis down: cancel reads say no, the claim is taken locally, and written back when Redis answers', async () => {
    const redis = new Switchable();
    const seen: string[] = [];
    const flags = new OutageTolerantFlags(redis, (id, what) => seen.push(`${id} ${what}`));
    redis.down = true;
    expect(await flags.cancelRequested('m')).toBe(false);
    expect(await flags.claimCommit('m')).toBe(true);
    expect(await flags.claimCommit('m')).toBe(true);
    await expect(flags.requestCancel('m')).rejects.toThrow(/Connection is closed/);
    expect(seen).toEqual(['m cancel read', 'm commit claim']);
    await expect(flags.flushClaims()).rejects.toThrow();
    expect(flags.pendingClaims()).toEqual(['m']);
    redis.down = false;
    expect(await flags.flushClaims()).toEqual([]);
    expect(flags.pendingClaims()).toEqual([]);
    // Written back: a cancel now learns the migration had committed.
    expect(await redis.requestCancel('m')).toBe('committed');
  });

  it('names a cancel the offline commit overtook (accepted before the outage, never read)', async () => {
    const redis = new Switchable();
    const flags = new OutageTolerantFlags(redis);
    expect(await redis.requestCancel('m')).toBe('requested');
    redis.down = true;
    expect(await flags.cancelRequested('m')).toBe(false);
    expect(await flags.claimCommit('m')).toBe(true);
    redis.down = false;
    expect(await flags.flushClaims()).toEqual(['m']);
  });

  it('with Redis up it is the strict flags: a cancel first wins over the claim', async () => {
    const redis = new Switchable();
    const flags = new OutageTolerantFlags(redis);
    await redis.requestCancel('m');
    expect(await flags.cancelRequested('m')).toBe(true);
    expect(await flags.claimCommit('m')).toBe(false);
  });
});
