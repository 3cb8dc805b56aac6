/**
 * The pure part of the fleet simulator (fleet-bench.ts): what a simulated node answers to the commands the
 * orchestrator sends it on the notice path, with no I/O. The node side of the metadata watch is emulated here,
 * not run: instead of `sh` polling 169.254.169.254 with curl, the simulator reads the same stdin (boundary,
 * period, tick count, curl configs), answers each config from the node's simulated IMDS state, and prints the
 * same records (`<b> <i>` ... `<b> end`, `<b> tick`) on the same schedule, one round per period.
 */
import { CURL_COMMAND, METADATA_WATCH_COMMAND } from '@spotlift/engine';

/** What a command is, to the simulator. */
export type CommandKind = 'watch' | 'curl' | 'probe' | 'memAvailable' | 'inspect' | 'cleanup' | 'other';

export function classifyCommand(command: string): CommandKind {
  if (command === (METADATA_WATCH_COMMAND as string)) return 'watch';
  if (command === (CURL_COMMAND as string)) return 'curl';
  if (command.includes("echo '@@version'")) return 'probe';
  if (command.includes('/^MemAvailable:/ {print $2}')) return 'memAvailable';
  // The tree inspection (registration, and the first thing a migration's preflight runs on the source).
  if (command.includes('RSS_KB')) return 'inspect';
  // A migration's cleanup: `rm -rf <imageRoot>/<migration id>`, quoted by shq (node-ops.ts removeDir).
  if (/^rm -rf (?:'[^']+'|[\w./-]+)$/.test(command)) return 'cleanup';
  return 'other';
}

/** One request as a curl config (metadata-curl.ts `curlConfig`) describes it. */
export interface CurlRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
}

/** Reads `key = "value"` lines with curl's escapes; only what the orchestrator writes. */
export function parseCurlConfig(config: string): CurlRequest {
  const req: CurlRequest = { method: 'GET', path: '/', headers: {} };
  for (const line of config.split('\n')) {
    const m = /^([a-z-]+) = "((?:[^"\\]|\\.)*)"$/.exec(line);
    if (!m) continue;
    const value = m[2]!.replace(/\\(.)/g, (_, c: string) => ({ t: '\t', n: '\n', r: '\r', v: '\v' })[c] ?? c);
    if (m[1] === 'url') req.path = new URL(value).pathname;
    else if (m[1] === 'request') req.method = value;
    else if (m[1] === 'header') {
      const i = value.indexOf(':');
      const v = value.slice(i + 1).trim();
      if (i > 0 && v) req.headers[value.slice(0, i).toLowerCase()] = v;
    }
  }
  return req;
}

/** A node's simulated AWS IMDS: a Spot notice or none. Tokens are issued but not checked. */
export interface ImdsState {
  spot?: { action: 'terminate' | 'stop' | 'hibernate'; time: string };
}

export interface ImdsAnswer {
  status: number;
  headers: Record<string, string>;
  body: string;
}

const NOT_FOUND: ImdsAnswer = { status: 404, headers: { 'content-type': 'text/html' }, body: '404 - Not Found' };

/** IMDS's answer (as FakeImdsServer / AEMM give it) to one request. */
export function imdsAnswer(state: ImdsState, req: CurlRequest): ImdsAnswer {
  if (req.path === '/latest/api/token') {
    if (req.method !== 'PUT') return { ...NOT_FOUND, status: 405, body: '405 - Method Not Allowed' };
    const ttl = req.headers['x-aws-ec2-metadata-token-ttl-seconds'] ?? '21600';
    return {
      status: 200,
      headers: { 'content-type': 'text/plain', 'x-aws-ec2-metadata-token-ttl-seconds': ttl },
      body: 'simulated-token',
    };
  }
  if (req.path === '/latest/meta-data/spot/instance-action' && state.spot) {
    return {
      status: 200,
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify(state.spot, null, '\t'),
    };
  }
  return NOT_FOUND;
}

/** What `curl -sS -D - -K -` prints for an answer (CURL_COMMAND: headers, blank line, body). */
export function curlDump(a: ImdsAnswer): string {
  const head = [`HTTP/1.1 ${a.status} X`, ...Object.entries(a.headers).map(([k, v]) => `${k}: ${v}`)];
  return head.join('\r\n') + '\r\n\r\n' + a.body;
}

/** The watch loop's stdin, parsed (metadata-watch.ts `metadataWatchInput`). */
export interface WatchInput {
  boundary: string;
  periodMs: number;
  tickEvery: number;
  requests: CurlRequest[];
}

/** Parses the loop's stdin once it is complete; undefined while lines are missing. */
export function parseWatchInput(stdin: string): WatchInput | undefined {
  const lines = stdin.split('\n');
  if (lines.length < 5) return undefined;
  const [boundary, period, tick, count] = lines as [string, string, string, string];
  const n = Number(count);
  const requests: CurlRequest[] = [];
  let at = 4;
  for (let i = 0; i < n; i++) {
    const end = lines.indexOf(boundary, at);
    if (end < 0) return undefined;
    requests.push(parseCurlConfig(lines.slice(at, end).join('\n')));
    at = end + 1;
  }
  return { boundary, periodMs: Number(period), tickEvery: Number(tick), requests };
}

/**
 * One emulated loop: `round` is one period's work, returning what the loop prints then (answers that changed
 * since the last round, and a tick line every `tickEvery` rounds), as the `sh` loop does.
 */
export class WatchLoop {
  private readonly last: string[] = [];
  private rounds = 0;

  constructor(readonly input: WatchInput) {}

  round(state: ImdsState): string {
    let out = '';
    const b = this.input.boundary;
    this.input.requests.forEach((req, i) => {
      const a = imdsAnswer(state, req);
      const o = `${a.body}\n${a.status}\n0`;
      if (this.last[i] === o) return;
      this.last[i] = o;
      out += `${b} ${i}\n${o}\n${b} end\n`;
    });
    if (++this.rounds >= this.input.tickEvery) {
      this.rounds = 0;
      out += `${b} tick\n`;
    }
    return out;
  }

  /** The loop watches the Spot notice path (the provider asked for it): a notice set now is seen next round. */
  get watchesSpot(): boolean {
    return this.input.requests.some((r) => r.path === '/latest/meta-data/spot/instance-action');
  }
}
