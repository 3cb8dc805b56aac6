/**
 * The files copy under attack, for real on this machine: DirectoryStreamer relays a tar stream from a
 * "source" shell to a "destination" shell that runs the engine's receiver (GNU tar at /, then the deletions),
 * with the relay's guard on. The destination runs in a private mount namespace where /etc is a scratch
 * directory and the declared path its own copy, so a write that got through would land somewhere harmless
 * and visible. Each hostile archive is also sent once without the guard, to show it does reach /etc then.
 */
import { spawn as spawnChild, execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { NodeTarget } from '@spotlift/domain';
import { archive, gnuLong, member, pax } from '@spotlift/testing';
import {
  type CommandResult,
  DirectoryStreamer,
  NodeShell,
  type RemoteProcess,
  shq,
  type TarPolicy,
} from '@spotlift/transport';
import { FILE_SYNC_STATE_DIR, receiveRound, sendRound } from '../node-ops/file-sync-commands.js';
import { nodeCommand } from '../node-ops/node-command.js';

/** Runs commands with this machine's sh; node `dst` inside `wrap` (its mount namespace). */
class LocalShell extends NodeShell {
  constructor(private readonly wrap: Record<string, (cmd: string) => string[]>) {
    super();
  }
  exec(node: NodeTarget, command: string): Promise<CommandResult> {
    return this.spawn(node, command).then(async (p) => {
      p.stdin.end();
      const out: Buffer[] = [];
      p.stdout.on('data', (d: Buffer) => out.push(d));
      const r = await p.done;
      return { ...r, stdout: Buffer.concat(out).toString() };
    });
  }
  spawn(node: NodeTarget, command: string): Promise<RemoteProcess> {
    const argv = this.wrap[node.id]?.(command) ?? ['sh', '-c', command];
    const child = spawnChild(argv[0]!, argv.slice(1), { stdio: ['pipe', 'pipe', 'pipe'] });
    const err: Buffer[] = [];
    child.stderr.on('data', (d: Buffer) => err.push(d));
    child.stdin.on('error', () => undefined); // a receiver that died: the relay reports it
    const done = new Promise<{ code: number | null; stderr: string }>((resolve) =>
      child.on('close', (code) => resolve({ code, stderr: Buffer.concat(err).toString() })),
    );
    return Promise.resolve({ stdin: child.stdin, stdout: child.stdout, done });
  }
  connect(): Promise<void> {
    return Promise.resolve();
  }
  close(): Promise<void> {
    return Promise.resolve();
  }
}

const node = (id: string) => ({ id, host: id, port: 22, user: 'root', hostKey: '' }) as NodeTarget;
const SRC = node('src');
const DST = node('dst');

let root: string;
let app: string; // the declared path, as both "nodes" see it
let destApp: string; // what the destination has at `app`
let fakeEtc: string; // the destination's /etc
let migDir: string;
let streamer: DirectoryStreamer;

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'spotlift-guard-'));
  app = join(root, 'srv', 'data', 'app');
  destApp = join(root, 'dest-app');
  fakeEtc = join(root, 'dest-etc');
  migDir = join(root, 'mig');
  for (const d of [app, destApp, fakeEtc, migDir]) mkdirSync(d, { recursive: true });
  writeFileSync(join(fakeEtc, 'passwd'), 'untouched\n');
  const inNamespace = (cmd: string) => [
    'unshare',
    '--mount',
    '--propagation',
    'private',
    'sh',
    '-c',
    `mount --bind ${shq(fakeEtc)} /etc && mount --bind ${shq(destApp)} ${shq(app)} && exec sh -c "$0"`,
    cmd,
  ];
  streamer = new DirectoryStreamer(new LocalShell({ dst: inNamespace }));
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

const rel = (p: string) => p.slice(1);
const listPath = () => `${migDir}/${FILE_SYNC_STATE_DIR}/deleted`;

/** Sends `tar` (a file on the source) to the destination's receiver; the error message, if any. */
async function send(tar: Buffer, guard: TarPolicy | undefined): Promise<string | undefined> {
  const file = join(root, `stream-${Math.random().toString(36).slice(2)}.tar`);
  writeFileSync(file, tar);
  const armed = await streamer.armPipe(SRC, nodeCommand(`cat ${shq(file)}`), DST, {
    dir: migDir,
    ...receiveRound(migDir, [app]),
    what: 'file copy',
    ...(guard ? { guard } : {}),
  });
  try {
    await armed.start();
    return undefined;
  } catch (error) {
    return (error as Error).message;
  }
}

const policy = (): TarPolicy => ({ roots: [app], deletionList: listPath() });
const etc = () => readFileSync(join(fakeEtc, 'passwd'), 'utf8');

