/**
 * The identity parser and the registration rules. The /proc/<pid>/stat lines are real ones read on this
 * machine (a bash, kthreadd, a process that renamed itself with spaces and parentheses or a newline).
 */
import { inspectionOutput } from '@spotlift/testing';
import {
  identityMismatch,
  isKernelThread,
  parseProcStat,
  parseRootProcess,
  registrationRefusal,
  type RootProcess,
} from './process-inspection.js';

const BASH =
  '7841 (bash) S 7835 7841 7841 0 -1 4194560 9528 142177 0 17 3 5 228 62 20 0 1 0 23333 5259264 992 18446744073709551615 94579576016896 94579576806301 140736143917296 0 0 0 65536 4 1132560123 1 0 0 17 1 0 0 0 0 0 94579577039600 94579577087844 94579779706880 140736143919997 140736143920012 140736143920012 140736143921130 0\n';
const KTHREADD =
  '2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 1 0 0 20 0 1 0 26 0 0 18446744073709551615 0 0 0 0 0 0 0 2147483647 0 1 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0 0\n';
const WEIRD =
  '26816 (we ) ird (x) z) R 26814 26814 7841 0 -1 4194304 2850 6535 0 0 1 2 4 0 20 0 1 0 55680 16977920 3356 18446744073709551615 93849123295232 93849123295573 140736988326336 0 0 0 0 16781312 2 0 0 0 17 1 0 0 0 0 0 93849123306928 93849123307544 93849955688448 140736988334241 140736988334377 140736988334377 140736988336079 0\n';
/** A process that wrote "a\nTREE 1" to /proc/self/comm, base64 as inspectTree's script sends it. */
const NEWLINE_B64 =
  'MjY4ODYgKGEKVFJFRSAxKSBSIDI2ODE0IDI2ODE0IDc4NDEgMCAtMSA0MTk0MzA0IDI4NTYgNjUxNCAwIDAgMyAxIDMgMSAyMCAwIDEgMCA1NTcxMiAxNjk2MTUzNiAzMzU0IDE4NDQ2NzQ0MDczNzA5NTUxNjE1IDk0Mjc1MjEwNjYxODg4IDk0Mjc1MjEwNjYyMjI5IDE0MDczMzg4NzE2NDk5MiAwIDAgMCAwIDE2NzgxMzEyIDIgMCAwIDAgMTcgMSAwIDAgMCAwIDAgOTQyNzUyMTA2NzM1ODQgOTQyNzUyMTA2NzQyMDAgOTQyNzU3OTE0MzM3MjggMTQwNzMzODg3MTY2NTg0IDE0MDczMzg4NzE2Njc2MSAxNDA3MzM4ODcxNjY3NjEgMTQwNzMzODg3MTY4NDYzIDAK';

describe('parseProcStat', () => {
  it.each([
    [
      'an ordinary process',
      BASH,
      { pid: 7841, comm: 'bash', state: 'S', ppid: 7835, flags: 4194560, startTime: '23333' },
    ],
    ['kthreadd', KTHREADD, { pid: 2, comm: 'kthreadd', state: 'S', ppid: 0, flags: 2129984, startTime: '26' }],
    [
      'a comm with spaces and parentheses',
      WEIRD,
      { pid: 26816, comm: 'we ) ird (x) z', state: 'R', ppid: 26814, flags: 4194304, startTime: '55680' },
    ],
    [
      'a comm with a newline that looks like a line of ours',
      Buffer.from(NEWLINE_B64, 'base64').toString('utf8'),
      { pid: 26886, comm: 'a\nTREE 1', state: 'R', ppid: 26814, startTime: '55712' },
    ],
  ])('reads %s', (_, line, expected) => {
    expect(parseProcStat(line)).toMatchObject(expected);
  });

  it.each([
    ['empty', ''],
    ['no parentheses', '42 bash S 1 42'],
    ['cut short before field 22', '42 (bash) S 1 42 42 0 -1 4194560 0 0'],
    ['a word where the start time goes', BASH.replace(' 23333 ', ' later ')],
  ])('refuses %s', (_, line) => {
    expect(parseProcStat(line)).toBeUndefined();
  });
});

