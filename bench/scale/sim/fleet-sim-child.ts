/**
 * The fleet simulator's process (fleet-bench.ts forks it): N simulated nodes, each a real SSH server (ssh2's
 * Server, ed25519 host key pinned in the orchestrator's config) on its own loopback address (127.77.x.y:2222), so the built
 * orchestrator reaches them exactly as it reaches real nodes: one pooled SSH connection per node, exec channels.
 * What each node does with a command (node-answers.ts):
 * - the metadata watch loop and the per-request curl: answered from the node's simulated AWS IMDS (no curl, no
 *   HTTP: a notice set here is printed by the loop at its next round, as the real loop would);
 * - the probe: canned answers (CRIU 4.2.1, "Looks good", 8 GiB free); MemAvailable: 6 GiB;
 * - the process tree inspection before a notice (workload registration): run for real with `sh` on this host,
 *   so the registered workloads are real processes here (a `sleep` per workload, started on request);
 * - after a notice on the node, the first tree inspection after `skip` of them (for a notice, none: the first is
 *   the migration job's preflight on the source) is recorded as the node's "first freeze" and refused (exit 1):
 *   the migration stops in preflight, with nothing frozen. CRIU itself is not simulated;
 * - a migration's cleanup (`rm -rf` of its directory) succeeds; any other command is refused (exit 1).
 * IPC: {cmd:'notice', nodes, skip} sets Spot notices now; {cmd:'arm', nodes, skip} the same without a notice, after
 * `skip` commands served as usual (the bench's 200 migrations posted at once: the POST's own inspection runs,
 * the next command at each source, the worker's, is recorded and refused); {cmd:'status'} answers counts, live loops and the freezes
 * (ms after each notice, on this process's clock); {cmd:'reset'} clears notices and freezes; {cmd:'standIn'}
 * starts a stand-in process and answers its pid.
 * Args: N, port, then the range this process serves [from, to) and the host key file (`--sim-procs`: the bench
 * splits the fleet over several of these, so one simulator process serving every handshake is not the limit).
 */
import { execFile, execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import ssh2 from 'ssh2';
import type { ServerChannel } from 'ssh2';
import {
  WatchLoop,
  classifyCommand,
  curlDump,
  imdsAnswer,
  parseCurlConfig,
  parseWatchInput,
  type CommandKind,
  type ImdsState,
} from './node-answers.js';
import { simAddress } from './fleet-sim.js';

const { Server } = ssh2;
const N = Number(process.argv[2] ?? 1000);
const PORT = Number(process.argv[3] ?? 2222);
const FROM = Number(process.argv[4] ?? 0);
const TO = Number(process.argv[5] ?? N);
/** One host key for every simulated node (ssh-keygen's: ssh2's Server cannot read its own generated ed25519 keys). */
const keyFile = process.argv[6] ?? join(mkdtempSync(join(tmpdir(), 'spotlift-fleet-sim-')), 'host_ed25519');
if (!process.argv[6]) execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
/**
 * The workloads' stand-ins: real processes of this host, not this simulator (which holds the SSH sessions), one
 * per node (the nodes share this host's boot id, so one process would be one workload to the orchestrator).
 */
const standIns: ChildProcess[] = [];
const keys = { private: readFileSync(keyFile), public: readFileSync(`${keyFile}.pub`, 'utf8') };

interface SimNode {
  id: string;
  imds: ImdsState;
  noticeAt?: number;
  /** Commands after the arming to serve as usual before the one recorded (the POST's own inspection). */
  armSkip?: number;
  freezeMs?: number;
  /** When the first command after the notice (or arming) came, ms since the epoch (comparable across processes). */
  firstAt?: number;
  freezeCommand?: string;
  loops: Set<WatchLoop>;
}

/** Node i of the fleet is `nodes[i - FROM]` here (this process serves [FROM, TO)). */
const nodes: SimNode[] = Array.from({ length: TO - FROM }, (_, j) => ({
  id: `sim-${FROM + j}`,
  imds: {},
  loops: new Set(),
}));
const counts: Record<CommandKind, number> = {
  watch: 0,
  curl: 0,
  probe: 0,
  memAvailable: 0,
  inspect: 0,
  cleanup: 0,
  other: 0,
};
let connections = 0;

const PROBE = [
  '@@version',
  'Version: 4.2.1',
  '@@check',
  'Looks good.',
  '@@feature mem_dirty_track',
  'yes',
  '@@feature uffd-noncoop',
  'yes',
  '@@feature lazy_parent_pages',
  'yes',
  '@@kernel',
  '6.1.0-sim',
  '@@cpu',
  'Simulated CPU',
  '4',
  '@@mem',
  'MemTotal: 16777216',
  'MemAvailable: 8388608',
  '@@disk',
  String(100 * 2 ** 30),
].join('\n');

function finish(ch: ServerChannel, code: number, out = '', err = ''): void {
  if (out) ch.write(out);
  if (err) ch.stderr.write(err);
  ch.exit(code);
  ch.end();
}

/** Reads the channel's stdin to EOF (the orchestrator ends it for every command it feeds). */
function readStdin(ch: ServerChannel, done: (stdin: string) => void): void {
  let s = '';
  ch.on('data', (d: Buffer) => (s += d.toString()));
  ch.on('end', () => done(s));
}

function runWatch(node: SimNode, ch: ServerChannel): void {
  let stdin = '';
  let timer: NodeJS.Timeout | undefined;
  let loop: WatchLoop | undefined;
  const stop = () => {
    clearInterval(timer);
    if (loop) node.loops.delete(loop);
  };
  ch.on('data', (d: Buffer) => {
    if (loop) return;
    stdin += d.toString();
    const input = parseWatchInput(stdin);
    if (!input) return;
    const l = new WatchLoop(input);
    loop = l;
    node.loops.add(l);
    const round = () => {
      const out = l.round(node.imds);
      if (out) ch.write(out);
    };
    round();
    timer = setInterval(round, input.periodMs);
  });
  ch.on('close', stop);
  ch.on('error', stop);
}

function handle(node: SimNode, command: string, ch: ServerChannel): void {
  const kind = classifyCommand(command);
  counts[kind]++;
  ch.on('error', () => undefined);
  if (kind === 'watch') return runWatch(node, ch);
  if (kind === 'curl')
    return readStdin(ch, (cfg) => finish(ch, 0, curlDump(imdsAnswer(node.imds, parseCurlConfig(cfg)))));
  if (kind === 'probe') return finish(ch, 0, PROBE);
  if (kind === 'memAvailable') return finish(ch, 0, `${6 * 1024 * 1024}\n`);
  // A migration's working directory removed (its cleanup): nothing is there to remove, as on a real node.
  if (kind === 'cleanup') return finish(ch, 0, '');
  // Only a tree inspection counts as the migration's first command: the sweeper's scans and the like may reach a
  // noticed node first, and are not the migration.
  if (kind === 'inspect' && node.noticeAt !== undefined && node.armSkip) node.armSkip--;
  else if (kind === 'inspect' && node.noticeAt !== undefined) {
    if (node.freezeMs === undefined) {
      node.freezeMs = performance.now() - node.noticeAt;
      node.firstAt = Date.now();
      node.freezeCommand = command.slice(0, 80);
    }
    return finish(ch, 1, '', 'simulated node: migrations are not simulated past their first command\n');
  }
  if (kind === 'inspect') {
    execFile('sh', ['-c', command], { timeout: 15_000, maxBuffer: 1 << 20 }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : 1) : 0;
      finish(ch, code, stdout, stderr);
    });
    return;
  }
  finish(ch, 1, '', 'simulated node: command not simulated\n');
}

