/**
 * What watching nodes' metadata costs the orchestrator: N watched "nodes" (AWS IMDS providers, poll 250 ms),
 * first in exec mode (one `curl` exec over SSH per request, as before) then in stream mode (one long-lived
 * loop per node printing only changes). The lab has three sshd nodes; the N watched nodes are spread over
 * them (distinct node ids on the same hosts: each has its own loop or its own execs, over its host's one SSH
 * connection), all polling one fake IMDS on the lab bridge with curl run on the node, as 169.254.169.254
 * would be. Measured per mode over the window: SSH execs/s, loop channels, IMDS requests/s (the polling work
 * done on the nodes), orchestrator CPU (this process: the watchers and the SSH client; the fake IMDS runs in a
 * child process, imds-child.ts, so its CPU is not counted)
 * and event-loop lag p99, then the same per 1,000 nodes, linearly.
 *
 *   bash bench/run.sh scale --watch [--nodes 30] [--seconds 10]
 */
import { fork, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import type { NodeTarget } from '@spotlift/domain';
import { AwsImdsNoticeProvider, type MetadataClient, type NoticeSink } from '@spotlift/notices';
import { labUp } from '@spotlift/testing';
import { type ExecOptions, SshNodeShell } from '@spotlift/transport';
import { SshMetadataClient } from '../../apps/orchestrator/src/notices/ssh-metadata-client.adapter.js';
import { StreamingMetadataClient } from '../../apps/orchestrator/src/notices/ssh-metadata-watch.adapter.js';

const POLL_MS = 250;
const args = process.argv.slice(2);
const num = (name: string, fallback: number) => {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : NaN;
  return Number.isFinite(v) && v > 0 ? v : fallback;
};
const N = num('nodes', 30);
const SECONDS = num('seconds', 10);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

class CountingShell extends SshNodeShell {
  execs = 0;
  override exec(node: NodeTarget, command: string, opts?: ExecOptions) {
    this.execs++;
    return super.exec(node, command, opts);
  }
}

interface Figures {
  mode: string;
  execsPerSec: number;
  loops: number;
  imdsPerSec: number;
  cpuPct: number;
  lagP99Ms: number;
}

/** The fake IMDS child: its URL, and the requests it served since the last count. */
class ImdsChild {
  private constructor(
    private readonly child: ChildProcess,
    readonly url: string,
  ) {}

  static async start(): Promise<ImdsChild> {
    const child = fork(fileURLToPath(new URL('./imds-child.js', import.meta.url)));
    const url = await new Promise<string>((resolve) => child.once('message', (m: { url: string }) => resolve(m.url)));
    return new ImdsChild(child, url);
  }

  count(): Promise<number> {
    const answer = new Promise<number>((resolve) =>
      this.child.once('message', (m: { count: number }) => resolve(m.count)),
    );
    this.child.send('count');
    return answer;
  }

  stop(): void {
    this.child.send('stop');
  }
}

async function measure(mode: 'exec' | 'stream', nodes: NodeTarget[], imds: ImdsChild, key: Buffer) {
  // Enough channels per host for every watched node's loop (the lab's sshd allows 64 sessions).
  const shell = new CountingShell({ privateKey: key, maxChannelsPerNode: 60 });
  const stop = new AbortController();
  const sink: NoticeSink = { notice: () => undefined, problem: () => undefined };
  const streams: StreamingMetadataClient[] = [];
  for (const node of nodes) {
    let client: MetadataClient = new SshMetadataClient(shell, node, { baseUrl: imds.url });
    if (mode === 'stream') {
      const s = new StreamingMetadataClient(shell, node, imds.url, client, { intervalMs: POLL_MS });
      streams.push(s);
      client = s;
    }
    const aws = new AwsImdsNoticeProvider({
      nodeId: node.id,
      client,
      pollIntervalMs: POLL_MS,
      watchMaintenance: false,
    });
    // Each node its own signal, as the orchestrator does: one shared signal gets a listener per sleeping watcher.
    void aws.watch(sink, AbortSignal.any([stop.signal]));
  }
  await sleep(3_000); // warm-up: connections, tokens, loops started
  const lag = monitorEventLoopDelay({ resolution: 10 });
  lag.enable();
  await imds.count();
  const [execs0, cpu0, t0] = [shell.execs, process.cpuUsage(), Date.now()];
  await sleep(SECONDS * 1000);
  const cpu = process.cpuUsage(cpu0);
  const secs = (Date.now() - t0) / 1000;
  const polls = await imds.count();
  lag.disable();
  const f: Figures = {
    mode,
    execsPerSec: (shell.execs - execs0) / secs,
    loops: streams.reduce((a, s) => a + s.starts, 0),
    imdsPerSec: polls / secs,
    cpuPct: ((cpu.user + cpu.system) / 1000 / (secs * 1000)) * 100,
    lagP99Ms: lag.percentile(99) / 1e6,
  };
  stop.abort();
  streams.forEach((s) => s.close());
  await sleep(1_500);
  await shell.close();
  return f;
}

async function main(): Promise<void> {
  const lab = await labUp({ nodes: 3 });
  const key = readFileSync(lab.ssh.privateKeyPath);
  const imds = await ImdsChild.start();
  const nodes = Array.from({ length: N }, (_, i) => ({ ...lab.nodes[i % lab.nodes.length]!, id: `watched-${i}` }));
  console.log(
    `metadata watch cost: ${N} watched nodes over ${lab.nodes.length} lab hosts, AWS IMDS poll ${POLL_MS} ms, ${SECONDS} s per mode`,
  );
  const rows: Figures[] = [];
  for (const mode of ['exec', 'stream'] as const) rows.push(await measure(mode, nodes, imds, key));
  imds.stop();
  for (const r of rows) {
    const per1k = 1000 / N;
    console.log(
      `  ${r.mode.padEnd(6)} SSH execs/s ${r.execsPerSec.toFixed(1)} (x${per1k.toFixed(1)} = ${(r.execsPerSec * per1k).toFixed(0)} per 1,000 nodes), ` +
        `loop channels ${r.loops}, IMDS requests/s ${r.imdsPerSec.toFixed(1)}, orchestrator CPU ${r.cpuPct.toFixed(1)} % ` +
        `(${(r.cpuPct * per1k).toFixed(0)} % per 1,000 nodes), event-loop lag p99 ${r.lagP99Ms.toFixed(1)} ms`,
    );
  }
  const [ex, st] = rows as [Figures, Figures];
  console.log(
    `  stream / exec: CPU x${(st.cpuPct / ex.cpuPct).toFixed(2)}, execs ${st.execsPerSec.toFixed(1)} vs ${ex.execsPerSec.toFixed(1)}/s`,
  );
  process.exit(0);
}

void main().catch((error: unknown) => {
  console.error(error);
  process.exit(1);
});
