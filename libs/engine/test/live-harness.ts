/**
 * Shared set-up of the live-strategy unit specs: an engine over in-memory records, a scripted node shell,
 * the qemu lab's and this lab's captured runs, and the answers every scripted migration needs.
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { encodeStatsImage, parseFeatureCheck } from '@spotlift/criu';
import type { DumpStats } from '@spotlift/domain';
import type { MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import {
  InMemoryPairLinks,
  InMemoryPostCopyTrials,
  InMemoryRecords,
  type PairLinks,
  type PostCopyTrials,
} from '@spotlift/store';
import {
  FakeProcessOps,
  type PostCopyReplay,
  type PreCopyReplay,
  ScriptedNodeShell,
  aMigration,
  aNode,
  aWorkload,
} from '@spotlift/testing';
import type { PhaseRecord } from '@spotlift/domain';
import { DirectoryStreamer } from '@spotlift/transport';
import { Clock } from '../src/clock.js';
import { DEFAULT_ENGINE_CONFIG } from '../src/engine.types.js';
import { MigrationEngine } from '../src/migration-engine.js';
import { NodeOps } from '../src/node-ops/node-ops.js';
import { DEFAULT_LIVE_CONFIG, type LiveConfig } from '../src/strategies/live-config.js';
import { TcpPageTransport } from '../src/transports/tcp-page-transport.js';

const here = (p: string) => new URL(p, import.meta.url);
export const criuFixture = (p: string): Buffer => readFileSync(here(`../../criu/test/fixtures/${p}`));
export const QEMU_PRECOPY = JSON.parse(readFileSync(here('./fixtures/qemu-precopy.json'), 'utf8')) as {
  preCopy: PreCopyReplay;
};
export const LAB_POSTCOPY = JSON.parse(readFileSync(here('./fixtures/lab-postcopy.json'), 'utf8')) as PostCopyReplay;

export interface LiveScenario {
  name: string;
  workload: { memMiB: number; hotMiB: number };
  job: Partial<MigrationRecord>;
  engine: Partial<LiveConfig>;
  expect: {
    state: MigrationRecord['state'];
    strategy: MigrationRecord['strategy'];
    rounds: number;
    stopReason?: string;
    finalPagesBelowRound1?: number;
    parentLinks: { dir: string; parent: string }[];
  };
  replay: { fixture: string; softDirty: boolean; postCopyTrial?: 'ok' | 'failed' };
}
export const SCENARIOS = (
  JSON.parse(readFileSync(here('./scenarios/live-migration.scenarios.json'), 'utf8')) as { scenarios: LiveScenario[] }
).scenarios;

/** A clock tests can set (deadlines, trial TTLs). */
export class TestClock extends Clock {
  constructor(public ms = Date.parse('2026-11-28T00:00:00Z')) {
    super();
  }
  override now(): Date {
    return new Date(this.ms);
  }
}

const TAR = Buffer.from('scripted tar stream');
const TAR_SHA = createHash('sha256').update(TAR).digest('hex');

export function liveSetup(
  opts: {
    migration?: Partial<MigrationRecord>;
    workload?: Partial<WorkloadRecord>;
    live?: Partial<LiveConfig>;
    trials?: PostCopyTrials;
    links?: PairLinks;
    clock?: TestClock;
    /** The node operations (default: NodeOps over `shell`); with FakeProcessOps, `shell` carries the image streams only. */
    ops?: FakeProcessOps;
  } = {},
) {
  const shell = new ScriptedNodeShell();
  const migrations = new InMemoryRecords<MigrationRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<NodeRecord>();
  const clock = opts.clock ?? new TestClock();
  const trials = opts.trials ?? new InMemoryPostCopyTrials(() => clock.ms);
  const links = opts.links ?? new InMemoryPairLinks();
  void nodes.save(aNode('node-a'));
  void nodes.save(aNode('node-b'));
  void migrations.save(aMigration(opts.migration));
  void workloads.save(aWorkload({ rssBytes: 256 * 2 ** 20, ...opts.workload }));
  const ops = opts.ops ? opts.ops.asNodeOps() : new NodeOps(shell);
  const live = { ...DEFAULT_LIVE_CONFIG, ...opts.live };
  const config = { ...DEFAULT_ENGINE_CONFIG, cleanupRetryMs: 0, cancelPollMs: 5 };
  const engine = new MigrationEngine(
    migrations,
    workloads,
    nodes,
    ops,
    new DirectoryStreamer(shell),
    clock,
    config,
    [new TcpPageTransport()],
    trials,
    live,
    links,
  );
  return { shell, engine, migrations, workloads, trials, links, clock };
}

