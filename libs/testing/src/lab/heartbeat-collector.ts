import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { LAB_HOST_ADDRESS } from './paths.js';

/** One datagram from scripts/lab/workload.py, with where and when it arrived. */
export interface Heartbeat {
  name: string;
  /** +1 per datagram the workload sent. */
  seq: number;
  /** +1 per workload tick; lives in the workload's heap. */
  counter: number;
  ok: boolean;
  memMiB: number;
  /** Host pid of the sender (changes on restore). */
  pid: number;
  /** Set by the workload once a memory check failed. */
  error?: string;
  /** Sender address: the node the workload ran on when it sent this (10.77.0.2 is node-a, ...). */
  from: string;
  fromPort: number;
  /** Date.now() at arrival. */
  at: number;
}

export interface SeqReport {
  /** Every heartbeat's seq is its predecessor's + 1 (in arrival order). */
  gapFree: boolean;
  /** Places where seq jumped forward: a datagram was lost. */
  gaps: Array<{ after: number; next: number; at: number }>;
  /** Places where seq went back or repeated: the workload restarted (or a datagram was duplicated). */
  resets: Array<{ after: number; next: number; at: number }>;
}

/**
 * A UDP server on the lab bridge (10.77.0.1, ephemeral port unless given) that records workload heartbeats
 * per workload name, and answers questions a migration test asks about them.
 */
export class HeartbeatCollector {
  private socket: Socket | undefined;
  private readonly byName = new Map<string, Heartbeat[]>();
  private boundPort = 0;
  /** Datagrams that were not a valid heartbeat. */
  rejected = 0;

  constructor(private readonly opts: { host?: string; port?: number } = {}) {}

  get host(): string {
    return this.opts.host ?? LAB_HOST_ADDRESS;
  }

  get port(): number {
    if (!this.boundPort) throw new Error('HeartbeatCollector: not started');
    return this.boundPort;
  }

  /** Binds the socket (the lab bridge must be up for 10.77.0.1) and returns the port. */
  async start(): Promise<number> {
    if (this.socket) return this.port;
    const socket = createSocket('udp4');
    socket.on('message', (msg, rinfo) => this.record(msg, rinfo));
    await new Promise<void>((resolve, reject) => {
      socket.once('error', reject);
      socket.bind(this.opts.port ?? 0, this.host, () => {
        socket.off('error', reject);
        resolve();
      });
    });
    // Late errors (none expected for a bound UDP socket) must not crash the test process.
    socket.on('error', () => undefined);
    this.socket = socket;
    this.boundPort = socket.address().port;
    return this.boundPort;
  }

