import { NoticeEnv, noticeSettings } from './evacuation-config.js';

const settings = (env: Record<string, string>) => noticeSettings(NoticeEnv.parse(env));

describe('watch lease settings', () => {
  it('defaults: 5 s leases renewed every second, no slack', () => {
    expect(settings({}).lease).toEqual({ leaseMs: 5_000, renewMs: 1_000, slack: 0 });
  });

  it('takes what it is given', () => {
    const lease = settings({
      SPOTLIFT_WATCH_LEASE_MS: '2000',
      SPOTLIFT_WATCH_RENEW_MS: '500',
      SPOTLIFT_WATCH_SLACK: '2',
    });
    expect(lease.lease).toEqual({ leaseMs: 2_000, renewMs: 500, slack: 2 });
  });

  it.each([
    [{ SPOTLIFT_WATCH_LEASE_MS: '2000', SPOTLIFT_WATCH_RENEW_MS: '1500' }, /at most half the lease/],
    [{ SPOTLIFT_WATCH_LEASE_MS: '500' }, /must be >= 1000/],
    [{ SPOTLIFT_WATCH_RENEW_MS: '10' }, /must be >= 100/],
  ])('refuses %j, naming the variables', (env, why) => {
    expect(() => settings(env)).toThrow(why);
    expect(() => settings(env)).toThrow(/SPOTLIFT_WATCH_LEASE_MS \/ SPOTLIFT_WATCH_RENEW_MS/);
  });

  it('refuses a non-integer or negative slack at parse time', () => {
    expect(() => settings({ SPOTLIFT_WATCH_SLACK: '-1' })).toThrow();
    expect(() => settings({ SPOTLIFT_WATCH_LEASE_MS: 'soon' })).toThrow();
  });
});
