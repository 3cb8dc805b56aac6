/**
 * The node script that keeps a failed job's CRIU logs, run by a real shell on real files (the nodes run it
 * the same way over SSH): tails bounded, relative paths kept, old job log directories pruned.
 */
import { execFileSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, utimesSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { keptLogsDir } from './failed-job-logs.js';
import { keepLogs } from './node-ops/node-scripts.js';

describe('keepLogs (node script) in a real shell', () => {
  let root: string;
  beforeEach(() => {
    root = mkdtempSync(join(tmpdir(), 'spotlift-logs-'));
  });
  afterEach(() => rmSync(root, { recursive: true, force: true }));

  it('copies the last bytes of every log, keeps the layout, and prunes job log directories past the age limit', () => {
    const images = join(root, 'images');
    const job = join(images, 'mig-1');
    mkdirSync(join(job, 'src'), { recursive: true });
    mkdirSync(join(job, 'dst'), { recursive: true });
    const big = Buffer.concat([
      Buffer.alloc(200_000, 'a'),
      Buffer.from('\n(00.51) Error (criu/cr-restore.c:1234): the cause\n'),
    ]);
    writeFileSync(join(job, 'dst', 'restore.log'), big);
    writeFileSync(join(job, 'src', 'dump.log'), 'short\n');
    writeFileSync(join(job, 'src', 'pages-1.img'), 'process memory, not a log');
    const logs = keptLogsDir(images, 'mig-1');
    const old = join(root, 'logs', 'mig-old');
    const recent = join(root, 'logs', 'mig-recent');
    mkdirSync(old, { recursive: true });
    mkdirSync(recent, { recursive: true });
    const eightDaysAgo = Date.now() / 1000 - 8 * 86_400;
    utimesSync(old, eightDaysAgo, eightDaysAgo);

    const out = execFileSync('sh', ['-c', keepLogs(job, logs, 4096, 7 * 24 * 60)], { encoding: 'utf8' });

    expect(out.trim()).toBe('KEPT 2');
    const kept = readFileSync(join(logs, 'dst', 'restore.log'));
    expect(kept.length).toBe(4096);
    expect(kept.equals(big.subarray(big.length - 4096))).toBe(true);
    expect(kept.toString()).toMatch(/Error \(criu\/cr-restore\.c:1234\): the cause\n$/);
    expect(readFileSync(join(logs, 'src', 'dump.log'), 'utf8')).toBe('short\n');
    expect(existsSync(join(logs, 'src', 'pages-1.img'))).toBe(false);
    expect(statSync(join(logs, 'dst')).mode & 0o777).toBe(0o700);
    expect(existsSync(old)).toBe(false);
    expect(existsSync(recent)).toBe(true);
  });

  it('a job without an image directory keeps nothing and still answers', () => {
    const out = execFileSync(
      'sh',
      ['-c', keepLogs(join(root, 'images', 'gone'), join(root, 'logs', 'gone'), 4096, 60)],
      { encoding: 'utf8' },
    );
    expect(out.trim()).toBe('KEPT 0');
  });
});
