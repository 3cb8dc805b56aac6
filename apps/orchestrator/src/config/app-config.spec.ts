import { DEFAULT_LIVE_CONFIG } from '@spotlift/engine';
import { ConfigFile } from './app-config.js';

const base = { ssh: { privateKeyPath: '/etc/spotlift/id_ed25519' } };

describe('config file: the live section (the engine live-strategy settings)', () => {
  it("defaults to the engine's own settings when absent", () => {
    expect(ConfigFile.parse(base).live).toEqual(DEFAULT_LIVE_CONFIG);
  });

  it('takes what it sets and keeps the defaults for the rest', () => {
    const live = ConfigFile.parse({
      ...base,
      live: { maxRounds: 3, minShrink: 0.5, assumedBandwidthBytesPerSec: 50 * 2 ** 20, trialTtlOkMs: 60_000 },
    }).live;
    expect(live).toEqual({
      ...DEFAULT_LIVE_CONFIG,
      maxRounds: 3,
      minShrink: 0.5,
      assumedBandwidthBytesPerSec: 50 * 2 ** 20,
      trialTtlOkMs: 60_000,
    });
  });

  it.each([
    [{ maxRounds: 0 }, 'live.maxRounds'],
    [{ maxRounds: 2.5 }, 'live.maxRounds'],
    [{ minShrink: 0 }, 'live.minShrink'],
    [{ minShrink: 1.2 }, 'live.minShrink'],
    [{ assumedBandwidthBytesPerSec: 0 }, 'live.assumedBandwidthBytesPerSec'],
    [{ trialTtlFailedMs: 0 }, 'live.trialTtlFailedMs'],
    [{ rounds: 3 }, 'live'],
  ])('refuses %j, naming %s', (live, path) => {
    const res = ConfigFile.safeParse({ ...base, live });
    expect(res.success).toBe(false);
    expect(res.error!.issues.map((i) => i.path.join('.'))).toContain(path);
  });
});
