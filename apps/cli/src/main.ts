#!/usr/bin/env node
import { Command } from 'commander';
import { readFileSync, realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import type { ApiTokenRecord, AuditEntry, MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { ApiClient } from './api-client.js';
import {
  auditTable,
  migrationSummary,
  migrationsTable,
  nodesTable,
  phaseLine,
  tokensTable,
  workloadsTable,
} from './format.js';
import { addWatchCommand } from './watch.js';

const FINISHED = new Set(['completed', 'rolled_back', 'failed', 'cancelled']);

export const program = new Command()
  .name('spotlift')
  .description('Operate the spotlift orchestrator over its REST API')
  .option('--url <url>', 'orchestrator URL (default: SPOTLIFT_URL, else http://127.0.0.1:8080)')
  // No commander default from the environment here: --help prints defaults, and this one is a secret.
  .option('--token <token>', 'API token (default: from SPOTLIFT_API_TOKEN)')
  .option('--ca <file>', "PEM CA certificate(s) of the orchestrator's HTTPS (default: SPOTLIFT_CA)")
  .option('--json', 'print JSON instead of tables');

function client(): ApiClient {
  const o = program.opts<{ url?: string; token?: string; ca?: string }>();
  const token = o.token ?? process.env.SPOTLIFT_API_TOKEN;
  if (!token) throw new Error('no API token: set SPOTLIFT_API_TOKEN or pass --token');
  const ca = o.ca ?? process.env.SPOTLIFT_CA;
  return new ApiClient(o.url ?? process.env.SPOTLIFT_URL ?? 'http://127.0.0.1:8080', token, {
    ...(ca ? { ca: readFileSync(ca) } : {}),
  });
}

addWatchCommand(program, () => {
  const o = program.opts<{ url?: string; token?: string; ca?: string }>();
  const token = o.token ?? process.env.SPOTLIFT_API_TOKEN;
  if (!token) throw new Error('no API token: set SPOTLIFT_API_TOKEN or pass --token');
  const ca = o.ca ?? process.env.SPOTLIFT_CA;
  return {
    url: o.url ?? process.env.SPOTLIFT_URL ?? 'http://127.0.0.1:8080',
    token,
    ...(ca ? { ca: readFileSync(ca) } : {}),
  };
});

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
nodes
  .command('clear-notice <id>')
  .description('a draining or terminating node whose notice was spurious becomes ready again')
  .action(async (id: string) => {
    const node = await client().request<NodeRecord>('POST', `/nodes/${encodeURIComponent(id)}/clear-notice`);
    print(node, () => nodesTable([node]));
  });
nodes
  .command('remove <id>')
  .description('forget a node (refused while a workload, migration or checkpoint refers to it)')
  .action(async (id: string) => {
    await client().request('DELETE', `/nodes/${encodeURIComponent(id)}`);
    print({ removed: id }, () => `node ${id} removed`);
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

const tokens = program.command('tokens').description('API tokens and their roles (admin)');
tokens
  .command('create')
  .description('create a token; its secret is printed once, here')
  .requiredOption('--name <name>', 'who or what holds it (e.g. grafana, oncall, agent-node-a)')
  .requiredOption('--role <role>', 'viewer, operator, admin, or agent (with --node)')
  .option('--node <node>', 'the one node an agent token pushes notices for')
  .option('--expires <iso-time>', 'when it stops working')
  .action(async (o: { name: string; role: string; node?: string; expires?: string }) => {
    const t = await client().request<Omit<ApiTokenRecord, 'secretSha256'> & { token: string }>('POST', '/tokens', {
      name: o.name,
      role: o.role,
      ...(o.node ? { nodeId: o.node } : {}),
      ...(o.expires ? { expiresAt: o.expires } : {}),
    });
    print(t, () => `${tokensTable([t])}\n\n${t.token}\n(shown once: store it now)`);
  });
tokens.command('list').action(async () => {
  const list = await client().request<Array<Omit<ApiTokenRecord, 'secretSha256'>>>('GET', '/tokens');
  print(list, () => tokensTable(list));
});
tokens.command('revoke <id>').action(async (id: string) => {
  const t = await client().request<Omit<ApiTokenRecord, 'secretSha256'>>('DELETE', `/tokens/${encodeURIComponent(id)}`);
  print(t, () => tokensTable([t]));
});

program
  .command('audit')
  .description('who changed what, and who was refused, newest first (admin)')
  .option('--limit <n>', 'entries (1..1000)', (v) => Number(v), 50)
  .action(async (o: { limit: number }) => {
    const list = await client().request<AuditEntry[]>('GET', `/audit?limit=${o.limit}`);
    print(list, () => auditTable(list));
  });

// Parse only when run as the CLI, not when a test imports the program.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  program.parseAsync().catch((error: Error) => {
    console.error(`spotlift: ${error.message}`);
    process.exitCode = 1;
  });
}
