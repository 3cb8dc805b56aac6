import { aMigration, aNode, aWorkload } from '@spotlift/testing';
import type { MigrationContext } from '../engine.types.js';
import { nodeLockPath } from '../node-ops/node-scripts.js';
import { ownerMarker, parseOwnerMarker } from './owner-marker.js';

const ctx = (): MigrationContext => ({
  migration: aMigration({ id: 'mig-1', keepImages: true }),
  workload: aWorkload({
    id: 'wl-1',
    pid: 4242,
    tree: [4242, 4243],
    identity: { bootId: '0f1e-aa', pidNs: '4026531836', startTime: '9876' },
  }),
  source: aNode('node-a'),
  destination: aNode('node-b'),
  sourceDir: '/x/mig-1/src',
  destinationDir: '/x/mig-1/dst',
});

describe('owner marker', () => {
  it('says who owns a side, round-trips through JSON, and names the lock of the process', () => {
    const m = ownerMarker(ctx(), 'source', new Date('2026-12-06T10:00:00Z'));
    expect(m).toMatchObject({
      migrationId: 'mig-1',
      role: 'source',
      workloadId: 'wl-1',
      pid: 4242,
      tasks: 2,
      sourceNodeId: 'node-a',
      destinationNodeId: 'node-b',
      keepImages: true,
      createdAt: '2026-12-06T10:00:00.000Z',
    });
    expect(m.lockFile).toBe(nodeLockPath('proc:0f1e-aa:4026531836:4242:9876'));
    expect(m.lockFile).toMatch(/^\/run\/spotlift\/locks\/proc_0f1e-aa_4026531836_4242_9876\.lock$/);
    expect(parseOwnerMarker(JSON.stringify(m))).toEqual(m);
  });

  it("records a container's kind and full id (what the sweeper asks Podman about), and reads them back", () => {
    const c = ctx();
    c.workload = { ...c.workload, kind: 'podman', container: 'c0ffee'.padEnd(64, '0') };
    const m = ownerMarker(c, 'source', new Date('2026-12-06T10:00:00Z'));
    expect(m).toMatchObject({ kind: 'podman', container: 'c0ffee'.padEnd(64, '0') });
    expect(parseOwnerMarker(JSON.stringify(m))).toEqual(m);
    expect(ownerMarker(ctx(), 'source', new Date())).not.toHaveProperty('kind');
  });

  it.each([
    ['not JSON', '{'],
    ['too big', JSON.stringify({ pad: 'x'.repeat(5000) })],
    ['another version', { v: 2 }],
    ['pid 1', { pid: 1 }],
    ['a path in an id', { migrationId: '../../etc' }],
    ['a lock file outside the lock directory', { lockFile: '/etc/passwd' }],
    ['a lock path escaping it', { lockFile: '/run/spotlift/locks/../../../etc/x' }],
    ['a bad role', { role: 'both' }],
    ['an identity with shell in it', { identity: { bootId: '$(reboot)', pidNs: '1', startTime: '1' } }],
    ['no creation time', { createdAt: 'yesterday' }],
    ['another kind', { kind: 'docker', container: 'c'.repeat(64) }],
    ['a container name instead of its id', { kind: 'podman', container: 'web' }],
    ['a container option', { kind: 'podman', container: `-${'c'.repeat(63)}` }],
    ['a container without its kind', { container: 'c'.repeat(64) }],
  ])('refuses a marker with %s (a node wrote it)', (_what, over) => {
    const good = ownerMarker(ctx(), 'destination', new Date());
    const text = typeof over === 'string' ? over : JSON.stringify({ ...good, ...over });
    expect(parseOwnerMarker(text)).toBeUndefined();
  });
});
