/**
 * The CLI against a running orchestrator: the real Nest app in this process on a loopback port (role api, so
 * nothing SSHes anywhere), a private Redis, records put in through the app's own repositories where making them
 * for real would need nodes. First the installed command (npm install -g of this repository into a temp prefix,
 * run as a child process: login, the config file, the token from it); then every command family through
 * run() with its JSON output and exit codes; then the bash completion script in a real bash.
 * Needs `npm run build` first (the installed command runs dist/; scripts/test.sh builds before jest).
 */
import { execFile, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { utils } from 'ssh2';
import type { EvacuationRecord, MigrationRecord, NodeRecord } from '@spotlift/domain';
import { MigrationRepository, NodeRepository, WorkloadRepository } from '@spotlift/store';
import { aMigration, aNode, aWorkload, startRedis, stopRedis } from '@spotlift/testing';
import { startOrchestrator, type Orchestrator } from '../../../test/support/orchestrator-harness.js';
import { EXIT } from './exit-codes.js';
import { run } from './main.js';

const REDIS_PORT = 6466;
const repo = join(dirname(fileURLToPath(import.meta.url)), '../../..');
const tmp = mkdtempSync(join(tmpdir(), 'spotlift-cli-'));
const configFile = join(tmp, 'home/.config/spotlift/config.json');
/** The CLI's environment: its own config file, no token or URL from the test runner's environment. */
const ENV = { SPOTLIFT_CLI_CONFIG: configFile, PATH: process.env.PATH };

let orch: Orchestrator;

/** A node nothing can reach (port 9 on loopback refuses at once): the CLI only needs its record. */
const node = (id: string): NodeRecord => aNode(id, { host: '127.0.0.1', port: 9 });

beforeAll(async () => {
  await startRedis(REDIS_PORT);
  let key: Buffer;
  do key = Buffer.from(utils.generateKeyPairSync('ed25519').private);
  while (utils.parseKey(key) instanceof Error);
  writeFileSync(join(tmp, 'id'), key, { mode: 0o600 });
  orch = await startOrchestrator({
    nodesConfig: { ssh: { privateKeyPath: join(tmp, 'id') }, nodes: [] },
    redisPort: REDIS_PORT,
    role: 'api',
  });
  const nodes = orch.app.get(NodeRepository);
  for (const id of ['node-x', 'node-y']) await nodes.save(node(id));
  await orch.app.get(WorkloadRepository).save(aWorkload({ id: 'wl-cli', name: 'db', nodeId: 'node-x' }));
  await orch.app.get(MigrationRepository).save(aMigration({ id: 'mig-cli', workloadId: 'wl-cli', state: 'completed' }));
});

afterAll(async () => {
  await orch?.close();
  await stopRedis(REDIS_PORT);
});

async function cli(args: string[], env: Record<string, string | undefined> = ENV) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await run(args, { out: (s) => void out.push(s), err: (s) => void err.push(s), env });
  const text = out.join('\n');
  return { code, text, err: err.join('\n'), json: <T>() => JSON.parse(text) as T };
}

/** A child process: the installed command, with stdin. */
function spawnCli(bin: string, args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(bin, args, { env: ENV });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.on('error', reject);
    child.on('close', (code) => resolve({ code: code ?? -1, out, err }));
    child.stdin.end(stdin);
  });
}