/**
 * A job whose worker died in its last phase (`pages`: a lazy fill or transfer in flight): every earlier phase
 * done, the workload `migrating`, the restored tree's pid (777) in its pidfile on node-b.
 */
export function deadWorkerSetup(
  strategy: 'pre-copy' | 'post-copy',
  phases: PhaseRecord['name'][],
  ops?: FakeProcessOps,
) {
  const env = liveSetup({
    ...(ops ? { ops } : {}),
    migration: {
      strategy,
      state: 'running',
      phases: phases.map((name, i) => ({
        name,
        startedAt: '2026-11-28T00:00:00Z',
        ...(i < phases.length - 1 ? { ok: true } : {}),
      })),
    },
    workload: aWorkload({ state: 'migrating', tree: [4242] }),
  });
  if (ops) ops.on('readPidfile', 777, { node: 'node-b', when: (_n, path) => path.endsWith('/restored.pid') });
  else env.shell.on({ node: 'node-b', match: /restored\.pid/, reply: { stdout: 'PID 777\n' } });
  return env;
}

const said = (stdout = '', code = 0) => ({ code, stdout, stderr: '' });

/**
 * scriptCommon over the fake node operations: preflight, a plain restore, kills, stats-restore answered by
 * name; the image stream (tar, checksum) stays on `streams`.
 */
export function scriptCommonOps(ops: FakeProcessOps, streams: ScriptedNodeShell): FakeProcessOps {
  streams
    .on({ node: 'node-a', match: /(?:^|; )tar -C/, reply: { stdout: TAR.toString() } })
    .on({ node: 'node-b', match: /sha256sum/, reply: { stdout: `${TAR_SHA}\n` } });
  const MiB = 2 ** 20;
  return (
    ops
      .on('inspectTree', { pids: [4242], rssBytes: 256 * MiB }, { node: 'node-a' })
      .on('inspectTree', { pids: [777], rssBytes: 256 * MiB }, { node: 'node-b' })
      .on('memoryAndDisk', said(`Looks good.\nMEM_AVAILABLE_KB 8000000\nDISK_AVAIL_BYTES ${50 * 2 ** 30}\n`))
      .on('cpuinfoDumpAndRead', said(Buffer.from('cpuinfo image bytes').toString('base64')))
      .on('cpuinfoWriteAndCheck', said())
      .on('holdLock', (_n, key) => ({
        path: `/run/spotlift/locks/${key}.lock`,
        owner: 'fake',
        lost: false,
        renew: () => Promise.resolve('renewed' as const),
        release: () => Promise.resolve(),
      }))
      .on('makeDir', undefined)
      .on('restore', { ...said('RESTORED_PID 777\n'), startNs: 1_100_000_000_000n, endNs: 1_100_300_000_000n })
      .on('armRestore', (n) =>
        ops.armed('armRestore', n.id, {
          ...said('RESTORED_PID 777\n'),
          startNs: 1_100_000_000_000n,
          endNs: 1_100_300_000_000n,
        }),
      )
      // stop-and-copy's page-server (its dump is the replay's final one)
      .on('startPageServer', said(), { node: 'node-b' })
      .on('awaitPageServerExit', said())
      .on('stopPageServer', said())
      .on('waitCriuIdle', { idle: true, pids: [] })
      .on('killTree', 'gone')
      .on('resumeTree', 'S', { node: 'node-a' })
      .on('processState', 'S')
      .on('readFile', criuFixture('images/lazy/stats-restore'), {
        node: 'node-b',
        when: (_n, path) => path.endsWith('/stats-restore'),
      })
      .on('readFile', undefined)
      .on('tail', '')
      .on('readPidfile', undefined)
      // No timing marker files on these nodes, no lazy dump on the source, no daemon left to stop (a scripted
      // shell's empty answer to each).
      .on('fileMtimeNs', undefined)
      .on('lazyDumpWait', said())
      .on('lazyDumpStop', said())
      .on('lazyPagesStop', said())
      // no dirty-page sample where a spec gives none (the rate is then unknown)
      .on('sampleDirtyPages', said())
      // a feature nobody scripted: CRIU's empty answer with exit 0, read as the real check reads it
      .on('checkFeature', (_n, feature) => parseFeatureCheck(feature, '', 0))
      .on('removeDir', true)
      .on('removeEmptyDir', undefined)
      .on('keepLogs', 0)
  );
}

