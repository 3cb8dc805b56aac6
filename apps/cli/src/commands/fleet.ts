import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import type { GuardReport, NodeRecord, WorkloadRecord } from '@spotlift/domain';
import type { CliContext } from '../cli-context.js';
import { UsageError } from '../exit-codes.js';
import { nodeDetails, nodesTable, workloadDetails, workloadsTable } from '../format.js';
import { guardDetails } from '../guard-format.js';
import { type ListOptions, listOptions, moreHint, readList } from '../list-pages.js';

const enc = encodeURIComponent;

export function number(name: string): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (v.trim() === '' || !Number.isFinite(n)) throw new UsageError(`${name} must be a number, not '${v}'`);
    return n;
  };
}

export function registerNodes(program: Command, cli: CliContext): void {
  const nodes = program.command('nodes').description('nodes spotlift reaches over SSH');
  listOptions(nodes.command('ls').alias('list').description('nodes with their state and last probe'), ['state']).action(
    async (o: ListOptions) => {
      const { items: list, more } = await readList<NodeRecord>(cli.client(), '/nodes', o);
      cli.print(list, () => nodesTable(list));
      moreHint(more);
    },
  );
  nodes
    .command('show <node>')
    .description('one node: address, state, CRIU, kernel, CPU, memory, disk')
    .action(async (id: string) => {
      const n = await cli.client().request<NodeRecord>('GET', `/nodes/${enc(id)}`);
      cli.print(n, () => nodeDetails(n));
    });
  nodes
    .command('add <file>')
    .description('register a node from a JSON spec {id, host, port, user, hostKey, ...} (admin; probed at once)')
    .action(async (file: string) => {
      let spec: unknown;
      try {
        spec = JSON.parse(readFileSync(file, 'utf8'));
      } catch (error) {
        throw new UsageError(`cannot read a JSON node spec from ${file}: ${(error as Error).message}`);
      }
      const node = await cli.client().request<NodeRecord>('POST', '/nodes', spec);
      cli.print(node, () => nodesTable([node]));
    });
  nodes
    .command('probe <node>')
    .description('probe again over SSH (admin)')
    .action(async (id: string) => {
      const node = await cli.client().request<NodeRecord>('POST', `/nodes/${enc(id)}/probe`);
      cli.print(node, () => nodesTable([node]) + (node.probe?.error ? `\n${node.probe.error}` : ''));
    });
  nodes
    .command('drain <node>')
    .description('take a node out of placement: nothing new lands on it, nothing on it moves')
    .action(async (id: string) => {
      const node = await cli.client().request<NodeRecord>('POST', `/nodes/${enc(id)}/drain`);
      cli.print(node, () =>
        node.drain ? `node ${id} drained` : `node ${id} is ${node.state} (a notice holds it; left as it is)`,
      );
    });
  nodes
    .command('lost <node>')
    .description('confirm a node gone for good: once also silent, it is fenced and its guarded workloads restored')
    .option('--reason <text>', 'recorded on the node and in the audit log')
    .action(async (id: string, o: { reason?: string }) => {
      const node = await cli
        .client()
        .request<NodeRecord>('POST', `/nodes/${enc(id)}/lost`, o.reason ? { reason: o.reason } : {});
      cli.print(
        node,
        () => `node ${id} confirmed lost by ${node.lost?.by} (${node.state}${node.fence ? ', fenced' : ''})`,
      );
    });
  nodes
    .command('undrain <node>')
    .description('lift a drain: ready again, unless a notice holds the node')
    .action(async (id: string) => {
      const node = await cli.client().request<NodeRecord>('POST', `/nodes/${enc(id)}/undrain`);
      cli.print(node, () =>
        node.state === 'draining' || node.state === 'terminating'
          ? `node ${id} is still ${node.state}: a notice holds it (spotlift nodes clear-notice ${id} if it was spurious)`
          : `node ${id} is ${node.state}`,
      );
    });
  nodes
    .command('clear-notice <node>')
    .description('a draining or terminating node whose notice was spurious becomes ready again (admin)')
    .action(async (id: string) => {
      const node = await cli.client().request<NodeRecord>('POST', `/nodes/${enc(id)}/clear-notice`);
      cli.print(node, () => nodesTable([node]));
    });
  nodes
    .command('rm <node>')
    .alias('remove')
    .description('forget a node (admin; refused while a workload, migration or checkpoint refers to it)')
    .action(async (id: string) => {
      await cli.client().request('DELETE', `/nodes/${enc(id)}`);
      cli.print({ removed: id }, () => `node ${id} removed`);
    });
}