describe('parseRootProcess', () => {
  it('reads identity, namespaces and the session from inspectTree output', () => {
    const root = parseRootProcess(
      inspectionOutput({ pid: 4242, startTime: '777', pidNs: '11', netNs: '22', sessionNetNs: '33' }),
    );
    expect(root).toEqual({
      identity: { bootId: '53b88e37-904f-4ee1-8e18-0fb871a935bd', pidNs: '11', startTime: '777' },
      comm: 'python3',
      state: 'S',
      ppid: 4000,
      flags: 0x400100,
      hasExe: true,
      netNs: '22',
      sessionNetNs: '33',
      sessionPids: [9001, 9000, 800, 1],
    });
  });

  it('is not fooled by a comm holding a newline: the stat line travels base64-encoded', () => {
    const out = inspectionOutput().replace(/^PROC 4242 \S+/m, `PROC 26886 ${NEWLINE_B64}`);
    expect(parseRootProcess(out)).toMatchObject({ comm: 'a\nTREE 1', identity: { startTime: '55712' } });
  });

  it.each([
    ['no boot id', /^BOOT .*$/m, 'BOOT '],
    ['an unreadable pid namespace (the process exited)', /^(PROC \S+ \S+) \d+/m, '$1 '],
    ['an unreadable stat', /^PROC (\S+) \S+/m, 'PROC $1 '],
    ['no PROC line (the process exited)', /^PROC .*$/m, ''],
    ['a PROC line whose stat names another pid', /^PROC 4242 /m, 'PROC 4243 '],
    ['a node that printed only the tree', /^(?!TREE|RSS_KB).*$/gm, ''],
  ])('gives nothing for %s', (_, line, by) => {
    expect(parseRootProcess(inspectionOutput().replace(line, by))).toBeUndefined();
  });
});

describe('isKernelThread', () => {
  it.each([
    ['PF_KTHREAD in the flags', 99, { flags: 0x00208040, ppid: 0, hasExe: false }, true],
    ['kthreadd without PF_KTHREAD read', 2, { flags: 0, ppid: 0, hasExe: false }, true],
    ['a child of kthreadd', 3, { flags: 0, ppid: 2, hasExe: false }, true],
    ['pid 2 of a container (it has an executable)', 2, { flags: 4194560, ppid: 0, hasExe: true }, false],
    ['a user process (PF_RANDOMIZE, PF_FORKNOEXEC)', 7841, { flags: 4194560, ppid: 7835, hasExe: true }, false],
  ])('%s', (_, pid, facts, expected) => {
    expect(isKernelThread(pid, facts)).toBe(expected);
  });

  it('holds for the real kthreadd line, whatever /proc/2/exe said', () => {
    expect(isKernelThread(2, { ...parseProcStat(KTHREADD)!, hasExe: true })).toBe(true);
    expect(isKernelThread(7841, { ...parseProcStat(BASH)!, hasExe: true })).toBe(false);
  });
});

describe('registrationRefusal', () => {
  const root = (over: Partial<Parameters<typeof inspectionOutput>[0]> = {}): RootProcess =>
    parseRootProcess(inspectionOutput(over))!;

  it('lets an ordinary tree in', () => {
    expect(registrationRefusal('node-a', 4242, root(), [4242, 4243])).toBeUndefined();
  });

  it.each([
    ['pid 1', 1, {}, [1, 2], /pid 1 is the init of node 'node-a'/],
    [
      'a kernel thread',
      2,
      { pid: 2, comm: 'kthreadd', ppid: 0, flags: 2129984, hasExe: false },
      [2, 3],
      /pid 2 \("kthreadd"\) on node 'node-a' is a kernel thread/,
    ],
    ['a zombie', 4242, { state: 'Z' }, [4242], /has no executable spotlift can see \(a zombie/],
    ['no executable', 4242, { hasExe: false }, [4242], /has no executable/],
    [
      'a process of another network namespace',
      4242,
      { netNs: '4026532100', sessionNetNs: '4026532999' },
      [4242],
      /is not in node 'node-a''s network namespace \(net:\[4026532100\], the node's SSH session is in net:\[4026532999\]\)/,
    ],
    [
      "the node's sshd (an ancestor of the session)",
      800,
      { pid: 800, comm: 'sshd' },
      [800, 900, 9000, 9001],
      /the tree of pid 800 \("sshd"\) on node 'node-a' holds pid 800, which carries spotlift's own SSH session/,
    ],
    [
      'a tree that reaches the session further down',
      500,
      { pid: 500, comm: 'runsv' },
      [500, 800, 9000, 9001],
      /holds pid 800, which carries spotlift's own SSH session/,
    ],
  ])('refuses %s', (_, pid, facts, tree, reason) => {
    expect(registrationRefusal('node-a', pid, root(facts), tree)).toMatch(reason);
  });
});

describe('identityMismatch', () => {
  const identity = { bootId: 'b1', pidNs: '11', startTime: '500' };
  const w = { nodeId: 'node-a', pid: 4242, identity };

  it('accepts the same process', () => {
    expect(identityMismatch(w, { ...identity })).toBeUndefined();
  });

  it('names a reused pid (another start time) and a reboot', () => {
    expect(identityMismatch(w, { ...identity, startTime: '900' })).toMatch(
      /pid 4242 on node 'node-a' is another process now \(started at tick 900 .* registered one at tick 500/,
    );
    expect(identityMismatch(w, { ...identity, bootId: 'b2' })).toMatch(/node 'node-a' rebooted/);
  });

  it('cannot compare without both identities', () => {
    expect(identityMismatch({ nodeId: 'node-a', pid: 4242 }, identity)).toBeUndefined();
    expect(identityMismatch(w, undefined)).toBeUndefined();
  });
});
