/**
 * Shared set-up of the engine's unit specs: in-memory records, a scripted node shell answering like healthy
 * lab nodes (stats images captured from real CRIU runs), and an engine over them.
 */
import { createHash } from 'node:crypto';
import type { MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { InMemoryMigrationFlags, InMemoryRecords } from '@spotlift/store';
import {
  DEFAULT_ENGINE_CONFIG,
  type EngineConfig,
  MigrationEngine,
  NodeOps,
  type RunControl,
  SystemClock,
} from '@spotlift/engine';
import { DirectoryStreamer } from '@spotlift/transport';
import { aMigration, aNode, aWorkload } from './builders.js';
import { TAR, criuFixture } from './fake-engine-kit.js';
import { ScriptedNodeShell } from './scripted-node-shell.js';
import { scriptHealthyPreflight } from './scripted-preflight.js';

const TAR_SHA = createHash('sha256').update(TAR).digest('hex');

export interface EngineKit {
  shell: ScriptedNodeShell;
  engine: MigrationEngine;
  migrations: InMemoryRecords<MigrationRecord>;
  workloads: InMemoryRecords<WorkloadRecord>;
  nodes: InMemoryRecords<NodeRecord>;
  flags: InMemoryMigrationFlags;
  /** A RunControl over `flags` for migration mig-1. */
  control: RunControl;
}

export function engineKit(
  opts: {
    migration?: MigrationRecord;
    workload?: WorkloadRecord;
    nodes?: NodeRecord[];
    config?: Partial<EngineConfig>;
    shell?: ScriptedNodeShell;
  } = {},
): EngineKit {
  const shell = opts.shell ?? new ScriptedNodeShell();
  const migrations = new InMemoryRecords<MigrationRecord>();
  const workloads = new InMemoryRecords<WorkloadRecord>();
  const nodes = new InMemoryRecords<NodeRecord>();
  for (const n of opts.nodes ?? [aNode('node-a'), aNode('node-b')]) void nodes.save(n);
  void migrations.save(opts.migration ?? aMigration());
  void workloads.save(opts.workload ?? aWorkload());
  const config = { ...DEFAULT_ENGINE_CONFIG, cleanupRetryMs: 0, cancelPollMs: 5, ...opts.config };
  const engine = new MigrationEngine(
    migrations,
    workloads,
    nodes,
    new NodeOps(shell),
    new DirectoryStreamer(shell),
    new SystemClock(),
    config,
  );
  const flags = new InMemoryMigrationFlags();
  const control: RunControl = {
    cancelRequested: () => flags.cancelRequested('mig-1'),
    claimCommit: () => flags.claimCommit('mig-1'),
  };
  return { shell, engine, migrations, workloads, nodes, flags, control };
}

/** The happy path's answers; tests override single steps by adding rules before these. */
export function scriptHappyPath(shell: ScriptedNodeShell): void {
  scriptHealthyPreflight(shell)
    .on({ node: 'node-a', match: /echo TREE/, reply: { stdout: 'TREE 4242 4243\nRSS_KB 65536\n' } })
    .on({ node: 'node-b', match: /echo TREE/, reply: { stdout: 'TREE 777 778\nRSS_KB 65536\n' } })
    .on({ node: 'node-a', match: /criu dump/, reply: { stdout: 'SPOTLIFT_TIMES 1000000000000 1001000000000 0\n' } })
    .on({ node: 'node-a', match: /(?:^|; )tar -C/, reply: { stdout: TAR.toString() } })
    .on({ node: 'node-b', match: /sha256sum/, reply: { stdout: `${TAR_SHA}\n` } })
    .on({
      node: 'node-b',
      match: /criu restore/,
      reply: { stdout: 'RESTORED_PID 777\nSPOTLIFT_TIMES 1001100000000 1001300000000 0\n' },
    })
    .on({ node: 'node-a', match: /kill -KILL/, reply: { stdout: 'STATE gone\n' } })
    .on({ node: 'node-a', match: /kill -CONT/, reply: { stdout: 'STATE S\n' } })
    .on({ node: 'node-b', match: /kill -KILL/, reply: { stdout: 'STATE gone\n' } })
    // After the kill rules: killTree's script also reads State.
    .on({ node: 'node-b', match: /State:/, reply: { stdout: 'STATE S\n' } })
    .on({
      node: 'node-a',
      match: /base64 -w0 .*stats-dump/,
      reply: { stdout: criuFixture('images/page-server/stats-dump').toString('base64') },
    })
    .on({
      node: 'node-b',
      match: /base64 -w0 .*stats-restore/,
      reply: { stdout: criuFixture('images/page-server/stats-restore').toString('base64') },
    });
}
