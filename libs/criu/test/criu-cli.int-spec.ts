/**
 * The builders and parsers of @spotlift/criu against the real CRIU of the lab (root, CRIU >= 4.2 as
 * installed by scripts/lab/install.sh): the argv they build must be accepted by this CRIU, and what it
 * writes must parse. A stop-and-copy through a page-server, as the engine runs it, on a small
 * pid-namespaced python workload; every process started here is killed by pid.
 */
import { shellJoin } from '@spotlift/transport';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  checkArgv,
  classifyCriuFailure,
  criuOutputPath,
  dumpArgv,
  isCriuVersionAtLeast,
  pageServerArgv,
  parseCriuCheck,
  parseCriuVersion,
  parseDumpStats,
  parseFeatureCheck,
  parseRestoreStats,
  restoreArgv,
  versionArgv,
} from '@spotlift/criu';

// Per-test timeouts: in jest's ESM mode there is no global `jest` object to set one for the file.
const SLOW = 60_000;

const run = (argv: string[]): { code: number; out: string } => {
  const [bin, ...args] = argv;
  const r = spawnSync(bin!, args, { encoding: 'utf8', timeout: 30_000 });
  return { code: r.status ?? 128, out: `${r.stdout}${r.stderr}` };
};

const freePort = (): Promise<number> =>
  new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      srv.close(() => (typeof addr === 'object' && addr ? resolve(addr.port) : reject(new Error('no port'))));
    });
  });

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

/** Polls /proc/PID/stat until the state letter is `want` or `ms` have passed; returns the last state seen. */
async function stateWithin(pid: number, want: string, ms: number): Promise<string> {
  const until = Date.now() + ms;
  for (;;) {
    const state = readFileSync(`/proc/${pid}/stat`, 'utf8')
      .replace(/^.*\) /s, '')
      .charAt(0);
    if (state === want || Date.now() > until) return state;
    await new Promise((r) => setTimeout(r, 10));
  }
}

const WORKLOAD = [
  'import time',
  'b = bytearray(8 << 20)',
  'for i in range(0, len(b), 4096): b[i] = 1',
  'time.sleep(3600)',
].join('\n');

