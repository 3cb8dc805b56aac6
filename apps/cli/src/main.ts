#!/usr/bin/env node
import { Command } from 'commander';
import { readFileSync } from 'node:fs';
import type { MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { ApiClient } from './api-client.js';
import { migrationSummary, migrationsTable, nodesTable, phaseLine, workloadsTable } from './format.js';

const FINISHED = new Set(['completed', 'rolled_back', 'failed', 'cancelled']);

const program = new Command()
  .name('spotlift')
  .description('Operate the spotlift orchestrator over its REST API')
  .option('--url <url>', 'orchestrator URL (env SPOTLIFT_URL)', process.env.SPOTLIFT_URL ?? 'http://127.0.0.1:8080')
  .option('--token <token>', 'API token (env SPOTLIFT_API_TOKEN)', process.env.SPOTLIFT_API_TOKEN)
  .option('--json', 'print JSON instead of tables');

function client(): ApiClient {
  const o = program.opts<{ url: string; token?: string }>();
  if (!o.token) throw new Error('no API token: set SPOTLIFT_API_TOKEN or pass --token');
  return new ApiClient(o.url, o.token);
}

function print(value: unknown, human: () => string): void {
  console.log(program.opts<{ json?: boolean }>().json ? JSON.stringify(value, null, 2) : human());
}

const nodes = program.command('nodes').description('nodes spotlift can reach over SSH');
nodes.command('list').action(async () => {
  const list = await client().request<NodeRecord[]>('GET', '/nodes');
  print(list, () => nodesTable(list));
});
nodes
  .command('add <file>')
  .description('register a node from a JSON spec (host key pinned)')
  .action(async (file: string) => {
    const node = await client().request<NodeRecord>('POST', '/nodes', JSON.parse(readFileSync(file, 'utf8')));
    print(node, () => nodesTable([node]));
  });
nodes.command('probe <id>').action(async (id: string) => {
  const node = await client().request<NodeRecord>('POST', `/nodes/${encodeURIComponent(id)}/probe`);
  print(node, () => nodesTable([node]) + (node.probe?.error ? `\n${node.probe.error}` : ''));
});

const workloads = program.command('workloads').description('process trees spotlift can move');
workloads.command('list').action(async () => {
  const list = await client().request<WorkloadRecord[]>('GET', '/workloads');
  print(list, () => workloadsTable(list));
});
workloads
  .command('add')
  .requiredOption('--name <name>')
  .requiredOption('--node <node>')
  .option('--pid <pid>', 'root pid of the tree', (v) => Number(v))
  .option('--pidfile <path>', 'pidfile on the node')
  .option('--priority <1-10>', 'how much an evacuation should try to save it (10 = critical)', (v) => Number(v))
  .option(
    '--path <path>',
    'a file or directory it uses, copied to the destination on every move (repeatable)',
    (v: string, prev: string[] = []) => [...prev, v],
  )
  .action(
    async (o: { name: string; node: string; pid?: number; pidfile?: string; priority?: number; path?: string[] }) => {
      const { path, ...rest } = o;
      const w = await client().request<WorkloadRecord>('POST', '/workloads', {
        ...rest,
        ...(path ? { paths: path } : {}),
      });
      print(w, () => workloadsTable([w]));
    },
  );
workloads
  .command('remove <id>')
  .description('forget a workload (nothing on its node is touched); refused while a job works on it')
  .action(async (id: string) => {
    await client().request('DELETE', `/workloads/${encodeURIComponent(id)}`);
    print({ removed: id }, () => `removed ${id}`);
  });

program
  .command('migrate <workload>')
  .description('move a workload to another node and follow its phases')
  .option('--to <node>', 'destination (chosen by spotlift when omitted)')
  .option('--keep-images', 'keep the image directories for forensics')
  .option('--strategy <name>', 'stop-and-copy (default), pre-copy, post-copy, hybrid or auto')
  .option('--budget-ms <ms>', 'longest acceptable freeze (pre-copy converges to it, auto chooses by it)', (v) =>
    Number(v),
  )
  .option('--deadline <iso-time>', 'when the source must be gone (bounds pre-copy rounds and auto)')
  .option('--no-wait', 'return once the migration is queued')
  .action(
    async (
      workload: string,
      o: { to?: string; keepImages?: boolean; strategy?: string; budgetMs?: number; deadline?: string; wait: boolean },
    ) => {
      const api = client();
      let m = await api.request<MigrationRecord>('POST', '/migrations', {
        workload,
        ...(o.to ? { destination: o.to } : {}),
        ...(o.keepImages ? { keepImages: true } : {}),
        ...(o.strategy ? { strategy: o.strategy } : {}),
        ...(o.budgetMs !== undefined ? { downtimeBudgetMs: o.budgetMs } : {}),
        ...(o.deadline ? { deadline: o.deadline } : {}),
      });
      if (!o.wait) return print(m, () => `queued ${m.id}: ${m.sourceNodeId} -> ${m.destinationNodeId}`);
      if (!program.opts<{ json?: boolean }>().json)
        console.log(`migration ${m.id}: ${m.sourceNodeId} -> ${m.destinationNodeId}`);
      let shown = 0;
      for (;;) {
        m = await api.request<MigrationRecord>('GET', `/migrations/${m.id}`);
        const done = m.phases.filter((p) => p.ok !== undefined);
        if (!program.opts<{ json?: boolean }>().json) for (const p of done.slice(shown)) console.log(phaseLine(p));
        shown = done.length;
        if (FINISHED.has(m.state)) break;
        await new Promise((r) => setTimeout(r, 200));
      }
      print(m, () => migrationSummary(m, { phases: false }));
      if (m.state !== 'completed') process.exitCode = 1;
    },
  );

const migrations = program.command('migrations').description('migration jobs');
migrations.command('list').action(async () => {
  const list = await client().request<MigrationRecord[]>('GET', '/migrations');
  print(list, () => migrationsTable(list));
});
migrations.command('show <id>').action(async (id: string) => {
  const m = await client().request<MigrationRecord>('GET', `/migrations/${encodeURIComponent(id)}`);
  print(m, () => migrationSummary(m));
});

program.parseAsync().catch((error: Error) => {
  console.error(`spotlift: ${error.message}`);
  process.exitCode = 1;
});
