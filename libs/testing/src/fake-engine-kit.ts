/**
 * The engine over FakeProcessOps: its node operations answered by name (healthy lab nodes, CRIU's stats
 * images captured from real runs), the image stream over a scripted shell (transport's tar and checksum, the
 * only commands left there). Specs add their own rules before scriptHappyOps: the first matching rule answers.
 */
import { createHash } from 'node:crypto';
import type { MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { InMemoryMigrationFlags, InMemoryRecords } from '@spotlift/store';
import {
  DEFAULT_ENGINE_CONFIG,
  type EngineConfig,
  MigrationEngine,
  type NodeLock,
  type RunControl,
  SystemClock,
} from '@spotlift/engine';
import { DirectoryStreamer } from '@spotlift/transport';
import { aMigration, aNode, aWorkload } from './builders.js';
import { criuFixture, TAR } from './engine-test-kit.js';
import { FakeProcessOps } from './fake-process-ops.js';
import { ScriptedNodeShell } from './scripted-node-shell.js';

export interface FakeEngineKit {
  ops: FakeProcessOps;
  /** Answers the image stream only (tar on the source, its checksum on the destination). */
  streams: ScriptedNodeShell;
  engine: MigrationEngine;
  migrations: InMemoryRecords<MigrationRecord>;
  workloads: InMemoryRecords<WorkloadRecord>;
  nodes: InMemoryRecords<NodeRecord>;
  flags: InMemoryMigrationFlags;
  /** A RunControl over `flags` for migration mig-1. */
  control: RunControl;
}

export function fakeEngineKit(
  opts: {
    migration?: MigrationRecord;
    workload?: WorkloadRecord;
    nodes?: NodeRecord[];
    config?: Partial<EngineConfig>;
  } = {},
): FakeEngineKit {
  const ops = new FakeProcessOps();
  const streams = new ScriptedNodeShell();
  const migrations = new InMemoryRecords<MigrationRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<NodeRecord>();
  for (const n of opts.nodes ?? [aNode('node-a'), aNode('node-b')]) void nodes.save(n);
  void migrations.save(opts.migration ?? aMigration());
  void workloads.save(opts.workload ?? aWorkload());
  const engine = new MigrationEngine(
    migrations,
    workloads,
    nodes,
    ops.asNodeOps(),
    new DirectoryStreamer(streams),
    new SystemClock(),
    { ...DEFAULT_ENGINE_CONFIG, cleanupRetryMs: 0, cancelPollMs: 5, ...opts.config },
  );
  const flags = new InMemoryMigrationFlags();
  const control: RunControl = {
    cancelRequested: () => flags.cancelRequested('mig-1'),
    claimCommit: () => flags.claimCommit('mig-1'),
  };
  return { ops, streams, engine, migrations, workloads, nodes, flags, control };
}

const ok = (stdout = '') => ({ code: 0, stdout, stderr: '' });
const heldLock = (path: string): NodeLock => ({
  path,
  owner: 'fake',
  lost: false,
  renew: () => Promise.resolve('renewed'),
  release: () => Promise.resolve(),
});

/**
 * A stop-and-copy of pid 4242 (tree 4242 4243, 64 MiB) from node-a to node-b, restored there as 777: every
 * operation answers as a healthy node does, and the image stream arrives whole.
 */
export function scriptHappyOps(ops: FakeProcessOps, streams?: ScriptedNodeShell): FakeProcessOps {
  if (streams) {
    streams.on({ node: 'node-a', match: /(?:^|; )tar -C/, reply: { stdout: TAR.toString() } }).on({
      node: 'node-b',
      match: /sha256sum/,
      reply: { stdout: `${createHash('sha256').update(TAR).digest('hex')}\n` },
    });
  }
  const MiB = 2 ** 20;
  return ops
    .on('inspectTree', { pids: [4242, 4243], rssBytes: 64 * MiB }, { node: 'node-a' })
    .on('inspectTree', { pids: [777, 778], rssBytes: 64 * MiB }, { node: 'node-b' })
    .on('processState', 'S')
    .on('memoryAndDisk', ok(`Looks good.\nMEM_AVAILABLE_KB 8000000\nDISK_AVAIL_BYTES ${50 * 2 ** 30}\n`))
    .on('cpuinfoDumpAndRead', ok(Buffer.from('cpuinfo image bytes').toString('base64')))
    .on('cpuinfoWriteAndCheck', ok())
    .on('holdLock', (_n, key) => heldLock(`/run/spotlift/locks/${key}.lock`))
    .on('makeDir', undefined)
    .on('startPageServer', ok())
    .on('stopPageServer', ok())
    .on('awaitPageServerExit', ok())
    .on('dump', { ...ok(), startNs: 1_000_000_000_000n, endNs: 1_001_000_000_000n })
    .on('armRestore', (n) =>
      ops.armed('armRestore', n.id, {
        ...ok('RESTORED_PID 777\n'),
        startNs: 1_001_100_000_000n,
        endNs: 1_001_300_000_000n,
      }),
    )
    .on('restore', { ...ok('RESTORED_PID 777\n'), startNs: 1_001_100_000_000n, endNs: 1_001_300_000_000n })
    .on('readFile', criuFixture('images/page-server/stats-dump'), {
      node: 'node-a',
      when: (_n, path) => path.endsWith('/stats-dump'),
    })
    .on('readFile', criuFixture('images/page-server/stats-restore'), {
      node: 'node-b',
      when: (_n, path) => path.endsWith('/stats-restore'),
    })
    .on('tail', '')
    .on('killTree', 'gone')
    .on('resumeTree', 'S')
    .on('waitCriuIdle', { idle: true, pids: [] })
    .on('readPidfile', undefined)
    .on('removeDir', true)
    .on('removeEmptyDir', undefined)
    .on('keepLogs', 0);
}
