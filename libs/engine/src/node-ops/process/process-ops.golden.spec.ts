/**
 * Golden table of the process kind's named operations (the adapter): each name, called as the strategies call
 * it, runs exactly this builder's command through this runner with this timeout (and stdin). The commands'
 * text is golden in ../node-commands.golden.spec.ts; behaviour above this layer is checked through
 * FakeProcessOps (libs/testing) by name, not by matching shell text.
 */
import type { NodeRecord } from '@spotlift/domain';
import type { CommandResult, RemoteProcess } from '@spotlift/transport';
import type { NodeCommand } from '../node-command.js';
import type { ArmedCommand, TimedResult } from '../op-results.js';
import { freeSpaceFor, inspectPaths } from '../file-sync-commands.js';
import * as criu from './criu-commands.js';
import * as images from './image-store-commands.js';
import * as live from './live-commands.js';
import { ProcessNodeOps } from './process-ops.js';

interface Ran {
  runner: 'run' | 'runTimed' | 'armTimed' | 'stream' | 'streamIn';
  node: string;
  command: string;
  timeoutMs?: number;
  stdin?: string;
}

/** Runners that only record what they were handed. */
class RecordingOps extends ProcessNodeOps {
  readonly ran: Ran[] = [];
  run(node: NodeRecord, command: NodeCommand, timeoutMs: number, stdin?: string): Promise<CommandResult> {
    this.ran.push({ runner: 'run', node: node.id, command, timeoutMs, ...(stdin === undefined ? {} : { stdin }) });
    return Promise.resolve({ code: 0, stdout: '', stderr: '' });
  }
  runTimed(node: NodeRecord, command: NodeCommand, timeoutMs: number): Promise<TimedResult> {
    this.ran.push({ runner: 'runTimed', node: node.id, command, timeoutMs });
    return Promise.resolve({ code: 0, stdout: '', stderr: '' });
  }
  armTimed(node: NodeRecord, command: NodeCommand, timeoutMs: number): Promise<ArmedCommand> {
    this.ran.push({ runner: 'armTimed', node: node.id, command, timeoutMs });
    return Promise.resolve({} as ArmedCommand);
  }
  stream(node: NodeRecord, command: NodeCommand, stdin: string): Promise<RemoteProcess> {
    this.ran.push({ runner: 'stream', node: node.id, command, stdin });
    return Promise.resolve({} as RemoteProcess);
  }
  streamIn(node: NodeRecord, command: NodeCommand): Promise<RemoteProcess> {
    this.ran.push({ runner: 'streamIn', node: node.id, command });
    return Promise.resolve({} as RemoteProcess);
  }
}

const n = { id: 'node-b' } as NodeRecord;
const to = { address: '10.0.0.2', port: 27100 };
const tls = { cacert: '/t/ca.pem', cert: '/t/node.pem', key: '/t/node.key' };
const D = '/img/m1/dst';

