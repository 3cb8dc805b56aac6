/**
 * The engine over FakeProcessOps: its node operations answered by name (healthy lab nodes, CRIU's stats
 * images captured from real runs), the image stream over a scripted shell (transport's tar and checksum, the
 * only commands left there). Specs add their own rules before scriptHappyOps: the first matching rule answers.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { InMemoryMigrationFlags, InMemoryRecords } from '@spotlift/store';
import {
  DEFAULT_ENGINE_CONFIG,
  type EngineConfig,
  MigrationEngine,
  type NodeLock,
  type RunControl,
  SystemClock,
  type TreeInfo,
} from '@spotlift/engine';
import { DirectoryStreamer } from '@spotlift/transport';
import { aMigration, aNode, aWorkload } from './builders.js';
import { FakeProcessOps } from './fake-process-ops.js';
import type { InspectionFacts } from './scripted-inspection.js';
import { ScriptedNodeShell } from './scripted-node-shell.js';

/** A file of libs/criu's fixtures (CRIU's stats images and logs captured from real runs). */
export const criuFixture = (path: string): Buffer =>
  readFileSync(new URL(`../../criu/test/fixtures/${path}`, import.meta.url));

/** What the scripted source answers for the image tar stream (and its checksum on the destination). */
export const TAR = Buffer.from('scripted tar stream');

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

/**
 * A node-side lock as holdLock gives it. `renewal: 'lost'` is a lease whose holder ended: the renewal says so
 * and the lock is lost from then on; `lost` overrides what the lock says (e.g. lost the moment a dump froze).
 */
export function fakeNodeLock(
  path: string,
  opts: { renewal?: Awaited<ReturnType<NodeLock['renew']>>; lost?: () => boolean } = {},
): NodeLock & { released: boolean } {
  let lost = false;
  const lock = {
    path,
    owner: 'fake',
    released: false,
    get lost() {
      return opts.lost?.() ?? lost;
    },
    renew: () => {
      if (opts.renewal === 'lost') lost = true;
      return Promise.resolve(opts.renewal ?? 'renewed');
    },
    release: () => ((lock.released = true), Promise.resolve()),
  };
  return lock;
}

/**
 * What preflight's memory-and-disk operation answers: `criu check`'s verdict (`Looks good.`, or CRIU's own
 * words with exit 1), then the figures it read; a figure left `null` is one the node did not print.
 */
export function preflightAnswer(
  opts: { criu?: 'ok' | { fails: string }; memKb?: number | null; diskBytes?: number | null } = {},
) {
  const memKb = opts.memKb === undefined ? 8_000_000 : opts.memKb;
  const diskBytes = opts.diskBytes === undefined ? 50 * 2 ** 30 : opts.diskBytes;
  const figures = `${memKb === null ? '' : `MEM_AVAILABLE_KB ${memKb}\n`}${diskBytes === null ? '' : `DISK_AVAIL_BYTES ${diskBytes}\n`}`;
  const criu = opts.criu ?? 'ok';
  return criu === 'ok' ? ok(`Looks good.\n${figures}`) : { code: 1, stdout: figures, stderr: `${criu.fails}\n` };
}

/**
 * What inspectTree gives for a process with these facts (the defaults of scripted-inspection's
 * inspectionOutput: an ordinary python3 in the session's own namespaces), as the typed value.
 */
export function inspectedTree(facts: InspectionFacts = {}): TreeInfo {
  const pid = facts.pid ?? 4242;
  const netNs = facts.netNs ?? '4026532100';
  return {
    pids: facts.tree ?? [pid],
    rssBytes: (facts.rssKb ?? 65536) * 1024,
    root: {
      identity: {
        bootId: facts.bootId ?? '53b88e37-904f-4ee1-8e18-0fb871a935bd',
        pidNs: facts.pidNs ?? '4026532201',
        startTime: facts.startTime ?? '123456',
      },
      comm: facts.comm ?? 'python3',
      state: facts.state ?? 'S',
      ppid: facts.ppid ?? 4000,
      flags: facts.flags ?? 0x400100,
      hasExe: facts.hasExe !== false,
      netNs,
      sessionNetNs: facts.sessionNetNs ?? netNs,
      sessionPids: facts.sessionPids ?? [9001, 9000, 800, 1],
    },
  };
}

export const phaseNames = (m: { phases: MigrationRecord['phases'] }): string[] =>
  m.phases.map((p) => `${p.name}:${p.ok ? 'ok' : 'fail'}`);

/** A recorded phase; without `ok` it is one that was under way when its worker died. */
export const aPhase = (
  name: MigrationRecord['phases'][number]['name'],
  ok?: boolean,
): MigrationRecord['phases'][number] => ({
  name,
  startedAt: '2026-01-01T00:00:00Z',
  ...(ok === undefined ? {} : { ok, endedAt: '2026-01-01T00:00:01Z' }),
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
    .on('memoryAndDisk', preflightAnswer())
    .on('cpuinfoDumpAndRead', ok(Buffer.from('cpuinfo image bytes').toString('base64')))
    .on('cpuinfoWriteAndCheck', ok())
    .on('holdLock', (_n, key) => fakeNodeLock(`/run/spotlift/locks/${key}.lock`))
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