describe('the installed spotlift command', () => {
  const prefix = join(tmp, 'prefix');
  const bin = join(prefix, 'bin', 'spotlift');

  beforeAll(async () => {
    if (!existsSync(join(repo, 'dist/apps/cli/src/main.js'))) throw new Error('run `npm run build` first');
    await promisify(execFile)('npm', ['install', '-g', '--prefix', prefix, '--no-audit', '--no-fund', repo]);
  });

  it('is on the PATH of the prefix and answers --help with the exit codes', async () => {
    const r = await spawnCli(bin, ['--help']);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/Usage: spotlift/);
    expect(r.out).toMatch(/Exit codes: 0 done/);
  });

  it('login refuses a token the server refuses (exit 5) and stores nothing', async () => {
    const r = await spawnCli(bin, ['login', '--url', orch.baseUrl, '--token-stdin'], 'not-a-valid-token-at-all\n');
    expect(r.code).toBe(EXIT.denied);
    expect(r.err).toMatch(/HTTP 401/);
    expect(existsSync(configFile)).toBe(false);
  });

  it('login checks the token and stores it 0600; later commands use it from there', async () => {
    const r = await spawnCli(bin, ['login', '--url', orch.baseUrl, '--token-stdin'], `${orch.token}\n`);
    expect(r.err).toBe('');
    expect(r.code).toBe(0);
    expect(r.out).toContain(`logged in to ${orch.baseUrl} (2 nodes)`);
    expect(statSync(configFile).mode & 0o777).toBe(0o600);
    expect(JSON.parse(readFileSync(configFile, 'utf8'))).toEqual({ url: orch.baseUrl, token: orch.token });
    const ls = await spawnCli(bin, ['--json', 'nodes', 'ls']);
    expect(ls.code).toBe(0);
    expect((JSON.parse(ls.out) as NodeRecord[]).map((n) => n.id)).toEqual(['node-x', 'node-y']);
  });
});

describe('spotlift against the orchestrator (token from the config file written by login)', () => {
  it('nodes ls / show, as a table and as JSON', async () => {
    const table = await cli(['nodes', 'ls']);
    expect(table.code).toBe(0);
    expect(table.text).toMatch(/^ID\s+ADDRESS\s+STATE/);
    expect(table.text).toMatch(/node-x\s+127\.0\.0\.1:9\s+ready/);
    const show = await cli(['--json', 'nodes', 'show', 'node-y']);
    expect(show.json<NodeRecord>()).toMatchObject({ id: 'node-y', state: 'ready' });
    expect(await cli(['nodes', 'show', 'node-zz'])).toMatchObject({ code: EXIT.badInput, err: /HTTP 404/ });
  });

  it('nodes drain / undrain: draining with the mark, then ready again', async () => {
    const drained = await cli(['--json', 'nodes', 'drain', 'node-x']);
    expect(drained.code).toBe(0);
    expect(drained.json<NodeRecord>()).toMatchObject({ state: 'draining', drain: { at: expect.any(String) } });
    expect((await orch.api<NodeRecord>('GET', '/nodes/node-x')).body.state).toBe('draining');
    expect((await cli(['nodes', 'undrain', 'node-x'])).text).toBe('node node-x is ready');
    expect((await orch.api<NodeRecord>('GET', '/nodes/node-x')).body.state).toBe('ready');
  });

  it('workloads ls and rm (exit 2 for one that is not there)', async () => {
    const ls = await cli(['--json', 'workloads', 'ls']);
    expect(ls.json<Array<{ id: string }>>().map((w) => w.id)).toEqual(['wl-cli']);
    expect(await cli(['workloads', 'rm', 'wl-cli'])).toMatchObject({ code: 0, text: 'workload wl-cli removed' });
    expect((await cli(['--json', 'workloads', 'ls'])).json()).toEqual([]);
    expect((await cli(['workloads', 'rm', 'wl-cli'])).code).toBe(EXIT.badInput);
  });

  it('migrations ls / show, and cancel of a finished one is refused (409, exit 2)', async () => {
    const ls = await cli(['--json', 'migrations', 'ls']);
    expect(ls.json<MigrationRecord[]>()).toEqual([expect.objectContaining({ id: 'mig-cli', state: 'completed' })]);
    expect((await cli(['migrations', 'show', 'mig-cli'])).text).toMatch(/^migration mig-cli: completed/);
    const cancel = await cli(['--json', 'migrations', 'cancel', 'mig-cli']);
    expect(cancel.code).toBe(EXIT.badInput);
    expect(JSON.parse(cancel.err)).toMatchObject({ exitCode: 2, status: 409 });
  });

  it('evacuate raises a manual evacuation; drain answers 409 while it is open', async () => {
    const r = await cli(['--json', 'evacuate', 'node-y', '--in', '600', '--reason', 'kernel update']);
    expect(r.code).toBe(0);
    const { created, evacuation } = r.json<{ created: boolean; evacuation: EvacuationRecord }>();
    expect(created).toBe(true);
    expect(evacuation).toMatchObject({ nodeId: 'node-y', notice: { reason: 'manual evacuation: kernel update' } });
    expect((await orch.api<NodeRecord>('GET', '/nodes/node-y')).body.state).toBe('terminating');
    const listed = (await cli(['--json', 'evacuations', 'ls'])).json<EvacuationRecord[]>();
    expect(listed.map((e) => e.id)).toContain(evacuation.id);
    // an api-only orchestrator runs no coordinator: the evacuation stays open
    const drain = await cli(['nodes', 'drain', 'node-y']);
    expect(drain).toMatchObject({ code: EXIT.badInput, err: expect.stringContaining('is in flight') as unknown });
    expect(await cli(['evacuate', 'node-zz'])).toMatchObject({ code: EXIT.badInput, err: /HTTP 404/ });
    expect(await cli(['evacuate', 'node-x', '--deadline', 'tomorrow'])).toMatchObject({ code: EXIT.badInput });
    expect((await orch.api<NodeRecord>('GET', '/nodes/node-x')).body.state).toBe('ready');
  });

  it('exit codes: no token 5, a role too small 5, unreachable 6, bad arguments 2', async () => {
    const noConfig = { SPOTLIFT_CLI_CONFIG: join(tmp, 'none.json') };
    expect((await cli(['--url', orch.baseUrl, 'nodes', 'ls'], noConfig)).code).toBe(EXIT.denied);
    const viewer = (await orch.api<{ token: string }>('POST', '/tokens', { name: 'cli-viewer', role: 'viewer' })).body;
    const asViewer = await cli(['--token', viewer.token, 'nodes', 'drain', 'node-x']);
    expect(asViewer).toMatchObject({ code: EXIT.denied, err: /HTTP 403/ });
    expect((await cli(['--url', 'http://127.0.0.1:9', 'nodes', 'ls'])).code).toBe(EXIT.unreachable);
    expect((await cli(['nodes', 'frobnicate'])).code).toBe(EXIT.badInput);
    expect((await cli(['workloads', 'add', '--name', 'x', '--node', 'node-x', '--pid', 'abc'])).code).toBe(
      EXIT.badInput,
    );
  });
});

