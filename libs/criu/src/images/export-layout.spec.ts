import { loadImages, WORKDIR } from '../../test/forensic-fixture.js';
import { exportLayout } from './export-layout.js';
import { inspectImages } from './inspect.js';

describe('exportLayout (checkpointctl metadata for a bare process)', () => {
  it('fills config.dump and spec.dump from the record and the decoded images, and lists what it cannot fill', async () => {
    const inspection = await inspectImages(loadImages());
    const out = exportLayout({
      checkpointId: 'cp-1',
      workloadId: 'wl-1',
      workloadName: 'fixture',
      createdAt: '2026-01-01T00:00:00.000Z',
      storedAt: '2026-01-01T00:00:02.000Z',
      mode: 'forensic',
      sourceNodeId: 'node-a',
      criuVersion: '4.2.1',
      inspection,
    });
    const config = JSON.parse(out.files['config.dump']!) as Record<string, unknown>;
    // the fields checkpointctl's ContainerConfig reads
    expect(config).toMatchObject({
      id: 'cp-1',
      name: 'fixture',
      rootfsImageName: '',
      createdTime: '2026-01-01T00:00:00.000Z',
    });
    const spec = JSON.parse(out.files['spec.dump']!) as {
      process: { args: string[]; cwd: string };
      annotations: Record<string, string>;
    };
    expect(spec.process.args).toEqual([`${WORKDIR}/workload`, `${WORKDIR}/data.txt`, '27631', `${WORKDIR}/unix.sock`]);
    expect(spec.process.cwd).toBe(WORKDIR);
    expect(spec.annotations).toMatchObject({
      'io.container.manager': 'libpod',
      'org.spotlift.checkpoint.mode': 'forensic',
    });
    expect(out.unfilled.map((u) => u.file)).toEqual([
      'rootfs-diff.tar',
      'deleted.files',
      'network.status',
      'bind.mounts',
      'container log (ctr.log)',
      'dump.log',
    ]);
    expect(JSON.parse(out.files['spotlift-export.json']!)).toMatchObject({
      checkpoint: 'cp-1',
      unfilled: out.unfilled,
    });
  });
});
