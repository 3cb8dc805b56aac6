/**
 * inspectTree's script run for real with this machine's sh against real processes, its output parsed and
 * judged as registration does: a process that named itself with spaces, parentheses and a newline, the
 * shell's own ancestors (what an SSH session's sshd is to a node), kthreadd, another network namespace.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { readFileSync, statSync } from 'node:fs';
import { inspectTree } from './node-ops/node-scripts.js';
import { parseRootProcess, registrationRefusal } from './process-inspection.js';

/** Runs the script (under `wrap`, e.g. `unshare --net`); its stdout and exit code. */
function inspect(pid: number, wrap: string[] = []): { stdout: string; code: number } {
  const [command, ...args] = [...wrap, 'sh', '-c', inspectTree(pid)];
  try {
    return { stdout: execFileSync(command, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }), code: 0 };
  } catch (error) {
    const e = error as { stdout: string; status: number };
    return { stdout: e.stdout, code: e.status };
  }
}

let named: ChildProcess;

beforeAll(async () => {
  // Renames itself, then waits to be inspected.
  named = spawn(
    'python3',
    ['-c', "open('/proc/self/comm','w').write('a ) b\\nTREE 1'); print('ok', flush=True); import time; time.sleep(60)"],
    {
      stdio: ['ignore', 'pipe', 'inherit'],
    },
  );
  await new Promise((resolve) => named.stdout!.once('data', resolve));
});

afterAll(() => {
  named.kill('SIGKILL');
});

describe('inspectTree on this kernel', () => {
  it('reads the identity of a process whose name holds spaces, a parenthesis and a newline', () => {
    const { stdout, code } = inspect(named.pid!);
    expect(code).toBe(0);
    const root = parseRootProcess(stdout)!;
    const stat = readFileSync(`/proc/${named.pid}/stat`, 'utf8');
    expect(root).toMatchObject({
      comm: 'a ) b\nTREE 1',
      ppid: process.pid,
      hasExe: true,
      identity: {
        bootId: readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim(),
        pidNs: String(statSync(`/proc/${named.pid}/ns/pid`).ino),
        startTime: stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19],
      },
    });
    expect(/^TREE (.*)$/m.exec(stdout)?.[1]).toBe(String(named.pid));
    expect(registrationRefusal('here', named.pid!, root, [named.pid!])).toBeUndefined();
  });

  it('lists the session and its ancestors, and refuses a tree that holds them', () => {
    // This jest process is an ancestor of the shell that runs the script, as sshd is of an SSH session.
    const { stdout } = inspect(process.pid);
    const root = parseRootProcess(stdout)!;
    expect(root.sessionPids).toContain(process.pid);
    expect(root.sessionPids.at(-1)).toBe(1);
    const tree = /^TREE (.*)$/m.exec(stdout)![1]!.split(' ').map(Number);
    expect(registrationRefusal('here', process.pid, root, tree)).toMatch(
      new RegExp(`holds pid ${process.pid}, which carries spotlift's own SSH session`),
    );
  });

  it('sees kthreadd as a kernel thread', () => {
    const { stdout } = inspect(2);
    const root = parseRootProcess(stdout)!;
    expect(root).toMatchObject({ comm: 'kthreadd', hasExe: false });
    expect(registrationRefusal('here', 2, root, [2])).toMatch(/is a kernel thread/);
  });

  it('answers exit 3 for a pid that does not exist', () => {
    expect(inspect(3_999_999).code).toBe(3);
  });

  it('refuses a process of another network namespace', () => {
    // The script runs in a fresh network namespace; the process it looks at stays in this one.
    const { stdout, code } = inspect(named.pid!, ['unshare', '--net']);
    expect(code).toBe(0);
    const root = parseRootProcess(stdout)!;
    expect(root.netNs).not.toBe(root.sessionNetNs);
    expect(registrationRefusal('here', named.pid!, root, [named.pid!])).toMatch(
      /is not in node 'here''s network namespace/,
    );
  });
});
