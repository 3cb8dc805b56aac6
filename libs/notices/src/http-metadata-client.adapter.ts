import {
  MetadataClient,
  MetadataTransportError,
  type MetadataRequest,
  type MetadataResponse,
} from './metadata-client.port.js';

/** Options of {@link HttpMetadataClient}. */
export interface HttpMetadataClientOptions {
  /** Scheme, host and port of the metadata endpoint, e.g. `http://169.254.169.254` (no trailing path). */
  baseUrl: string;
  /** Used when a request gives none. NTH uses 2 s for IMDS. */
  defaultTimeoutMs?: number;
}

/**
 * Adapter: plain `fetch` to a base URL. Used by a node agent on the instance itself, and by tests against
 * the fake metadata servers on loopback.
 */
export class HttpMetadataClient extends MetadataClient {
  private readonly baseUrl: string;
  private readonly defaultTimeoutMs: number;

  constructor(options: HttpMetadataClientOptions) {
    super();
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 2_000;
  }

  async request(req: MetadataRequest): Promise<MetadataResponse> {
    const timeoutMs = req.timeoutMs ?? this.defaultTimeoutMs;
    const timeout = AbortSignal.timeout(timeoutMs);
    const signal = req.signal ? AbortSignal.any([req.signal, timeout]) : timeout;
    let res: Response;
    let body: string;
    try {
      res = await fetch(this.baseUrl + req.path, {
        method: req.method,
        headers: req.headers ? { ...req.headers } : undefined,
        body: req.body,
        signal,
        // The metadata services answer redirects nowhere useful; a redirect means a wrong endpoint.
        redirect: 'manual',
      });
      body = await res.text();
    } catch (err) {
      // A caller's abort is not a transport failure: let it propagate as-is so loops stop quietly.
      if (req.signal?.aborted) throw req.signal.reason;
      const timedOut = timeout.aborted;
      const what = timedOut ? `timed out after ${timeoutMs} ms` : describe(err);
      // The provider adds method and path to its problem; the message says only what went wrong.
      throw new MetadataTransportError(what, timedOut, { cause: err });
    }
    const headers: Record<string, string> = {};
    res.headers.forEach((value, name) => {
      headers[name.toLowerCase()] = value;
    });
    return { status: res.status, headers, body };
  }
}

function describe(err: unknown): string {
  if (err instanceof Error) {
    const cause = (err as Error & { cause?: unknown }).cause;
    const code = cause && typeof cause === 'object' && 'code' in cause ? String(cause.code) : undefined;
    return code ? `${err.message} (${code})` : err.message;
  }
  return String(err);
}
