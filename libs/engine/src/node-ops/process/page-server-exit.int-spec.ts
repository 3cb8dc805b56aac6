/**
 * `awaitPageServerExit` run by a real shell against real processes named `criu` (a copy of `sleep`), as the nodes
 * run it over SSH: it waits for the server to go, answers 1 while it still runs after the bound, and does not
 * wait on a zombie or on a pidfile naming another program. Why it exists: criu-commands.ts.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { copyFileSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { awaitPageServerExit } from './criu-commands.js';

let dir: string;
let criu: string;
const children: ChildProcess[] = [];

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'spotlift-ps-'));
  criu = join(dir, 'criu');
  copyFileSync(execFileSync('sh', ['-c', 'command -v sleep']).toString().trim(), criu);
  execFileSync('chmod', ['+x', criu]);
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

/** A "page-server" that exits after `seconds`; its pid in the pidfile, as `--pidfile` writes it. */
function server(seconds: number, program = criu): ChildProcess {
  const child = spawn(program, [String(seconds)], { stdio: 'ignore' });
  children.push(child);
  writeFileSync(join(dir, 'page-server.pid'), `${child.pid}`);
  return child;
}

/** Runs and is not a zombie (node has not reaped its exited child yet when the script returns). */
function running(pid: number): boolean {
  try {
    return !/^State:\s*Z/m.test(readFileSync(`/proc/${pid}/status`, 'utf8'));
  } catch {
    return false;
  }
}

function wait(timeoutMs: number): { code: number; ms: number } {
  const started = Date.now();
  try {
    execFileSync('sh', ['-c', awaitPageServerExit(dir, timeoutMs)]);
    return { code: 0, ms: Date.now() - started };
  } catch (error) {
    return { code: (error as { status: number }).status, ms: Date.now() - started };
  }
}

describe('awaitPageServerExit (node script) in a real shell', () => {
  it('returns 0 only after a server that is still closing its images has exited', () => {
    const child = server(0.4);
    const r = wait(5_000);
    expect(r.code).toBe(0);
    expect(running(child.pid!)).toBe(false);
    expect(r.ms).toBeGreaterThanOrEqual(300);
  });

  it('returns 1 when the server still runs after the bound', () => {
    const child = server(30);
    expect(wait(200).code).toBe(1);
    expect(running(child.pid!)).toBe(true);
  });

  it('returns 0 at once without a pidfile, for a pid that is gone, or a pid of another program', () => {
    expect(wait(5_000).code).toBe(0);
    writeFileSync(join(dir, 'page-server.pid'), '999999999');
    expect(wait(5_000).code).toBe(0);
    server(30, execFileSync('sh', ['-c', 'command -v sleep']).toString().trim());
    expect(wait(5_000).code).toBe(0);
  });

  it('does not wait on a zombie (a server that exited but was not reaped yet)', () => {
    // The parent shell execs into a long sleep, which never reaps its child: a criu that exits 0.3 s later, so
    // surely after the exec (a shell may reap a child that is already gone when it runs its next command).
    const pidfile = join(dir, 'page-server.pid');
    const parent = spawn('sh', ['-c', `${criu} 0.3 & echo $! > ${pidfile}; exec sleep 30`], { stdio: 'ignore' });
    children.push(parent);
    execFileSync('sh', ['-c', `until [ -s ${pidfile} ]; do sleep 0.02; done`]);
    const pid = readFileSync(pidfile, 'utf8').trim();
    execFileSync('sh', [
      '-c',
      `i=0; until grep -q '^State:.*Z' /proc/${pid}/status || [ $i -ge 250 ]; do sleep 0.02; i=$((i+1)); done`,
    ]);
    expect(readFileSync(`/proc/${pid}/status`, 'utf8')).toMatch(/^State:\s*Z/m);
    expect(wait(5_000).code).toBe(0);
  });
});