const TABLE: Array<[string, (o: ProcessNodeOps) => Promise<unknown>, Omit<Ran, 'node'>]> = [
  [
    'memoryAndDisk with criu check',
    (o) => o.memoryAndDisk(n, '/img', { criuCheck: true }),
    { runner: 'run', command: criu.checkMemoryAndDisk('/img'), timeoutMs: 60_000 },
  ],
  [
    'memoryAndDisk after a recent probe',
    (o) => o.memoryAndDisk(n, '/img', { criuCheck: false }),
    { runner: 'run', command: criu.memoryAndDisk('/img'), timeoutMs: 60_000 },
  ],
  [
    'cpuinfoDumpAndRead',
    (o) => o.cpuinfoDumpAndRead(n, D),
    { runner: 'run', command: criu.cpuinfoDumpAndRead(D), timeoutMs: 60_000 },
  ],
  [
    'cpuinfoWriteAndCheck',
    (o) => o.cpuinfoWriteAndCheck(n, D, 'Y3B1'),
    { runner: 'run', command: criu.cpuinfoWriteAndCheck(D), timeoutMs: 60_000, stdin: 'Y3B1' },
  ],
  ['cpuinfoDump', (o) => o.cpuinfoDump(n, D), { runner: 'run', command: criu.cpuinfoDump(D), timeoutMs: 60_000 }],
  ['cpuinfoCheck', (o) => o.cpuinfoCheck(n, D), { runner: 'run', command: criu.cpuinfoCheck(D), timeoutMs: 60_000 }],
  [
    'startPageServer',
    (o) => o.startPageServer(n, D, to, tls),
    { runner: 'run', command: criu.pageServer(D, to.address, to.port, tls), timeoutMs: 30_000 },
  ],
  [
    'startPageServerWithParent',
    (o) => o.startPageServerWithParent(n, D, to, 'round-2', tls),
    { runner: 'run', command: live.pageServerWithParent(D, to, 'round-2', tls), timeoutMs: 30_000 },
  ],
  [
    'stopPageServer',
    (o) => o.stopPageServer(n, D),
    { runner: 'run', command: live.stopPageServer(D), timeoutMs: 15_000 },
  ],
  [
    'awaitPageServerExit',
    (o) => o.awaitPageServerExit(n, D, 10_000),
    { runner: 'run', command: criu.awaitPageServerExit(D, 10_000), timeoutMs: 25_000 },
  ],
  [
    'dump',
    (o) => o.dump(n, 4242, D, to, { tls, prev: 'round-3', ghostLimitBytes: 1024 }, 120_000),
    {
      runner: 'runTimed',
      command: criu.dump(4242, D, to, { tls, prev: 'round-3', ghostLimitBytes: 1024 }),
      timeoutMs: 120_000,
    },
  ],
  [
    'preDump to a page-server',
    (o) => o.preDump(n, 4242, `${D}/round-2`, '../round-1', 120_000, to, tls),
    { runner: 'runTimed', command: live.preDump(4242, `${D}/round-2`, '../round-1', to, tls), timeoutMs: 120_000 },
  ],
  [
    'preDump into local files',
    (o) => o.preDump(n, 4242, `${D}/round-1`, undefined, 120_000),
    { runner: 'runTimed', command: live.preDump(4242, `${D}/round-1`, undefined), timeoutMs: 120_000 },
  ],
  [
    'sampleDirtyPages',
    (o) => o.sampleDirtyPages(n, 4242, 500),
    { runner: 'run', command: live.sampleDirtyPages(4242, 500), timeoutMs: 60_000 },
  ],
  [
    'restore',
    (o) => o.restore(n, D, {}, 120_000),
    { runner: 'runTimed', command: criu.restore(D, {}), timeoutMs: 120_000 },
  ],
  [
    'armRestore',
    (o) => o.armRestore(n, D, {}, 120_000),
    { runner: 'armTimed', command: criu.restore(D), timeoutMs: 120_000 },
  ],
  [
    'armRestore lazy: the local daemon first',
    (o) => o.armRestore(n, D, { lazy: true }, 120_000),
    {
      runner: 'armTimed',
      command: criu.restore(D, { lazyPages: true, daemonFirst: live.lazyPagesDaemon(D) }),
      timeoutMs: 120_000,
    },
  ],
  [
    'restoreProbe',
    (o) => o.restoreProbe(n, D, 90_000),
    { runner: 'run', command: criu.restore(D, { lazyPages: true }), timeoutMs: 90_000 },
  ],
  ['portFree', (o) => o.portFree(n, 27100), { runner: 'run', command: live.portFree(27100), timeoutMs: 15_000 }],
  [
    'lazyDumpStart',
    (o) => o.lazyDumpStart(n, 4242, D, to, 'round-1', 120_000, 1024, tls),
    { runner: 'run', command: live.lazyDumpStart(4242, D, to, 'round-1', 120, 1024, tls), timeoutMs: 150_000 },
  ],
  [
    'lazyDumpWait',
    (o) => o.lazyDumpWait(n, D, 30),
    { runner: 'run', command: live.lazyDumpWait(D, 30), timeoutMs: 60_000 },
  ],
  [
    'lazyDumpWait, only asking',
    (o) => o.lazyDumpWait(n, D, 0),
    { runner: 'run', command: live.lazyDumpWait(D, 0), timeoutMs: 15_000 },
  ],
  ['lazyDumpStop', (o) => o.lazyDumpStop(n, D), { runner: 'run', command: live.lazyDumpStop(D), timeoutMs: 30_000 }],
  [
    'lazyPagesDaemon',
    (o) => o.lazyPagesDaemon(n, D, to, tls),
    { runner: 'run', command: live.lazyPagesDaemon(D, to, tls), timeoutMs: 60_000 },
  ],
  [
    'lazyPagesWait',
    (o) => o.lazyPagesWait(n, D, 90_000),
    { runner: 'run', command: live.lazyPagesWait(D, 90), timeoutMs: 120_000 },
  ],
  [
    'lazyPagesStarted',
    (o) => o.lazyPagesStarted(n, D),
    { runner: 'run', command: live.lazyPagesStarted(D), timeoutMs: 15_000 },
  ],
  ['lazyPagesStop', (o) => o.lazyPagesStop(n, D), { runner: 'run', command: live.lazyPagesStop(D), timeoutMs: 15_000 }],
  [
    'startProbeProcess',
    (o) => o.startProbeProcess(n, 150, 'trial-0a1b2c3d'),
    { runner: 'run', command: live.startProbeProcess(150, 'trial-0a1b2c3d'), timeoutMs: 30_000 },
  ],
  [
    'sealImages',
    (o) => o.sealImages(n, D, ['inventory.img'], 'SHA256SUMS'),
    { runner: 'run', command: images.sealImages(D, ['inventory.img'], 'SHA256SUMS'), timeoutMs: 120_000 },
  ],
  [
    'checkImages',
    (o) => o.checkImages(n, D, 'SHA256SUMS'),
    { runner: 'run', command: images.checkImages(D, 'SHA256SUMS'), timeoutMs: 120_000 },
  ],
  [
    'listImageFiles',
    (o) => o.listImageFiles(n, D),
    { runner: 'run', command: images.listImageFiles(D), timeoutMs: 30_000 },
  ],
  [
    'readImageFiles',
    (o) => o.readImageFiles(n, D, ['core-1.img']),
    { runner: 'run', command: images.readImageFiles(D, ['core-1.img']), timeoutMs: 60_000 },
  ],
  [
    'readImageRange',
    (o) => o.readImageRange(n, D, 'pages-1.img', 4096, 8192),
    { runner: 'run', command: images.readImageRange(D, 'pages-1.img', 4096, 8192), timeoutMs: 60_000 },
  ],
  [
    'dumpLocal',
    (o) => o.dumpLocal(n, 4242, D, { ghostLimitBytes: 1024, leaveRunning: true }, 120_000),
    {
      runner: 'runTimed',
      command: criu.dumpLocal(4242, D, { ghostLimitBytes: 1024, leaveRunning: true }),
      timeoutMs: 120_000,
    },
  ],
  [
    'encryptImages, the data key on stdin',
    (o) => o.encryptImages(n, D, 'k'.repeat(64)),
    { runner: 'run', command: images.encryptImages(D), timeoutMs: 600_000, stdin: `${'k'.repeat(64)}\n` },
  ],
  [
    'decryptImages, the data key and the recorded sums on stdin',
    (o) => o.decryptImages(n, D, 'k'.repeat(64), `${'a'.repeat(64)}  pages-1.img\n`),
    {
      runner: 'run',
      command: images.decryptImages(D),
      timeoutMs: 600_000,
      stdin: `${'k'.repeat(64)}\n${'a'.repeat(64)}  pages-1.img\n`,
    },
  ],
  [
    'exportArchive',
    (o) => o.exportArchive(n, D, `${D}.export`, ['config.dump'], 'config.dump e30=\n'),
    {
      runner: 'stream',
      command: images.exportArchive(D, `${D}.export`, ['config.dump']),
      stdin: 'config.dump e30=\n',
    },
  ],
  [
    'sendImageFile',
    (o) => o.sendImageFile(n, D, 'checkpoint.tar'),
    { runner: 'stream', command: images.sendImageFile(D, 'checkpoint.tar'), stdin: '' },
  ],
  [
    'extractArchiveMembers',
    (o) =>
      o.extractArchiveMembers(n, D, { name: 'checkpoint.tar', sha256: 'ab' }, 'unpacked', ['config.dump'], 600_000),
    {
      runner: 'run',
      command: images.extractArchiveMembers(D, 'checkpoint.tar', 'unpacked', ['config.dump'], 'ab'),
      timeoutMs: 600_000,
    },
  ],
  [
    'receiveArchiveMembers',
    (o) => o.receiveArchiveMembers(n, D, 'unpacked.part-1', 'unpacked', 'archive.sums'),
    { runner: 'streamIn', command: images.receiveArchiveMembers(D, 'unpacked.part-1', 'unpacked', 'archive.sums') },
  ],
  [
    'inspectPaths',
    (o) => o.inspectPaths(n, ['/srv/data']),
    { runner: 'run', command: inspectPaths(['/srv/data']), timeoutMs: 60_000 },
  ],
  [
    'freeSpace',
    (o) => o.freeSpace(n, ['/srv/data']),
    { runner: 'run', command: freeSpaceFor(['/srv/data']), timeoutMs: 60_000 },
  ],
];

describe('process operations: name -> command, runner, timeout', () => {
  it.each(TABLE)('%s', async (_name, call, expected) => {
    const ops = new RecordingOps();
    await call(ops);
    expect(ops.ran).toEqual([{ node: 'node-b', ...expected }]);
  });

  it('names every operation of the layer in this table', () => {
    const runners = new Set(['constructor', 'run', 'runTimed', 'armTimed', 'stream', 'streamIn']);
    const named = Object.getOwnPropertyNames(ProcessNodeOps.prototype).filter((m) => !runners.has(m));
    const covered = new Set(TABLE.map(([name]) => name.split(/[ ,]/)[0]));
    expect(named.filter((m) => !covered.has(m))).toEqual([]);
  });
});
