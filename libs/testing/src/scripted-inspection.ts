/**
 * What NodeOps.inspectTree's script prints on a node, for ScriptedNodeShell rules: the root's identity lines
 * (libs/engine node-ops identity-script, printed by inspectTree) and the tree. Defaults describe an ordinary process in the session's
 * own network namespace; tests change one fact at a time.
 */
export interface InspectionFacts {
  pid?: number;
  tree?: number[];
  rssKb?: number;
  comm?: string;
  state?: string;
  ppid?: number;
  flags?: number;
  startTime?: string;
  bootId?: string;
  pidNs?: string;
  netNs?: string;
  sessionNetNs?: string;
  hasExe?: boolean;
  /** The session's shell and its ancestors (default: a shell under an sshd under pid 1, none in the tree). */
  sessionPids?: number[];
}

/** A /proc/<pid>/stat line with the given fields (the rest are plausible zeros). */
export function procStatLine(f: {
  pid: number;
  comm: string;
  state: string;
  ppid: number;
  flags: number;
  startTime: string;
}): string {
  // Fields 5..8, then flags (9), then 10..21, then starttime (22), then a few more.
  const between = Array.from({ length: 12 }, () => '0').join(' ');
  return `${f.pid} (${f.comm}) ${f.state} ${f.ppid} ${f.pid} ${f.pid} 0 -1 ${f.flags} ${between} ${f.startTime} 1000 200 0\n`;
}

export function inspectionOutput(facts: InspectionFacts = {}): string {
  const pid = facts.pid ?? 4242;
  const stat = procStatLine({
    pid,
    comm: facts.comm ?? 'python3',
    state: facts.state ?? 'S',
    ppid: facts.ppid ?? 4000,
    flags: facts.flags ?? 0x400100,
    startTime: facts.startTime ?? '123456',
  });
  return [
    `BOOT ${facts.bootId ?? '53b88e37-904f-4ee1-8e18-0fb871a935bd'}`,
    `PROC ${pid} ${Buffer.from(stat).toString('base64')} ${facts.pidNs ?? '4026532201'} 1234567`,
    `NET_NS net:[${facts.netNs ?? '4026532100'}]`,
    `SESSION_NET_NS net:[${facts.sessionNetNs ?? facts.netNs ?? '4026532100'}]`,
    `EXE ${facts.hasExe === false ? 'no' : 'yes'}`,
    `SESSION ${(facts.sessionPids ?? [9001, 9000, 800, 1]).join(' ')}`,
    `TREE ${(facts.tree ?? [pid]).join(' ')}`,
    `RSS_KB ${facts.rssKb ?? 65536}`,
    '',
  ].join('\n');
}