/** scriptPostCopyReplay over the fake node operations (the same captured run, answered by name). */
export function scriptPostCopyReplayOps(ops: FakeProcessOps, replay: PostCopyReplay): FakeProcessOps {
  const t0 = 2_000_000_000_000n;
  const at = (ms: number) => t0 + BigInt(Math.round(ms * 1e6));
  return ops
    .on('portFree', said('PORT_FREE\n'), { node: 'node-a' })
    .on('lazyDumpStart', said(`LAZY_READY ${t0} ${replay.seizedUs}\n`), { node: 'node-a' })
    .on('lazyDumpWait', said(`LAZY_DONE 0 ${at(replay.allPagesMs)}\n`), { node: 'node-a' })
    .on('lazyDumpStop', said())
    .on('startProbeProcess', said('PROBE_PID 5555\n'), { node: 'node-a' })
    .on('lazyPagesDaemon', said(), { node: 'node-b' })
    .on('lazyPagesStop', said())
    .on('restoreProbe', said('RESTORED_PID 888\n'), { node: 'node-b' })
    .on(
      'restore',
      { ...said('RESTORED_PID 777\n'), startNs: at(replay.restoredMs - 150), endNs: at(replay.restoredMs) },
      { node: 'node-b', when: (_n, _dir, o) => o.lazyPages === true },
    )
    .on(
      'lazyPagesWait',
      said(`PAGES_END ${at(replay.allPagesMs)}\n${replay.transferred.map((t) => `TRANSFERRED ${t}`).join('\n')}\n`),
      { node: 'node-b' },
    );
}

/** `criu check --feature F` answered by name from CRIU's real output (`out`, exit `code`) on `node`. */
export function scriptFeatureOps(ops: FakeProcessOps, node: string, feature: string, out: string, code: number) {
  return ops.on('checkFeature', parseFeatureCheck(feature, out, code), { node, when: (_n, f) => f === feature });
}

/** scriptSoftDirty over the fake node operations. */
export function scriptSoftDirtyOps(ops: FakeProcessOps, supported: boolean, node = 'node-a'): FakeProcessOps {
  return supported
    ? scriptFeatureOps(ops, node, 'mem_dirty_track', 'mem_dirty_track is supported\n', 0)
    : scriptFeatureOps(ops, node, 'mem_dirty_track', criuFixture('outputs/feature-mem_dirty_track.txt').toString(), 1);
}

/**
 * scriptPreCopyReplay over the fake node operations: round N of the pre-dump takes the captured time and
 * leaves the captured stats-dump in its round-N directory, the final dump likewise; page-servers start, exit
 * and stop.
 */
export function scriptPreCopyReplayOps(ops: FakeProcessOps, replay: PreCopyReplay, node = 'node-a'): FakeProcessOps {
  const round = (n: number) => replay.rounds[Math.min(n, replay.rounds.length) - 1]!;
  let clock = 1_000_000_000_000n;
  const timed = (ms: number) => {
    const startNs = clock;
    clock += BigInt(Math.round(ms * 1e6)) + 50_000_000n;
    return { ...said(), startNs, endNs: startNs + BigInt(Math.round(ms * 1e6)) };
  };
  const image = (stats: DumpStats) => Buffer.from(encodeStatsImage({ dump: stats }));
  const roundOf = (path: string) => Number(/\/round-(\d+)(?:\/|$)/.exec(path)?.[1] ?? 1);
  return ops
    .on('preDump', (_n, _pid, dir) => timed(round(roundOf(dir)).ms), { node })
    .on('readFile', (_n, path) => image(round(roundOf(path)).stats), {
      node,
      when: (_n, path) => /\/round-\d+\/stats-dump$/.test(path),
    })
    .on('dump', () => timed(replay.final.ms), { node })
    .on('readFile', image(replay.final.stats), { node, when: (_n, path) => path.endsWith('/src/stats-dump') })
    .on('startPageServerWithParent', said())
    .on('awaitPageServerExit', said())
    .on('stopPageServer', said());
}