  async stop(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  /** Heartbeats of NAME in arrival order, optionally only those that arrived at or after `since` (ms epoch). */
  heartbeats(name: string, since?: number): Heartbeat[] {
    const all = this.byName.get(name) ?? [];
    return since === undefined ? [...all] : all.filter((h) => h.at >= since);
  }

  names(): string[] {
    return [...this.byName.keys()];
  }

  last(name: string): Heartbeat | undefined {
    const all = this.byName.get(name);
    return all?.[all.length - 1];
  }

  /** Distinct sender addresses of NAME's heartbeats that arrived at or after `since`. */
  sourcesSince(name: string, since: number): string[] {
    return [...new Set(this.heartbeats(name, since).map((h) => h.from))];
  }

  /** Whether every heartbeat of NAME since `since` came from ADDRESS (and there was at least one). */
  onlyFromSince(name: string, address: string, since: number): boolean {
    const s = this.sourcesSince(name, since);
    return s.length === 1 && s[0] === address;
  }

  /** Seq continuity of NAME in arrival order. */
  seqReport(name: string, since?: number): SeqReport {
    const hb = this.heartbeats(name, since);
    const gaps: SeqReport['gaps'] = [];
    const resets: SeqReport['resets'] = [];
    for (let i = 1; i < hb.length; i++) {
      const prev = hb[i - 1]!;
      const cur = hb[i]!;
      if (cur.seq === prev.seq + 1) continue;
      (cur.seq > prev.seq ? gaps : resets).push({ after: prev.seq, next: cur.seq, at: cur.at });
    }
    return { gapFree: gaps.length === 0 && resets.length === 0, gaps, resets };
  }

  isSeqGapFree(name: string, since?: number): boolean {
    return this.seqReport(name, since).gapFree;
  }

  /**
   * Whether the workload carried on across time T (e.g. a migration's start): the last heartbeat before T
   * and the first one at or after T have consecutive seqs and the counter went up by one, i.e. the process
   * continued with its memory instead of restarting, and nothing was lost in between.
   */
  counterContinuedAcross(name: string, t: number): boolean {
    const pair = this.around(name, t);
    if (!pair) return false;
    const [before, after] = pair;
    return after.seq === before.seq + 1 && after.counter === before.counter + 1;
  }

  /** The last heartbeat of NAME before T and the first at or after T, if both exist. */
  around(name: string, t: number): [Heartbeat, Heartbeat] | undefined {
    const hb = this.byName.get(name) ?? [];
    const i = hb.findIndex((h) => h.at >= t);
    if (i <= 0) return undefined;
    return [hb[i - 1]!, hb[i]!];
  }

  /** True if any heartbeat of NAME reported ok:false. */
  anyNotOk(name: string): boolean {
    return (this.byName.get(name) ?? []).some((h) => !h.ok);
  }

  /** Longest silence between two consecutive heartbeats of NAME (ms), with the pair; since `since` if given. */
  maxGap(name: string, since?: number): { gapMs: number; before?: Heartbeat; after?: Heartbeat } {
    const hb = this.heartbeats(name, since);
    let best: { gapMs: number; before?: Heartbeat; after?: Heartbeat } = { gapMs: 0 };
    for (let i = 1; i < hb.length; i++) {
      const gap = hb[i]!.at - hb[i - 1]!.at;
      if (gap > best.gapMs) best = { gapMs: gap, before: hb[i - 1], after: hb[i] };
    }
    return best;
  }

  /** Resolves when PREDICATE holds for NAME's heartbeats; rejects after timeoutMs with what was seen. */
  async waitFor(name: string, predicate: (hb: Heartbeat[]) => boolean, timeoutMs = 10_000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (predicate(this.heartbeats(name))) return;
      if (Date.now() > deadline) {
        const last = this.last(name);
        throw new Error(
          `HeartbeatCollector: timed out after ${timeoutMs} ms waiting on '${name}' ` +
            `(${this.heartbeats(name).length} heartbeats, last ${last ? JSON.stringify(last) : 'none'})`,
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  /** Waits for COUNT heartbeats of NAME that arrived at or after `since` (and from `from`, if given). */
  async waitForCount(
    name: string,
    count: number,
    opts: { since?: number; from?: string; timeoutMs?: number } = {},
  ): Promise<Heartbeat[]> {
    const pick = (hb: Heartbeat[]) =>
      hb.filter((h) => (opts.since === undefined || h.at >= opts.since) && (!opts.from || h.from === opts.from));
    await this.waitFor(name, (hb) => pick(hb).length >= count, opts.timeoutMs);
    return pick(this.heartbeats(name));
  }

  /** Forgets recorded heartbeats (of NAME, or all). */
  clear(name?: string): void {
    if (name === undefined) this.byName.clear();
    else this.byName.delete(name);
  }

  private record(msg: Buffer, rinfo: RemoteInfo): void {
    const hb = parseHeartbeat(msg, rinfo, Date.now());
    if (!hb) {
      this.rejected++;
      return;
    }
    let list = this.byName.get(hb.name);
    if (!list) this.byName.set(hb.name, (list = []));
    list.push(hb);
  }
}

/** Validates one datagram; undefined if it is not a workload heartbeat. */
export function parseHeartbeat(
  msg: Buffer,
  rinfo: { address: string; port: number },
  at: number,
): Heartbeat | undefined {
  if (msg.length > 4096) return undefined;
  let v: unknown;
  try {
    v = JSON.parse(msg.toString('utf8'));
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const o = v as Record<string, unknown>;
  const int = (x: unknown): x is number => typeof x === 'number' && Number.isSafeInteger(x) && x >= 0;
  if (typeof o.name !== 'string' || !int(o.seq) || !int(o.counter) || typeof o.ok !== 'boolean') return undefined;
  if (!int(o.mem_mib) || !int(o.pid)) return undefined;
  const hb: Heartbeat = {
    name: o.name,
    seq: o.seq,
    counter: o.counter,
    ok: o.ok,
    memMiB: o.mem_mib,
    pid: o.pid,
    from: rinfo.address,
    fromPort: rinfo.port,
    at,
  };
  if (typeof o.error === 'string') hb.error = o.error;
  return hb;
}
