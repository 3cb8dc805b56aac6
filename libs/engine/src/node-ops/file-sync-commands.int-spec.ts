/**
 * The file-sync shell commands, run for real with this machine's sh, GNU find/sort/comm/tar: a "source" tree
 * under a temp dir, and a "destination" that sees a different directory at the same path (a private mount
 * namespace with a bind mount, as two nodes would). Rounds are run the way the engine runs them: the sender's
 * stdout piped into the receiver, in the migration directory.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { shq } from '@spotlift/transport';
import {
  ROUND_SUMMARY,
  freeSpaceFor,
  inspectPaths,
  parseFreeSpace,
  parseInspect,
  receiveRound,
  sendRound,
} from './file-sync-commands.js';

let root: string;
let data: string; // the declared path, as both "nodes" see it
let destData: string; // what the destination has at `data`
let migDir: string; // the migration directory (same path on both, like the engine's)

beforeEach(() => {
  root = mkdtempSync(join(tmpdir(), 'spotlift-files-'));
  data = join(root, 'srv', 'data');
  destData = join(root, 'dest-data');
  migDir = join(root, 'mig');
  mkdirSync(data, { recursive: true });
  mkdirSync(destData, { recursive: true });
  mkdirSync(migDir, { recursive: true });
});

afterEach(() => rmSync(root, { recursive: true, force: true }));

/** One round: sender on the "source", receiver on the "destination" (data bind-mounted from destData). */
function round(final: boolean): { sent: number; deleted: number; stderr: string } {
  const send = sendRound(migDir, [data], { final });
  const { unpack, after } = receiveRound(migDir, [data]);
  const receive = `${unpack} && ${after}`;
  const script =
    `set -e; sh -c ${shq(send)} 2>${shq(join(root, 'send.err'))} > ${shq(join(root, 'stream.tar'))}; ` +
    `unshare --mount --propagation private sh -c ${shq(`mount --bind ${shq(destData)} ${shq(data)} && { ${receive}; } < ${shq(join(root, 'stream.tar'))}`)}`;
  try {
    execFileSync('sh', ['-c', script], { stdio: ['ignore', 'pipe', 'pipe'] });
  } catch (error) {
    throw new Error(`round failed: ${readFileSync(join(root, 'send.err'), 'utf8')}`, { cause: error });
  }
  const stderr = readFileSync(join(root, 'send.err'), 'utf8');
  const m = ROUND_SUMMARY.exec(stderr);
  return { sent: Number(m?.[1]), deleted: Number(m?.[2]), stderr };
}

function tree(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string, prefix: string) => {
    for (const name of readdirSync(d).sort()) {
      const p = join(d, name);
      const rel = `${prefix}${name}`;
      if (statSync(p).isDirectory()) {
        out[`${rel}/`] = `mode ${(statSync(p).mode & 0o7777).toString(8)}`;
        walk(p, `${rel}/`);
      } else {
        out[rel] = `${(statSync(p).mode & 0o7777).toString(8)} ${readFileSync(p, 'utf8')}`;
      }
    }
  };
  walk(dir, '');
  return out;
}

/**
 * A round sends what changed since 1 s before the previous round began (file times are coarse): wait that
 * long so that what the test leaves alone counts as unchanged. (Aging files with utimes would not do: it
 * sets their ctime to now, and a changed ctime, as from chmod or rename, is a change.)
 */
function letTimePass(): void {
  execFileSync('sleep', ['1.3']);
}

describe('file sync rounds (real sh, find, comm, tar)', () => {
  it('round one copies everything, modes and content; a later round sends only changes and removes what went', () => {
    mkdirSync(join(data, 'app', 'conf'), { recursive: true });
    writeFileSync(join(data, 'app', 'conf', 'a.conf'), 'alpha', { mode: 0o640 });
    writeFileSync(join(data, 'app', 'journal'), 'line1\n');
    writeFileSync(join(data, 'app', 'doomed'), 'bye');
    mkdirSync(join(data, 'app', 'olddir'));
    writeFileSync(join(data, 'app', 'olddir', 'x'), 'x');
    letTimePass(); // what the workload wrote long ago

    const first = round(false);
    expect(first.sent).toBe(8); // data, app, conf, a.conf, journal, doomed, olddir, olddir/x
    expect(first.deleted).toBe(0);
    expect(tree(destData)).toEqual(tree(data));
    expect(tree(destData)['app/conf/a.conf']).toBe('640 alpha');

    letTimePass();
    writeFileSync(join(data, 'app', 'journal'), 'line1\nline2\n');
    rmSync(join(data, 'app', 'doomed'));
    rmSync(join(data, 'app', 'olddir'), { recursive: true });
    writeFileSync(join(data, 'app', 'new'), 'fresh');

    const final = round(true);
    // journal, new, and app/ itself (entries came and went); a.conf, conf/ and the rest stay at home
    expect(final.sent).toBe(3);
    expect(final.deleted).toBe(3); // doomed, olddir, olddir/x
    expect(tree(destData)).toEqual(tree(data));
  });

  it('leaves destination files the source never had (only what it sent and then lost is removed)', () => {
    writeFileSync(join(data, 'mine'), 'm');
    writeFileSync(join(destData, 'theirs'), 't');
    round(false);
    expect(Object.keys(tree(destData)).sort()).toEqual(['mine', 'theirs']);
  });

  it('a declared path that vanished fails the round instead of sending a partial copy', () => {
    writeFileSync(join(data, 'f'), 'f');
    rmSync(data, { recursive: true });
    expect(() => round(false)).toThrow(/round failed: find: .*No such file/);
  });

  it('names with blanks, quotes and newlines survive (NUL-separated lists)', () => {
    const odd = ['with space', "it's", 'new\nline', '-dash'];
    for (const n of odd) writeFileSync(join(data, n), n);
    letTimePass();
    round(false);
    letTimePass();
    rmSync(join(data, 'new\nline'));
    round(true);
    expect(Object.keys(tree(destData)).sort()).toEqual(['-dash', "it's", 'with space']);
  });
});

describe('preflight questions (real sh, du, df)', () => {
  it('the source says what each declared path holds and which are missing', () => {
    writeFileSync(join(data, 'blob'), Buffer.alloc(300 * 1024, 1));
    const gone = join(root, 'srv', 'no such dir');
    const out = execFileSync('sh', ['-c', inspectPaths([data, gone])], { encoding: 'utf8' });
    const { missing, kib } = parseInspect(out);
    expect(missing).toEqual([gone]);
    expect(kib.get(data)).toBeGreaterThanOrEqual(300);
  });

  it("the destination says, per path, its file system's free space and what it holds there already", () => {
    writeFileSync(join(data, 'old'), Buffer.alloc(200 * 1024, 2));
    const fresh = join(root, 'srv', 'not', 'yet', 'there');
    const out = execFileSync('sh', ['-c', freeSpaceFor([data, fresh])], { encoding: 'utf8' });
    const space = parseFreeSpace(out);
    const [avail, mount] = execFileSync('sh', ['-c', `df -P -k ${shq(root)} | awk 'NR == 2 {print $4, $6}'`], {
      encoding: 'utf8',
    })
      .trim()
      .split(' ');
    expect(space.map((s) => s.path)).toEqual([data, fresh]);
    for (const s of space) {
      expect(s.mount).toBe(mount); // a missing path is judged by its nearest existing ancestor
      expect(Math.abs(s.availKib - Number(avail))).toBeLessThan(10 * 1024); // df read twice, a moment apart
    }
    expect(space[0]!.heldKib).toBeGreaterThanOrEqual(200);
    expect(space[1]!.heldKib).toBe(0);
  });
});
