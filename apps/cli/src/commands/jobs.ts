import type { Command } from 'commander';
import { createWriteStream } from 'node:fs';
import { rm } from 'node:fs/promises';
import type { CheckpointRecord, EvacuationRecord, MigrationRecord } from '@spotlift/domain';
import type { CliContext } from '../cli-context.js';
import { EXIT, exitCodeOfMigration, UsageError } from '../exit-codes.js';
import {
  checkpointSummary,
  checkpointsTable,
  evacuationSummary,
  evacuationsTable,
  migrationSummary,
  migrationsTable,
} from '../format.js';
import type { ApiClient } from '../api-client.js';
import { inspectTables, searchTable, type InspectAnswer, type InspectSections } from '../forensics-format.js';
import { followEvents } from '../event-stream-client.js';
import { type ListOptions, listOptions, moreHint, readList } from '../list-pages.js';
import {
  type EventFeed,
  EvacuationProgress,
  evacuationDone,
  followRecord,
  MigrationProgress,
  migrationDone,
  type RecordUpdates,
} from '../progress.js';
import { number } from './fleet.js';

const enc = encodeURIComponent;

/** Where `migrate` and `evacuate --wait` get their updates from; the event stream can replace the polling. */
export interface UpdateSources {
  migration?: RecordUpdates<MigrationRecord>;
  evacuation?: RecordUpdates<EvacuationRecord>;
}

/** The event stream as `followRecord` wants it, with this CLI's URL, token and CA. */
const streamOf =
  (cli: CliContext): EventFeed =>
  (filter, signal) =>
    followEvents(cli.connection(), { filter, signal });

/** A migration's updates: read again at each event about it (not polled), at least every 5 s. */
const followMigration = (api: ApiClient, cli: CliContext): RecordUpdates<MigrationRecord> =>
  followRecord<MigrationRecord>(api, (id) => `/migrations/${enc(id)}`, migrationDone, streamOf(cli), 'migration');
const followEvacuation = (api: ApiClient, cli: CliContext): RecordUpdates<EvacuationRecord> =>
  followRecord<EvacuationRecord>(api, (id) => `/evacuations/${enc(id)}`, evacuationDone, streamOf(cli), 'evacuation');

export function registerMigrations(program: Command, cli: CliContext, sources: UpdateSources = {}): void {
  program
    .command('migrate <workload>')
    .description('move a workload to another node and follow its phases (exit 0 moved, 3 rolled back, 1 failed)')
    .option('--to <node>', 'destination (chosen by spotlift when omitted)')
    .option('--strategy <name>', 'stop-and-copy (default), pre-copy, post-copy, hybrid or auto')
    .option('--transport <name>', 'page traffic: tls (default), tcp or ssh')
    .option(
      '--budget-ms <ms>',
      'longest acceptable freeze (pre-copy converges to it, auto chooses by it)',
      number('--budget-ms'),
    )
    .option('--deadline <iso-time>', 'when the source must be gone (bounds pre-copy rounds and auto)')
    .option('--max-rounds <n>', 'pre-copy rounds at most', number('--max-rounds'))
    .option('--keep-images', 'keep the image directories for forensics')
    .option('--no-wait', 'return once the migration is queued')
    .action(
      async (
        workload: string,
        o: {
          to?: string;
          strategy?: string;
          transport?: string;
          budgetMs?: number;
          deadline?: string;
          maxRounds?: number;
          keepImages?: boolean;
          wait: boolean;
        },
      ) => {
        const api = cli.client();
        let m = await api.request<MigrationRecord>('POST', '/migrations', {
          workload,
          ...(o.to ? { destination: o.to } : {}),
          ...(o.strategy ? { strategy: o.strategy } : {}),
          ...(o.transport ? { transport: o.transport } : {}),
          ...(o.budgetMs !== undefined ? { downtimeBudgetMs: o.budgetMs } : {}),
          ...(o.deadline ? { deadline: o.deadline } : {}),
          ...(o.maxRounds !== undefined ? { maxRounds: o.maxRounds } : {}),
          ...(o.keepImages ? { keepImages: true } : {}),
        });
        if (!o.wait) return cli.print(m, () => `queued ${m.id}: ${m.sourceNodeId} -> ${m.destinationNodeId}`);
        cli.note(`migration ${m.id}: ${m.sourceNodeId} -> ${m.destinationNodeId} (${m.destinationReason})`);
        const progress = new MigrationProgress({
          out: (s) => cli.note(s),
          ...(cli.io.live && !cli.json ? { live: cli.io.live } : {}),
        });
        for await (const rec of (sources.migration ?? followMigration(api, cli))(m.id)) {
          m = rec;
          progress.update(m);
        }
        progress.end();
        cli.print(m, () => migrationSummary(m, { phases: false }));
        cli.exitCode = exitCodeOfMigration(m.state);
      },
    );

  const migrations = program.command('migrations').description('migration jobs');
  listOptions(
    migrations.command('ls').alias('list').description('migrations, newest first, with their state and downtime'),
    ['state', 'node', 'workload'],
  ).action(async (o: ListOptions) => {
    const { items: list, more } = await readList<MigrationRecord>(cli.client(), '/migrations', o);
    cli.print(list, () => migrationsTable(list));
    moreHint(more);
  });
  migrations
    .command('show <migration>')
    .description('phases with times, CRIU stats, bytes, downtime, rollback reason')
    .action(async (id: string) => {
      const m = await cli.client().request<MigrationRecord>('GET', `/migrations/${enc(id)}`);
      cli.print(m, () => migrationSummary(m));
    });
  migrations
    .command('cancel <migration>')
    .description('a queued one never starts; a running one rolls back at its next safe point')
    .action(async (id: string) => {
      const a = await cli
        .client()
        .request<{ state: string; cancel: string; message: string }>('POST', `/migrations/${enc(id)}/cancel`);
      cli.print(a, () => a.message);
    });
}

