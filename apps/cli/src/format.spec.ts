import { aMigration } from '@spotlift/testing';
import { migrationSummary } from './format.js';

describe('migrationSummary', () => {
  it('says how pages travelled and what happened to the declared files', () => {
    const text = migrationSummary(
      aMigration({
        state: 'completed',
        transport: 'ssh',
        transportRoute: 'direct: OpenSSH -L on node-a to node-b',
        files: {
          synced: ['/srv/data/app'],
          shared: ['/mnt/nfs/app'],
          rounds: [{ sent: 4, deleted: 0, bytes: 4_205_056, durationMs: 180 }],
          final: { sent: 2, deleted: 1, bytes: 10_240, durationMs: 21 },
        },
      }),
      { phases: false },
    );
    expect(text).toContain('stop-and-copy over ssh (direct: OpenSSH -L on node-a to node-b)');
    expect(text).toContain(
      'files: /srv/data/app copied (4 entries/4205056 B, 2 entries/10240 B; the last inside the freeze); on shared storage: /mnt/nfs/app',
    );
  });

  it('says how a pre-copy restored: lazily, and when its memory was all in', () => {
    const text = migrationSummary(
      aMigration({
        strategy: 'pre-copy',
        state: 'completed',
        precopy: {
          stopReason: 'rounds stopped shrinking',
          predictedFinalFreezeMs: 1209,
          restore: 'lazy',
          restoreReason: 'CRIU on node-a and node-b restores parent pages lazily',
          lazyFill: { lazyPages: 65779, allPagesAt: '2026-11-28T00:00:07Z', pagesAfterResumeMs: 6900 },
        },
      }),
      { phases: false },
    );
    expect(text).toContain('restore: lazy (CRIU on node-a and node-b restores parent pages lazily)');
    expect(text).toContain('lazy restore: all 65779 pages in 6900.0 ms after resume');
  });

  it('prints no files line for a workload that declared none', () => {
    expect(migrationSummary(aMigration(), { phases: false })).not.toMatch(/files:/);
  });
});
