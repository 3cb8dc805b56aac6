import type { NodeTarget } from '@spotlift/domain';
import {
  DEFAULT_MAX_METADATA_BODY_BYTES,
  MetadataClient,
  MetadataTransportError,
  type MetadataRequest,
  type MetadataResponse,
} from '@spotlift/notices';
import type { NodeShell } from '@spotlift/transport';
import { CURL_COMMAND, CURL_TIMEOUT_EXIT, curlConfig, parseCurlOutput } from '@spotlift/engine';

/** Link-local metadata endpoints by cloud (GCP's by address: no DNS inside the poll). */
export const DEFAULT_METADATA_BASE_URL = {
  aws: 'http://169.254.169.254',
  gcp: 'http://169.254.169.254',
  azure: 'http://169.254.169.254',
} as const;

/**
 * Adapter: the node's metadata endpoint reached by running `curl` on the node over the orchestrator's
 * pooled SSH connection to it (one exec channel per request; a GCP hanging GET holds its channel open
 * for the hang). No agent on the node, and the endpoint is reached from the node itself, which is the
 * only place IMDS answers.
 */
export class SshMetadataClient extends MetadataClient {
  private readonly baseUrl: string;
  private readonly defaultTimeoutMs: number;

  constructor(
    private readonly shell: NodeShell,
    private readonly node: NodeTarget,
    options: { baseUrl: string; defaultTimeoutMs?: number },
  ) {
    super();
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 2_000;
  }

  async request(req: MetadataRequest): Promise<MetadataResponse> {
    if (req.signal?.aborted) throw req.signal.reason;
    const timeoutMs = req.timeoutMs ?? this.defaultTimeoutMs;
    const stdin = curlConfig(this.baseUrl + req.path, req, timeoutMs);
    // curl's --max-time ends the exchange on the node; the channel timeout is a backstop for a stuck channel.
    // A metadata answer is a few KiB: more (plus curl's status and headers) is refused, as HttpMetadataClient does.
    const exec = this.shell.exec(this.node, CURL_COMMAND, {
      stdin,
      timeoutMs: timeoutMs + 3_000,
      maxOutputBytes: DEFAULT_MAX_METADATA_BODY_BYTES + 64 * 1024,
    });
    let res;
    try {
      res = await abortable(exec, req.signal);
    } catch (err) {
      if (req.signal?.aborted) throw req.signal.reason;
      throw new MetadataTransportError(`ssh to ${this.node.id}: ${(err as Error).message}`, false, { cause: err });
    }
    const parsed = res.code === 0 ? parseCurlOutput(res.stdout) : undefined;
    if (parsed) return parsed;
    const timedOut = res.code === CURL_TIMEOUT_EXIT || res.code === null;
    const why =
      res.code === 127
        ? `curl is not installed on ${this.node.id}`
        : (res.stderr.trim().split('\n').pop() ?? '') || `curl exited ${res.code ?? res.signal ?? 'abnormally'}`;
    throw new MetadataTransportError(timedOut ? `timed out after ${timeoutMs} ms (${why})` : why, timedOut);
  }
}

/**
 * Settles with the promise, or rejects at once when the signal aborts. The remote curl then ends by its
 * own --max-time; its late result is dropped.
 */
function abortable<T>(p: Promise<T>, signal?: AbortSignal): Promise<T> {
  if (!signal) return p;
  let onAbort = (): void => undefined;
  const aborted = new Promise<never>((_, reject) => {
    onAbort = () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted'));
    signal.addEventListener('abort', onAbort, { once: true });
  });
  p.catch(() => undefined);
  return Promise.race([p, aborted]).finally(() => signal.removeEventListener('abort', onAbort));
}