export function registerEvacuations(program: Command, cli: CliContext, sources: UpdateSources = {}): void {
  program
    .command('evacuate <node>')
    .description('move every workload off a node before a deadline, planned like a spot notice (operator)')
    .option('--deadline <iso-time>', 'when the node must be empty')
    .option('--in <seconds>', 'deadline this many seconds from now (default 300)', number('--in'))
    .option('--reason <text>', 'recorded on the evacuation')
    .option('--wait', 'follow its jobs until it ends (exit 0 all moved, 1 otherwise)')
    .action(async (node: string, o: { deadline?: string; in?: number; reason?: string; wait?: boolean }) => {
      if (o.deadline !== undefined && o.in !== undefined) throw new UsageError('give --deadline or --in, not both');
      const api = cli.client();
      const answer = await api.request<{ created: boolean; evacuation: EvacuationRecord }>('POST', '/evacuations', {
        node,
        ...(o.deadline !== undefined ? { deadline: o.deadline } : { secondsUntil: o.in ?? 300 }),
        ...(o.reason ? { reason: o.reason } : {}),
      });
      let e = answer.evacuation;
      if (!o.wait)
        return cli.print(answer, () =>
          answer.created
            ? `evacuation ${e.id} of ${node} raised, deadline ${e.deadline}`
            : `${node} is being evacuated already: joined ${e.id}, deadline ${e.deadline}`,
        );
      cli.note(`evacuation ${e.id} of ${node}, deadline ${e.deadline}`);
      const progress = new EvacuationProgress({ out: (s) => cli.note(s) });
      for await (const rec of (sources.evacuation ?? followEvacuation(api, cli))(e.id)) {
        e = rec;
        progress.update(e);
      }
      cli.print(e, () => evacuationSummary(e));
      const o2 = e.outcome;
      cli.exitCode = e.state === 'completed' && o2 && o2.missed === 0 && o2.failed === 0 ? EXIT.ok : EXIT.failed;
    });

  const evacuations = program.command('evacuations').description('evacuations raised by notices or by hand');
  listOptions(evacuations.command('ls').alias('list').description('evacuations, newest first'), [
    'state',
    'node',
  ]).action(async (o: ListOptions) => {
    const { items: list, more } = await readList<EvacuationRecord>(cli.client(), '/evacuations', o);
    cli.print(list, () => evacuationsTable(list));
    moreHint(more);
  });
  evacuations
    .command('show <evacuation>')
    .description('notice, deadline, the plan, each job with its migration and downtime, the outcome')
    .action(async (id: string) => {
      const e = await cli.client().request<EvacuationRecord>('GET', `/evacuations/${enc(id)}`);
      cli.print(e, () => evacuationSummary(e));
    });
}

