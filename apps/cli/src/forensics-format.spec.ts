import { inspectImages } from '@spotlift/criu';
import { loadImages, WORKDIR } from '../../../libs/criu/test/forensic-fixture.js';
import { inspectTables, searchTable, type InspectAnswer } from './forensics-format.js';

const answer = async (): Promise<InspectAnswer> => ({
  checkpoint: 'cp-1',
  mode: 'forensic',
  workloadId: 'wl-1',
  storageNodeId: 'node-c',
  writer: { nodeId: 'node-a', criuVersion: '4.2.1', kernel: '6.18.44' },
  imageFiles: { 'pages-1.img': 61440, 'core-1.img': 2324 },
  inspection: await inspectImages(loadImages()),
  durationMs: 12,
});

describe('checkpoints inspect tables (the real fixture dump)', () => {
  it('--tree: one line per process with its command line from the images', async () => {
    const out = inspectTables(await answer(), { tree: true }).split('\n');
    expect(out[0]).toMatch(/^PID\s+PPID\s+UID\s+STATE\s+THREADS\s+COMMAND$/);
    expect(out[1]).toMatch(new RegExp(`^1\\s+0\\s+0\\s+alive\\s+1\\s+${WORKDIR}/workload ${WORKDIR}/data.txt 27631`));
    expect(out).toHaveLength(3);
  });

  it('--files and --sockets: positions, the listener and the unix socket', async () => {
    const a = await answer();
    expect(inspectTables(a, { files: true })).toMatch(new RegExp(`1\\s+3\\s+REG\\s+7\\s+${WORKDIR}/data.txt`));
    const sockets = inspectTables(a, { sockets: true });
    expect(sockets).toMatch(/INET\s+STREAM\/TCP\s+LISTEN\s+127\.0\.0\.1:27631\s+1:4 2:4/);
    expect(sockets).toContain(`${WORKDIR}/unix.sock`);
  });

  it('--mappings: size, how much was dumped, and the backing file', async () => {
    const out = inspectTables(await answer(), { mappings: true });
    expect(out).toMatch(/0xffffffffff600000\s+0xffffffffff601000\s+--xp\s+4 KiB\s+0 KiB\s+\[vsyscall\]/);
    expect(out).toContain(`${WORKDIR}/workload`);
  });

  it('no flag: a header and every section', async () => {
    const out = inspectTables(await answer(), {});
    expect(out).toContain('cp-1 (forensic)');
    expect(out).toContain('node-a: CRIU 4.2.1, kernel 6.18.44');
    for (const h of ['COMMAND', 'TARGET', 'HELD BY', 'BACKING']) expect(out).toContain(h);
  });

  it('a container checkpoint: its name, image, command, ports and volumes in the header', async () => {
    const out = inspectTables(
      {
        ...(await answer()),
        container: {
          id: 'c'.repeat(64),
          name: 'web',
          image: { name: 'localhost/web:1', id: 'f'.repeat(64) },
          runtime: 'runc',
          ports: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp' }],
          volumes: [{ name: 'data', dest: '/data' }],
          command: ['/bin/sh', '/run.sh'],
        },
      },
      {},
    );
    expect(out).toMatch(/container\s+web \(cccccccccccc\), runtime runc/);
    expect(out).toMatch(/image\s+localhost\/web:1 \(ffffffffffff\)/);
    expect(out).toMatch(/ports\s+18080->8080\/tcp/);
    expect(out).toMatch(/volumes\s+data:\/data/);
    expect(inspectTables(await answer(), {})).not.toMatch(/^container/m);
  });

  it('search: hits with address and mapping; an empty answer says how much was scanned', () => {
    expect(searchTable({ hits: [], bytesScanned: 122880, durationMs: 3 })).toBe('0 hit(s) in 120 KiB of pages, 3 ms');
    const out = searchTable({
      hits: [
        {
          pid: 1,
          vaddr: '0x31465ab0',
          mapping: '0x31465000-0x31487000 rw-p [heap]',
          before: '',
          match: '41',
          after: '',
          text: 'A',
        },
      ],
      bytesScanned: 4096,
      truncated: 'hits',
      durationMs: 1,
    });
    expect(out).toMatch(/stopped: hits limit/);
    expect(out).toMatch(/1\s+0x31465ab0\s+0x31465000-0x31487000 rw-p \[heap\]\s+A/);
  });
});