describe('spotlift completion bash', () => {
  /** Sources the script in a real bash and asks it to complete the given words (the last one being typed). */
  async function complete(words: string[]): Promise<string[]> {
    const script = (await cli(['completion', 'bash'])).text;
    writeFileSync(join(tmp, 'completion.bash'), script);
    const line = `source ${join(tmp, 'completion.bash')}; COMP_WORDS=(${words.map((w) => `'${w}'`).join(' ')}); COMP_CWORD=${words.length - 1}; _spotlift_complete; echo "\${COMPREPLY[*]}"`;
    const { stdout } = await promisify(execFile)('bash', ['-c', line]);
    return stdout.trim().split(/\s+/).filter(Boolean);
  }

  it('completes commands, subcommands and options, skipping option values', async () => {
    expect(await complete(['spotlift', 'nod'])).toEqual(['nodes']);
    expect(await complete(['spotlift', 'nodes', 'dr'])).toEqual(['drain']);
    expect(await complete(['spotlift', '--url', 'http://x', 'evac'])).toEqual(['evacuate', 'evacuations']);
    expect(await complete(['spotlift', 'migrate', 'wl-1', '--str'])).toEqual(['--strategy']);
    expect(await complete(['spotlift', 'workloads', ''])).toEqual(
      expect.arrayContaining(['ls', 'show', 'add', 'refresh', 'rm']),
    );
  });
});
