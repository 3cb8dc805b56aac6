import { randomBytes } from 'node:crypto';
import type { NodeTarget } from '@spotlift/domain';
import {
  DEFAULT_MAX_METADATA_BODY_BYTES,
  MetadataClient,
  MetadataTransportError,
  type MetadataRequest,
  type MetadataResponse,
} from '@spotlift/notices';
import type { NodeShell, RemoteProcess } from '@spotlift/transport';
import {
  CURL_TIMEOUT_EXIT,
  METADATA_WATCH_COMMAND,
  MetadataWatchParser,
  curlConfig,
  metadataWatchInput,
} from '@spotlift/engine';

/** Options of {@link StreamingMetadataClient}. */
export interface StreamingMetadataOptions {
  /** How often the loop on the node polls each path. */
  intervalMs: number;
  /** Per-request curl timeout on the node. */
  requestTimeoutMs?: number;
  /** Restart back-off after the loop or its channel dies: from 1 s, doubling, up to this. */
  maxBackoffMs?: number;
  now?: () => number;
}

/**
 * A tick line about every second of loop (one short line per node and second): silent for three, the loop
 * counts as stuck, its answers are no longer served and it is restarted.
 */
const TICK_MS = 1_000;
const FIRST_BACKOFF_MS = 1_000;

interface Watched {
  headers: string;
  answer?: MetadataResponse | MetadataTransportError;
}

/**
 * Adapter: GETs of the node's metadata endpoint answered from one long-lived loop on the node (node-ops
 * metadata-watch.ts) that polls every path it was asked for locally and prints only changes over one SSH
 * channel, instead of one `curl` exec per request: for 1,000 nodes at 250 ms, 0 execs a second instead of
 * 8,000. A path is served from the loop once the loop has answered it with the same headers; until then (first
 * request, new token, loop down or stuck, restarting with back-off) the request goes through `fallback`, the
 * per-request exec client, so a notice is never waited on a loop. PUT and POST always go through `fallback`.
 */
export class StreamingMetadataClient extends MetadataClient {
  private readonly watched = new Map<string, Watched>();
  private readonly baseUrl: string;
  private readonly now: () => number;
  private proc?: RemoteProcess;
  private generation = 0;
  private lastHeard = 0;
  private restartTimer?: NodeJS.Timeout;
  private backoffMs = FIRST_BACKOFF_MS;
  private closed = false;
  /** Loops started, for tests and the bench. */
  starts = 0;
  private readonly listeners = new Set<() => void>();

  constructor(
    private readonly shell: NodeShell,
    private readonly node: NodeTarget,
    baseUrl: string,
    private readonly fallback: MetadataClient,
    private readonly options: StreamingMetadataOptions,
  ) {
    super();
    this.baseUrl = baseUrl.replace(/\/+$/, '');
    this.now = options.now ?? Date.now;
  }

  async request(req: MetadataRequest): Promise<MetadataResponse> {
    if (req.signal?.aborted) throw req.signal.reason;
    if (req.method !== 'GET' || this.closed) return this.fallback.request(req);
    const headers = JSON.stringify(Object.entries(req.headers ?? {}).sort());
    const w = this.watched.get(req.path);
    const live = this.proc && this.now() - this.lastHeard < 3 * TICK_MS;
    if (this.proc && !live) this.died(this.generation);
    if (w?.headers === headers && w.answer && live) {
      if (w.answer instanceof MetadataTransportError) throw w.answer;
      return w.answer;
    }
    if (w?.headers !== headers) {
      // A new path, or new headers (a fresh IMDS token): the loop restarts with it, soon, once for a batch.
      this.watched.set(req.path, { headers });
      this.scheduleRestart(0);
    }
    return this.fallback.request(req);
  }

  /** The loop printed a changed answer: the provider polling through this client polls at once. */
  override onChange(listener: () => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** Ends the loop (the watcher stopped). */
  close(): void {
    this.closed = true;
    clearTimeout(this.restartTimer);
    this.stop();
  }

  private scheduleRestart(ms: number): void {
    if (this.closed || this.restartTimer) return;
    this.restartTimer = setTimeout(() => {
      this.restartTimer = undefined;
      void this.start();
    }, ms);
    this.restartTimer.unref();
  }

  private stop(): void {
    const p = this.proc;
    this.proc = undefined;
    this.generation++;
    for (const w of this.watched.values()) delete w.answer;
    p?.stdout.destroy();
    p?.stdin.destroy();
  }

  private async start(): Promise<void> {
    this.stop();
    const gen = this.generation;
    const paths = [...this.watched.keys()];
    const timeoutMs = this.options.requestTimeoutMs ?? 2_000;
    const configs = paths.map((path) => {
      const headers = Object.fromEntries(JSON.parse(this.watched.get(path)!.headers) as [string, string][]);
      return curlConfig(this.baseUrl + path, { method: 'GET', path, headers }, timeoutMs);
    });
    const boundary = randomBytes(12).toString('hex');
    let proc: RemoteProcess;
    try {
      proc = await this.shell.spawn(this.node, METADATA_WATCH_COMMAND, { maxStderrBytes: 64 * 1024 });
    } catch {
      return this.died(gen);
    }
    if (gen !== this.generation || this.closed) {
      proc.stdout.destroy();
      proc.stdin.destroy();
      return;
    }
    this.proc = proc;
    this.starts++;
    const startedAt = this.now();
    this.lastHeard = startedAt;
    const parser = new MetadataWatchParser(boundary, DEFAULT_MAX_METADATA_BODY_BYTES + 64 * 1024);
    proc.stdout.setEncoding('utf8');
    proc.stdout.on('data', (chunk: string) => {
      if (gen !== this.generation) return;
      let changed = false;
      try {
        for (const e of parser.push(chunk)) {
          this.lastHeard = this.now();
          if (e.kind === 'tick') continue;
          changed = true;
          const w = this.watched.get(paths[e.index] ?? '');
          if (!w) continue;
          w.answer =
            e.curlExit === 0
              ? { status: e.status, headers: {}, body: e.body }
              : new MetadataTransportError(
                  `curl on ${this.node.id} exited ${e.curlExit}`,
                  e.curlExit === CURL_TIMEOUT_EXIT,
                );
        }
        // Up and answering for a minute: the next failure starts the back-off from the bottom again.
        if (this.now() - startedAt > 60_000) this.backoffMs = FIRST_BACKOFF_MS;
      } catch {
        this.died(gen);
        return;
      }
      if (changed) for (const listener of this.listeners) listener();
    });
    proc.stdout.on('error', () => this.died(gen));
    void proc.done.then(() => this.died(gen));
    proc.stdin.end(
      metadataWatchInput(boundary, this.options.intervalMs, Math.ceil(TICK_MS / this.options.intervalMs), configs),
    );
  }

  /** The loop of generation `gen` ended or misbehaved: requests fall back to exec; a new loop after back-off. */
  private died(gen: number): void {
    if (gen !== this.generation || this.closed) return;
    this.stop();
    const wait = this.backoffMs;
    this.backoffMs = Math.min(this.backoffMs * 2, this.options.maxBackoffMs ?? 30_000);
    this.scheduleRestart(wait);
  }
}