describe('hostile archives through the relay (real sh, GNU tar, a private /etc)', () => {
  const ok = () => member({ name: `${rel(app)}/ok`, data: 'fine\n' });
  const cases: [string, () => Buffer, RegExp][] = [
    ['etc/passwd', () => member({ name: 'etc/passwd', data: 'owned\n' }), /"etc\/passwd" is outside/],
    [
      'a symlink to /etc, then a file through it',
      () =>
        Buffer.concat([
          member({ name: `${rel(app)}/x`, type: '2', link: '/etc' }),
          member({ name: `${rel(app)}/x/passwd`, data: 'owned\n' }),
        ]),
      /symbolic link to "\/etc"/,
    ],
    [
      'a GNU long name onto /etc',
      () => Buffer.concat([gnuLong('L', `etc/${'/'.repeat(120)}passwd`), member({ name: 'decoy', data: 'owned\n' })]),
      /outside/,
    ],
    [
      'a pax path onto /etc',
      () => Buffer.concat([pax({ path: 'etc/passwd' }), member({ name: `${rel(app)}/decoy`, data: 'owned\n' })]),
      /"etc\/passwd" is outside/,
    ],
  ];

  it.each(cases)('%s: refused, /etc untouched, the destination tar aborted', async (_what, hostile, why) => {
    const tar = archive(ok(), hostile());
    expect(await send(tar, policy())).toMatch(why);
    expect(etc()).toBe('untouched\n');
    expect(readFileSync(join(destApp, 'ok'), 'utf8')).toBe('fine\n'); // what came before passed
  });

  it.each(cases.filter(([what]) => what !== 'a symlink to /etc, then a file through it'))(
    'control: %s without the guard, on a tar without member names, reaches /etc',
    (_what, hostile) => {
      // the receiver's own name filter would stop these; a bare `tar -C / -xpf -` (before this guard) did not
      const file = join(root, 'control.tar');
      writeFileSync(file, archive(hostile()));
      execFileSync('unshare', [
        '--mount',
        '--propagation',
        'private',
        'sh',
        '-c',
        `mount --bind ${shq(fakeEtc)} /etc && tar -C / -xpf ${shq(file)}`,
      ]);
      expect(etc()).toBe('owned\n');
    },
  );

  it('without the guard, the destination tar itself extracts only the declared paths', async () => {
    expect(await send(archive(ok(), member({ name: 'etc/passwd', data: 'owned\n' })), undefined)).toBeUndefined();
    expect(etc()).toBe('untouched\n');
    expect(existsSync(join(destApp, 'ok'))).toBe(true);
  });

  it('an archive built by GNU tar with ../../ names is refused', async () => {
    writeFileSync(join(root, 'passwd'), 'owned\n');
    const tar = execFileSync('tar', ['-C', root, '-cf', '-', '--transform', `s,^,${rel(app)}/../../../../,`, 'passwd']);
    expect(await send(tar, policy())).toMatch(/'\.\.'/);
    expect(etc()).toBe('untouched\n');
  });

  it('a bad deletion list is refused before anything is deleted', async () => {
    writeFileSync(join(destApp, 'keep'), 'k');
    const list = `${rel(app)}/keep\0/etc/passwd\0`;
    const tar = archive(member({ name: rel(listPath()), data: list }));
    expect(await send(tar, policy())).toMatch(/deletion of "\/etc\/passwd" is outside/);
    expect(existsSync(join(destApp, 'keep'))).toBe(true);
    expect(etc()).toBe('untouched\n');
  });

  it('a valid deletion list followed by a hostile member: the destination deletes nothing', async () => {
    writeFileSync(join(destApp, 'keep'), 'k');
    const tar = archive(
      member({ name: rel(listPath()), data: `${rel(app)}/keep\0` }),
      member({ name: 'etc/passwd', data: 'owned\n' }),
    );
    expect(await send(tar, policy())).toMatch(/outside/);
    expect(existsSync(join(destApp, 'keep'))).toBe(true);
  });

  it('a deletion through a symlink the destination holds is not followed', async () => {
    symlinkSync('/etc', join(destApp, 'link'));
    const tar = archive(member({ name: rel(listPath()), data: `${rel(app)}/link/passwd\0` }));
    expect(await send(tar, policy())).toBeUndefined();
    expect(etc()).toBe('untouched\n');
  });
});

describe('honest rounds through the guarded relay (real sendRound, receiveRound)', () => {
  it('copies, mirrors deletions, and a round that sends nothing under a declared path is no error', async () => {
    const other = join(root, 'srv', 'data', 'other');
    mkdirSync(other);
    writeFileSync(join(other, 'o'), 'o');
    writeFileSync(join(app, 'a'), 'a');
    writeFileSync(join(app, 'gone'), 'g');
    symlinkSync('a', join(app, 'link'));
    const round = async (final: boolean) => {
      const armed = await streamer.armPipe(SRC, sendRound(migDir, [app, other], { final }), DST, {
        dir: migDir,
        ...receiveRound(migDir, [app, other]),
        what: 'file copy',
        guard: { roots: [app, other], deletionList: listPath() },
      });
      return armed.start();
    };
    const first = await round(false);
    expect(first.sha256).toMatch(/^[0-9a-f]{64}$/);
    expect(readFileSync(join(destApp, 'a'), 'utf8')).toBe('a');
    execFileSync('sleep', ['1.3']); // past the mark margin: `other` is unchanged from here on
    rmSync(join(app, 'gone'));
    writeFileSync(join(app, 'a'), 'a2');
    await round(true);
    expect(readFileSync(join(destApp, 'a'), 'utf8')).toBe('a2');
    expect(existsSync(join(destApp, 'gone'))).toBe(false);
  });
});