export function registerWorkloads(program: Command, cli: CliContext): void {
  const workloads = program.command('workloads').description('process trees spotlift can move');
  listOptions(workloads.command('ls').alias('list').description('workloads with their node, pid, memory and state'), [
    'state',
    'node',
  ]).action(async (o: ListOptions) => {
    const { items: list, more } = await readList<WorkloadRecord>(cli.client(), '/workloads', o);
    cli.print(list, () => workloadsTable(list));
    moreHint(more);
  });
  workloads
    .command('show <workload>')
    .description('one workload as stored, and what its node shows now')
    .action(async (id: string) => {
      const w = await cli
        .client()
        .request<WorkloadRecord & { observed?: { state: string } }>('GET', `/workloads/${enc(id)}`);
      cli.print(w, () => workloadDetails(w));
    });
  workloads
    .command('add')
    .description('register a process tree by root pid or pidfile, or a Podman container by name or id')
    .option('--name <name>', "required for a process; a container's defaults to its Podman name")
    .requiredOption('--node <node>')
    .option('--pid <pid>', 'root pid of the tree', number('--pid'))
    .option('--pidfile <path>', 'pidfile on the node')
    .option('--container <name|id>', 'a running Podman container on the node (kind podman)')
    .option('--priority <1-10>', 'how much an evacuation should try to save it (10 = critical)', number('--priority'))
    .option(
      '--path <path>',
      'a file or directory it uses, copied to the destination on every move (repeatable)',
      (v: string, prev: string[] = []) => [...prev, v],
    )
    .action(
      async (o: {
        name?: string;
        node: string;
        pid?: number;
        pidfile?: string;
        container?: string;
        priority?: number;
        path?: string[];
      }) => {
        const given = [o.pid, o.pidfile, o.container].filter((v) => v !== undefined).length;
        if (given !== 1) throw new UsageError('give one of --pid, --pidfile or --container');
        if (o.container === undefined && o.name === undefined) throw new UsageError('a process needs --name');
        const { path, ...rest } = o;
        const w = await cli.client().request<WorkloadRecord>('POST', '/workloads', {
          ...rest,
          ...(o.container !== undefined ? { kind: 'podman' } : {}),
          ...(path ? { paths: path } : {}),
        });
        cli.print(w, () => workloadsTable([w]));
      },
    );
  workloads
    .command('guard <workload>')
    .description('guard mode: show RPO and freeze cost; --interval turns it on (or changes it), --off ends it')
    .option('--interval <s>', 'a --leave-running checkpoint every this many seconds', number('--interval'))
    .option('--keep <n>', 'guard checkpoints kept on the storage node', number('--keep'))
    .option('--max-freeze-ms <ms>', 'skip a checkpoint predicted to freeze longer', number('--max-freeze-ms'))
    .option('--off', 'end guard mode (its checkpoints stay until deleted)')
    .action(async (id: string, o: { interval?: number; keep?: number; maxFreezeMs?: number; off?: boolean }) => {
      const path = `/workloads/${enc(id)}/guard`;
      if (o.off) {
        await cli.client().request('DELETE', path);
        return cli.print({ id, guard: null }, () => `guard mode of ${id} ended`);
      }
      if (o.interval === undefined && (o.keep !== undefined || o.maxFreezeMs !== undefined))
        throw new UsageError('--keep and --max-freeze-ms go with --interval');
      if (o.interval !== undefined) {
        await cli.client().request('PUT', path, {
          intervalSeconds: o.interval,
          ...(o.keep !== undefined ? { keep: o.keep } : {}),
          ...(o.maxFreezeMs !== undefined ? { maxFreezeMs: o.maxFreezeMs } : {}),
        });
      }
      const report = await cli.client().request<GuardReport>('GET', path);
      cli.print(report, () => guardDetails(id, report));
    });
  workloads
    .command('refresh <workload>')
    .description('read its tree and memory on the node again')
    .action(async (id: string) => {
      const w = await cli.client().request<WorkloadRecord>('POST', `/workloads/${enc(id)}/refresh`);
      cli.print(w, () => workloadDetails(w));
    });
  workloads
    .command('rm <workload>')
    .alias('remove')
    .description('forget a workload (nothing on its node is touched); refused while a job works on it')
    .action(async (id: string) => {
      await cli.client().request('DELETE', `/workloads/${enc(id)}`);
      cli.print({ removed: id }, () => `workload ${id} removed`);
    });
}