describe('@spotlift/criu against the real CRIU', () => {
  const root = mkdtempSync(join(tmpdir(), 'spotlift-criu-int-'));
  const toKill: number[] = [];

  beforeAll(() => {
    if (process.getuid?.() !== 0) throw new Error('this suite runs CRIU and needs root (run scripts/test.sh as root)');
    const probe = spawnSync('criu', ['--version'], { encoding: 'utf8' });
    if (probe.status !== 0) throw new Error('criu is not on the PATH: run scripts/lab/install.sh first');
  });

  afterAll(() => {
    for (const pid of toKill) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {
        // already gone
      }
    }
    rmSync(root, { recursive: true, force: true });
  });

  /** Starts the workload as init of its own pid namespace (LAB.md); returns the pid CRIU dumps. */
  async function startWorkload(): Promise<number> {
    const child = spawn('unshare', ['-p', '-f', 'setsid', '/usr/bin/python3', '-c', WORKLOAD], {
      stdio: 'ignore',
      cwd: root,
    });
    toKill.push(child.pid!);
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const kids = readFileSync(`/proc/${child.pid}/task/${child.pid}/children`, 'utf8').trim();
      if (kids) {
        const pid = Number(kids.split(/\s+/)[0]);
        toKill.push(pid);
        await new Promise((r) => setTimeout(r, 500)); // let python touch its 8 MiB
        return pid;
      }
    }
    throw new Error('workload did not start');
  }

  it(
    'version and check parse, and this CRIU is new enough for the kernel',
    () => {
      const version = run(versionArgv());
      expect(version.code).toBe(0);
      expect(isCriuVersionAtLeast(parseCriuVersion(version.out), '4.2')).toBe(true);
      const check = run(checkArgv());
      expect(parseCriuCheck(check.out, check.code)).toMatchObject({ ok: true, status: 'good' });
    },
    SLOW,
  );

  it('a feature check survives shellJoin and a real shell', () => {
    const argv = checkArgv({ feature: 'uffd-noncoop' });
    const r = spawnSync('sh', ['-c', shellJoin(argv)], { encoding: 'utf8' });
    const result = parseFeatureCheck('uffd-noncoop', `${r.stdout}${r.stderr}`, r.status ?? 128);
    expect(result.known).toBe(true);
  });

  it(
    'stop-and-copy through a page-server with the built argv, then parses both stats images',
    async () => {
      const pid = await startWorkload();
      const port = await freePort();
      const dst = join(root, 'dst');
      const src = join(root, 'src');
      const work = join(root, 'work');
      const restoreDir = join(root, 'restore');
      for (const d of [dst, src, work, restoreDir]) execFileSync('mkdir', ['-p', d]);

      const ps = run(
        pageServerArgv({
          imagesDir: dst,
          address: '127.0.0.1',
          port,
          daemon: true,
          pidfile: join(root, 'ps.pid'),
          log: { file: 'page-server.log' },
        }),
      );
      expect(ps.code).toBe(0);
      toKill.push(Number(readFileSync(join(root, 'ps.pid'), 'utf8')));

      const dump = run(
        dumpArgv({
          pid,
          imagesDir: src,
          workDir: work,
          leaveStopped: true,
          pageServer: { address: '127.0.0.1', port },
          log: { file: 'dump.log' },
        }),
      );
      expect(dump.code).toBe(0);
      // Frozen, not gone: --leave-stopped keeps the source for rollback.
      // Polled: once, read right after CRIU returned, the state was still R while the tree took its SIGSTOP.
      expect(await stateWithin(pid, 'T', 1000)).toBe('T');
      // Stats and log land in the work dir; pages went to the page-server's dir.
      expect(readdirSync(work).sort()).toEqual(['dump.log', 'stats-dump']);
      expect(readdirSync(dst).some((f) => f.startsWith('pages-'))).toBe(true);
      const dumpStats = parseDumpStats(readFileSync(criuOutputPath({ imagesDir: src, workDir: work }, 'stats-dump')));
      expect(dumpStats.pagesWritten).toBeGreaterThanOrEqual(2048); // the 8 MiB the workload touched
      expect(dumpStats.pagesScanned).toBeGreaterThanOrEqual(dumpStats.pagesWritten);
      expect(dumpStats.frozenTimeUs).toBeGreaterThan(0);

      cpSync(src, restoreDir, { recursive: true });
      cpSync(dst, restoreDir, { recursive: true });
      const restore = run(
        restoreArgv({ imagesDir: restoreDir, detached: true, pidfile: 'restored.pid', log: { file: 'restore.log' } }),
      );
      expect(restore.code).toBe(0);
      const restored = Number(readFileSync(criuOutputPath({ imagesDir: restoreDir }, 'restored.pid'), 'utf8'));
      toKill.push(restored);
      expect(alive(restored)).toBe(true);
      const restoreStats = parseRestoreStats(readFileSync(criuOutputPath({ imagesDir: restoreDir }, 'stats-restore')));
      expect(restoreStats.pagesRestored).toBe(dumpStats.pagesWritten);
    },
    SLOW,
  );

  it(
    'a dump of a pid that has exited is classified as pid_gone',
    () => {
      const gone = spawnSync('true');
      const dir = join(root, 'gone');
      execFileSync('mkdir', ['-p', dir]);
      const r = run(dumpArgv({ pid: gone.pid, imagesDir: dir, leaveStopped: true, log: { file: 'dump.log' } }));
      expect(r.code).not.toBe(0);
      const failure = classifyCriuFailure(readFileSync(join(dir, 'dump.log'), 'utf8'), r.code);
      expect(failure.kind).toBe('pid_gone');
    },
    SLOW,
  );
});
