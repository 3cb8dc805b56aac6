/**
 * The fleet simulator as the benches drive it: `procs` child processes (fleet-sim-child.ts says what a simulated
 * node answers), each serving a contiguous share of N nodes on loopback addresses, and the node specs that put
 * them in an orchestrator's config. Used by the fleet bench (bench/scale/fleet-bench.ts) and by the notice bench's
 * `--fleet` (bench/notice: real lab nodes beside a simulated fleet).
 */
import { execFileSync, fork, type ChildProcess } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface SimStatus {
  counts: Record<string, number>;
  connections: number;
  watchedNodes: number;
  loops: number;
  freezes: Record<string, number>;
  firstAt: Record<string, number>;
  freezeCommands: string[];
}

let stopping = false;

/** One simulator process, serving nodes [from, to). */
class SimChild {
  private constructor(private readonly child: ChildProcess) {}

  static async start(n: number, port: number, from: number, to: number, keyFile: string): Promise<SimChild> {
    const child = fork(fileURLToPath(new URL('./fleet-sim-child.js', import.meta.url)), [
      String(n),
      String(port),
      String(from),
      String(to),
      keyFile,
    ]);
    await new Promise<unknown>((resolve, reject) => {
      child.once('message', resolve);
      child.once('exit', (code) => reject(new Error(`the simulator exited (${code})`)));
    });
    // A simulator gone mid-run would leave every wait below to its timeout.
    child.once('exit', (code) => {
      if (stopping) return;
      console.error(`a fleet simulator process exited (${code})`);
      process.exit(1);
    });
    return new SimChild(child);
  }

  private seq = 0;

  /** One request, one answer (matched by a sequence number: registrations ask for stand-ins in parallel). */
  ask<T>(msg: object, reply: string): Promise<T> {
    const seq = ++this.seq;
    return new Promise<T>((resolve) => {
      const on = (m: { cmd: string; seq?: number }) => {
        if (m.cmd !== reply || m.seq !== seq) return;
        this.child.off('message', on);
        resolve(m as T);
      };
      this.child.on('message', on);
      this.child.send({ ...msg, seq });
    });
  }

  stop(): void {
    this.child.send({ cmd: 'stop' });
  }
}

/** The fleet simulator: `procs` processes, each serving a contiguous share of the nodes, one host key for all. */
export class Sim {
  private next = 0;

  private constructor(
    private readonly children: SimChild[],
    private readonly per: number,
    readonly hostKey: string,
  ) {}

  static async start(n: number, procs: number, port: number): Promise<Sim> {
    const keyFile = join(tmpdir(), `spotlift-fleet-sim-${process.pid}-host`);
    rmSync(keyFile, { force: true });
    rmSync(`${keyFile}.pub`, { force: true });
    // ssh-keygen's: ssh2's Server cannot read its own generated ed25519 keys.
    execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-f', keyFile]);
    const per = Math.ceil(n / procs);
    const children = await Promise.all(
      Array.from({ length: procs }, (_, p) => SimChild.start(n, port, p * per, Math.min(n, (p + 1) * per), keyFile)),
    );
    const hostKey = readFileSync(`${keyFile}.pub`, 'utf8').split(' ').slice(0, 2).join(' ');
    return new Sim(children, per, hostKey);
  }

  async status(): Promise<SimStatus> {
    const all = await Promise.all(this.children.map((c) => c.ask<SimStatus>({ cmd: 'status' }, 'status')));
    const counts: Record<string, number> = {};
    for (const s of all) for (const [k, v] of Object.entries(s.counts)) counts[k] = (counts[k] ?? 0) + v;
    const sum = (f: (s: SimStatus) => number) => all.reduce((a, s) => a + f(s), 0);
    return {
      counts,
      connections: sum((s) => s.connections),
      watchedNodes: sum((s) => s.watchedNodes),
      loops: sum((s) => s.loops),
      freezes: Object.assign({}, ...all.map((s) => s.freezes)) as Record<string, number>,
      firstAt: Object.assign({}, ...all.map((s) => s.firstAt)) as Record<string, number>,
      freezeCommands: [...new Set(all.flatMap((s) => s.freezeCommands))],
    };
  }

  /** Spot notices now; `skip` tree inspections at each node served before the one recorded (see the simulator). */
  notice = (nodes: string[], skip: number) => this.each(nodes, { cmd: 'notice', skip }, 'noticed');
  arm = (nodes: string[], skip: number) => this.each(nodes, { cmd: 'arm', skip }, 'armed');

  private async each(nodes: string[], msg: { cmd: string; skip?: number }, reply: string): Promise<void> {
    const byChild = new Map<number, string[]>();
    for (const id of nodes) {
      const c = Math.floor(Number(id.slice(4)) / this.per);
      byChild.set(c, [...(byChild.get(c) ?? []), id]);
    }
    await Promise.all([...byChild].map(([c, ids]) => this.children[c]!.ask({ ...msg, nodes: ids }, reply)));
  }

  async reset(): Promise<void> {
    await Promise.all(this.children.map((c) => c.ask({ cmd: 'reset' }, 'reset')));
  }

  async standIn(): Promise<number> {
    const c = this.children[this.next++ % this.children.length]!;
    return (await c.ask<{ pid: number }>({ cmd: 'standIn' }, 'standIn')).pid;
  }

  stop(): void {
    stopping = true;
    this.children.forEach((c) => c.stop());
  }
}

/** Node i's address, as fleet-sim-child.ts serves it (all of 127/8 is the loopback). */
export const simAddress = (i: number): string => `127.77.${Math.floor(i / 250)}.${(i % 250) + 1}`;

/**
 * The config file's specs of simulated nodes [0, n): spot nodes over three zones, each with an AWS metadata
 * source (the simulator answers it), reached on `port` with the simulator's host key pinned.
 */
export function simNodeSpecs(n: number, port: number, hostKey: string): object[] {
  return Array.from({ length: n }, (_, i) => ({
    id: `sim-${i}`,
    host: simAddress(i),
    port,
    user: 'spotlift',
    hostKey,
    zone: `zone-${i % 3}`,
    lifecycle: 'spot',
    metadata: { provider: 'aws', baseUrl: 'http://169.254.169.254' },
  }));
}

/** Waits until every one of `n` simulated nodes is watched by exactly one loop, steadily for 3 s (5 minutes at most). */
export async function untilFleetWatched(sim: Sim, n: number): Promise<void> {
  let steady = 0;
  for (let i = 0; steady < 6; i++) {
    const s = await sim.status();
    steady = s.watchedNodes === n && s.loops === n ? steady + 1 : 0;
    if (i > 600) throw new Error(`not every node watched after 300 s: ${JSON.stringify({ ...s, freezes: 0 })}`);
    await new Promise<void>((r) => setTimeout(r, 500));
  }
}
