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
  /** Largest response body taken; a bigger one is a transport error (metadata answers are a few KiB). */
  maxBodyBytes?: number;
}

/** Azure's Scheduled Events document with many events is the largest legitimate answer, far below this. */
export const DEFAULT_MAX_METADATA_BODY_BYTES = 1 << 20;

/** Reads a response body up to `max` bytes; past it the stream is cancelled and the read fails. */
async function readBounded(res: Response, max: number): Promise<string> {
  const declared = Number(res.headers.get('content-length') ?? NaN);
  if (declared > max) {
    await res.body?.cancel().catch(() => undefined);
    throw new Error(`response body of ${declared} bytes exceeds the ${max}-byte limit`);
  }
  if (!res.body) return '';
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const chunks: Uint8Array[] = [];
  let total = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    total += value.byteLength;
    if (total > max) {
      await reader.cancel().catch(() => undefined);
      throw new Error(`response body exceeds the ${max}-byte limit`);
    }
    chunks.push(value);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/**
 * Adapter: plain `fetch` to a base URL. Used by a node agent on the instance itself, and by tests against
 * the fake metadata servers on loopback.
 */
export class HttpMetadataClient extends MetadataClient {
  private readonly baseUrl: string;
  private readonly defaultTimeoutMs: number;
  private readonly maxBodyBytes: number;

  constructor(options: HttpMetadataClientOptions) {
    super();
    this.baseUrl = options.baseUrl.replace(/\/+$/, '');
    this.defaultTimeoutMs = options.defaultTimeoutMs ?? 2_000;
    this.maxBodyBytes = options.maxBodyBytes ?? DEFAULT_MAX_METADATA_BODY_BYTES;
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
      // Errors of the request and of the response stream (a reset mid-body) both land in the catch below.
      body = await readBounded(res, this.maxBodyBytes);
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
