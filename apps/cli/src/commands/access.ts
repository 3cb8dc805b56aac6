import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { Writable } from 'node:stream';
import type { ApiTokenRecord, AuditEntry } from '@spotlift/domain';
import { ApiClient } from '../api-client.js';
import { DEFAULT_URL, readConfigFile, writeConfigFile } from '../cli-config.js';
import type { CliContext } from '../cli-context.js';
import { UsageError } from '../exit-codes.js';
import { auditTable, tokensTable } from '../format.js';
import { number } from './fleet.js';

type TokenView = Omit<ApiTokenRecord, 'secretSha256'>;

/** One line from stdin; on a terminal it is not echoed (a token must not stay on the screen). */
async function readSecret(prompt: string): Promise<string> {
  const tty = process.stdin.isTTY === true;
  if (tty) process.stderr.write(prompt);
  const muted = new Writable({ write: (_c, _e, done) => done() });
  const rl = createInterface({ input: process.stdin, output: muted, terminal: tty });
  try {
    for await (const line of rl) return line.trim();
    return '';
  } finally {
    rl.close();
    if (tty) process.stderr.write('\n');
  }
}

export function registerAccess(program: Command, cli: CliContext): void {
  program
    .command('login')
    .description('check a token against the orchestrator and store it with the URL in the config file (0600)')
    .option('--token-stdin', 'read the token from stdin (else --token, SPOTLIFT_API_TOKEN, or a prompt)')
    .action(async (o: { tokenStdin?: boolean }) => {
      const path = cli.configPath();
      const file = readConfigFile(path, cli.io.err);
      const flags = cli.opts;
      const url = flags.url ?? cli.io.env.SPOTLIFT_URL ?? file.url ?? DEFAULT_URL;
      // Stored absolute: later commands run from other directories.
      const givenCa = flags.ca ?? cli.io.env.SPOTLIFT_CA ?? file.ca;
      const ca = givenCa ? resolve(givenCa) : undefined;
      const token = o.tokenStdin
        ? await readSecret('')
        : (flags.token ?? cli.io.env.SPOTLIFT_API_TOKEN ?? (await readSecret('API token: ')));
      if (!token) throw new UsageError('no token given');
      let parsed: URL;
      try {
        parsed = new URL(url);
      } catch {
        throw new UsageError(`'${url}' is not a URL`);
      }
      if (parsed.protocol !== 'http:' && parsed.protocol !== 'https:') throw new UsageError('the URL must be http(s)');
      // Any token that can read the fleet will do (viewer and up); a refused one is not stored.
      const api = new ApiClient(url, token, ca ? { ca: readFileSync(ca) } : {});
      const nodes = await api.request<unknown[]>('GET', '/nodes');
      writeConfigFile(path, { url, token, ...(ca ? { ca } : {}) });
      cli.print(
        { url, config: path, nodes: nodes.length },
        () => `logged in to ${url} (${nodes.length} nodes); saved in ${path}`,
      );
    });
  program
    .command('logout')
    .description('remove the token from the config file (the URL stays)')
    .action(() => {
      const path = cli.configPath();
      const { token: _token, ...rest } = readConfigFile(path, cli.io.err);
      writeConfigFile(path, rest);
      cli.print({ config: path }, () => `token removed from ${path}`);
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
      const t = await cli.client().request<TokenView & { token: string }>('POST', '/tokens', {
        name: o.name,
        role: o.role,
        ...(o.node ? { nodeId: o.node } : {}),
        ...(o.expires ? { expiresAt: o.expires } : {}),
      });
      cli.print(t, () => `${tokensTable([t])}\n\n${t.token}\n(shown once: store it now)`);
    });
  tokens
    .command('ls')
    .alias('list')
    .description('every token (never a secret)')
    .action(async () => {
      const list = await cli.client().request<TokenView[]>('GET', '/tokens');
      cli.print(list, () => tokensTable(list));
    });
  tokens
    .command('revoke <id>')
    .description('stop a token working (at once here, within 2 s on other replicas)')
    .action(async (id: string) => {
      const t = await cli.client().request<TokenView>('DELETE', `/tokens/${encodeURIComponent(id)}`);
      cli.print(t, () => tokensTable([t]));
    });

  program
    .command('audit')
    .description('who changed what, and who was refused, newest first (admin)')
    .option('--limit <n>', 'entries (1..1000)', number('--limit'), 50)
    .action(async (o: { limit: number }) => {
      const list = await cli.client().request<AuditEntry[]>('GET', `/audit?limit=${o.limit}`);
      cli.print(list, () => auditTable(list));
    });

  program
    .command('sweeper')
    .description("the last sweep of the nodes' leftovers (what was resumed, killed, removed or needs a person)")
    .action(async () => {
      const s = await cli.client().request<unknown>('GET', '/sweeper');
      cli.print(s, () => JSON.stringify(s, null, 2));
    });
}
