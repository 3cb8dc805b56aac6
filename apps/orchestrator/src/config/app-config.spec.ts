import { generateKeyPairSync } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { DEFAULT_LIVE_CONFIG } from '@spotlift/engine';
import { ConfigFile, loadConfig } from './app-config.js';

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
    [{ lazyRestore: 'yes' }, 'live.lazyRestore'],
    [{ rounds: 3 }, 'live'],
  ])('refuses %j, naming %s', (live, path) => {
    const res = ConfigFile.safeParse({ ...base, live });
    expect(res.success).toBe(false);
    expect(res.error!.issues.map((i) => i.path.join('.'))).toContain(path);
  });
});

describe('config file: declared files (the files section, node sharedStorage)', () => {
  const node = {
    id: 'node-a',
    host: '10.0.0.2',
    hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0gG0u7fCbxxRKxmBIq1NNLwR4iB7F6e5r8tG1f7qzm',
  };

  it('defaults: 64 MiB ghost files, 4 rounds, rounds of 200 ms; a shared path group per node', () => {
    const parsed = ConfigFile.parse({
      ...base,
      nodes: [{ ...node, sharedStorage: { group: 'nfs-1', paths: ['/mnt/nfs'] } }],
    });
    expect(parsed.files).toEqual({ maxRounds: 4, targetRoundMs: 200, ghostLimitBytes: 64 * 2 ** 20 });
    expect(parsed.nodes[0]!.sharedStorage).toEqual({ group: 'nfs-1', paths: ['/mnt/nfs'] });
  });

  it.each([
    [{ files: { ghostLimitBytes: -1 } }, 'files.ghostLimitBytes'],
    [{ files: { maxRounds: 0 } }, 'files.maxRounds'],
    [{ files: { rounds: 2 } }, 'files'],
    [{ nodes: [{ ...node, sharedStorage: { group: 'nfs-1', paths: ['mnt/nfs'] } }] }, 'nodes.0.sharedStorage.paths.0'],
    [{ nodes: [{ ...node, sharedStorage: { group: 'nfs-1', paths: [] } }] }, 'nodes.0.sharedStorage.paths'],
    [{ nodes: [{ ...node, sharedStorage: { paths: ['/mnt/nfs'] } }] }, 'nodes.0.sharedStorage.group'],
  ])('refuses %j, naming %s', (extra, path) => {
    const res = ConfigFile.safeParse({ ...base, ...extra });
    expect(res.success).toBe(false);
    expect(res.error!.issues.map((i) => i.path.join('.'))).toContain(path);
  });
});

describe('config file: nodes', () => {
  const node = {
    id: 'node-a',
    host: '10.0.0.2',
    hostKey: 'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIB0gG0u7fCbxxRKxmBIq1NNLwR4iB7F6e5r8tG1f7qzm',
  };

  it('refuses an unknown field (a typo must not be silently ignored), naming it', () => {
    const res = ConfigFile.safeParse({ ...base, nodes: [{ ...node, dataAdress: '10.1.0.2' }] });
    expect(res.success).toBe(false);
    expect(res.error!.issues).toContainEqual(
      expect.objectContaining({ code: 'unrecognized_keys', keys: ['dataAdress'], path: ['nodes', 0] }),
    );
    expect(ConfigFile.parse({ ...base, nodes: [{ ...node, dataAddress: '10.1.0.2' }] }).nodes[0]!.dataAddress).toBe(
      '10.1.0.2',
    );
  });
});

describe('environment: jobs a worker runs at once', () => {
  const dir = mkdtempSync(join(tmpdir(), 'spotlift-config-'));
  const keyPath = join(dir, 'id_rsa');
  writeFileSync(
    keyPath,
    generateKeyPairSync('rsa', {
      modulusLength: 1024,
      privateKeyEncoding: { type: 'pkcs1', format: 'pem' },
      publicKeyEncoding: { type: 'pkcs1', format: 'pem' },
    }).privateKey,
  );
  const configPath = join(dir, 'config.json');
  writeFileSync(configPath, JSON.stringify({ ssh: { privateKeyPath: keyPath } }));
  const load = (env: Record<string, string> = {}) =>
    loadConfig({ SPOTLIFT_CONFIG: configPath, SPOTLIFT_API_TOKEN: 'a-token-of-32-characters-or-more-0123', ...env });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('defaults: 32 migrations (they wait on their nodes), 4 checkpoints (they relay every image file)', () => {
    expect(load()).toMatchObject({ workerConcurrency: 32, checkpointConcurrency: 4 });
  });

  it('takes what it is given, and refuses what is not a count from 1 to 64', () => {
    expect(load({ SPOTLIFT_WORKER_CONCURRENCY: '8', SPOTLIFT_CHECKPOINT_CONCURRENCY: '2' })).toMatchObject({
      workerConcurrency: 8,
      checkpointConcurrency: 2,
    });
    for (const bad of ['0', '65', 'many', '2.5'])
      expect(() => load({ SPOTLIFT_CHECKPOINT_CONCURRENCY: bad })).toThrow(/SPOTLIFT_CHECKPOINT_CONCURRENCY/);
  });
});