export function registerCheckpoints(program: Command, cli: CliContext): void {
  const checkpoints = program.command('checkpoints').description('workloads stored on a storage node');
  listOptions(checkpoints.command('ls').alias('list').description('checkpoints, newest first'), [
    'state',
    'node',
    'workload',
  ]).action(async (o: ListOptions) => {
    const { items: list, more } = await readList<CheckpointRecord>(cli.client(), '/checkpoints', o);
    cli.print(list, () => checkpointsTable(list));
    moreHint(more);
  });
  checkpoints
    .command('show <checkpoint>')
    .description('state, storage node and image directory, phases, sizes, the restore')
    .action(async (id: string) => {
      const c = await cli.client().request<CheckpointRecord>('GET', `/checkpoints/${enc(id)}`);
      cli.print(c, () => checkpointSummary(c));
    });
  checkpoints
    .command('create <workload>')
    .description('checkpoint a workload to a storage node: it runs nowhere until restored')
    .option('--storage <node>', 'storage node (default: evacuation.storageNodeId)')
    .option('--transport <name>', 'page traffic: tls (default), tcp or ssh')
    .option('--forensic', 'a copy of the running workload (dump --leave-running): it keeps running')
    .action(async (workload: string, o: { storage?: string; transport?: string; forensic?: boolean }) => {
      const { forensic, ...rest } = o;
      const body = { workload, ...rest, ...(forensic ? { mode: 'forensic' } : {}) };
      const c = await cli.client().request<CheckpointRecord>('POST', '/checkpoints', body);
      cli.print(c, () => `checkpoint ${c.id} of ${workload} queued (storage ${c.storageNodeId})`);
    });
  checkpoints
    .command('inspect <checkpoint>')
    .description('what the stored images hold: processes, open files, sockets, mappings (admin; audited)')
    .option('--tree', 'the process tree only')
    .option('--files', 'open files only')
    .option('--sockets', 'sockets only')
    .option('--mappings', 'memory mappings only')
    .action(async (id: string, o: InspectSections) => {
      const a = await cli.client().request<InspectAnswer>('GET', `/checkpoints/${enc(id)}/inspect`);
      cli.print(a, () => inspectTables(a, o));
    });
  checkpoints
    .command('export <checkpoint>')
    .description('download the checkpoint as a tar in Podman’s layout (admin; audited); mode 0600: it holds memory')
    .requiredOption('-o, --output <file>', 'where to write the archive')
    .action(async (id: string, o: { output: string }) => {
      // wx: never over an existing file; a failed download leaves no partial archive behind.
      const out = createWriteStream(o.output, { mode: 0o600, flags: 'wx' });
      const bytes = await cli
        .client()
        .download(`/checkpoints/${enc(id)}/export`, out)
        .catch(async (error: Error) => {
          out.destroy();
          if ((error as NodeJS.ErrnoException).code !== 'EEXIST') await rm(o.output, { force: true });
          throw error;
        });
      cli.print({ id, output: o.output, bytes }, () => `checkpoint ${id} exported to ${o.output} (${bytes} bytes)`);
    });
  checkpoints
    .command('search <checkpoint> <pattern>')
    .description('search the dumped memory; each hit with process, address and mapping (admin; audited)')
    .option('--hex', 'the pattern is hex digits (two per byte)')
    .option('--max-hits <n>', 'stop after n hits (default 100)', Number)
    .action(async (id: string, pattern: string, o: { hex?: boolean; maxHits?: number }) => {
      const body = { pattern, encoding: o.hex ? 'hex' : 'utf8', ...(o.maxHits ? { maxHits: o.maxHits } : {}) };
      const r = await cli
        .client()
        .request<Parameters<typeof searchTable>[0]>('POST', `/checkpoints/${enc(id)}/search`, body);
      cli.print(r, () => searchTable(r));
    });
  checkpoints
    .command('restore <checkpoint>')
    .description('run a stored checkpoint again on a node (chosen by placement when --to is omitted)')
    .option('--to <node>', 'destination')
    .action(async (id: string, o: { to?: string }) => {
      const c = await cli
        .client()
        .request<CheckpointRecord>('POST', `/checkpoints/${enc(id)}/restore`, o.to ? { destination: o.to } : {});
      cli.print(c, () => `checkpoint ${c.id}: restore queued on ${c.restore?.destinationNodeId ?? '?'}`);
    });
  checkpoints
    .command('rm <checkpoint>')
    .alias('remove')
    .description('remove the images from the storage node, then the record (admin)')
    .action(async (id: string) => {
      const r = await cli.client().request<{ id: string; imageDir: string }>('DELETE', `/checkpoints/${enc(id)}`);
      cli.print(r, () => `checkpoint ${id} removed (${r.imageDir})`);
    });
}