const listening = nodes.map((node, i) => {
  const server = new Server({ hostKeys: [keys.private] }, (client) => {
    connections++;
    client.on('error', () => undefined);
    client.on('close', () => connections--);
    // Any key is accepted: the simulator tests the orchestrator, not authentication.
    client.on('authentication', (ctx) => ctx.accept());
    client.on('ready', () => {
      client.on('session', (accept) => {
        const session = accept();
        session.on('exec', (acceptExec, _reject, info) => handle(node, info.command, acceptExec()));
      });
    });
  });
  return new Promise<InstanceType<typeof Server>>((resolve, reject) => {
    server.once('error', reject);
    server.listen(PORT, simAddress(FROM + i), () => resolve(server));
  });
});

process.on('message', (m: { cmd: string; nodes?: string[]; skip?: number; seq: number }) => {
  if (m.cmd === 'notice') {
    const at = performance.now();
    const time = new Date(Date.now() + 120_000).toISOString().replace(/\.\d{3}Z$/, 'Z');
    for (const id of m.nodes ?? []) {
      const node = nodes[Number(id.slice(4)) - FROM];
      if (!node) continue;
      node.imds.spot = { action: 'terminate', time };
      node.noticeAt = at;
      node.armSkip = m.skip ?? 0;
    }
    process.send!({ cmd: 'noticed', seq: m.seq });
  } else if (m.cmd === 'arm') {
    // Like a notice without the IMDS notice: the next migration command at these nodes is recorded and refused.
    const at = performance.now();
    for (const id of m.nodes ?? []) {
      const node = nodes[Number(id.slice(4)) - FROM];
      if (!node) continue;
      node.noticeAt = at;
      node.armSkip = m.skip ?? 0;
    }
    process.send!({ cmd: 'armed', seq: m.seq });
  } else if (m.cmd === 'status') {
    process.send!({
      cmd: 'status',
      seq: m.seq,
      counts,
      connections,
      watchedNodes: nodes.filter((n) => [...n.loops].some((l) => l.watchesSpot)).length,
      loops: nodes.reduce((a, n) => a + n.loops.size, 0),
      freezes: Object.fromEntries(nodes.filter((n) => n.freezeMs !== undefined).map((n) => [n.id, n.freezeMs])),
      firstAt: Object.fromEntries(nodes.filter((n) => n.firstAt !== undefined).map((n) => [n.id, n.firstAt])),
      freezeCommands: [...new Set(nodes.flatMap((n) => (n.freezeCommand ? [n.freezeCommand] : [])))],
    });
  } else if (m.cmd === 'reset') {
    for (const n of nodes) {
      n.imds = {};
      delete n.noticeAt;
      delete n.freezeMs;
      delete n.firstAt;
      delete n.armSkip;
      delete n.freezeCommand;
    }
    process.send!({ cmd: 'reset', seq: m.seq });
  } else if (m.cmd === 'standIn') {
    const p = spawn('sleep', ['infinity'], { stdio: 'ignore' });
    standIns.push(p);
    process.send!({ cmd: 'standIn', seq: m.seq, pid: p.pid });
  } else if (m.cmd === 'stop') {
    void Promise.all(listening).then((servers) => servers.forEach((s) => s.close()));
    standIns.forEach((p) => p.kill());
    process.exit(0);
  }
});

// The bench gone (killed, crashed): no stand-in outlives it.
process.on('disconnect', () => {
  standIns.forEach((p) => p.kill());
  process.exit(0);
});
await Promise.all(listening).catch((error: unknown) => {
  console.error(`fleet simulator: ${String(error)}`);
  process.exit(1);
});
process.send!({ cmd: 'ready', hostKey: keys.public.split(' ').slice(0, 2).join(' ') });
