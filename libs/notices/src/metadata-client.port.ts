/**
 * How a provider reaches a node's link-local metadata endpoint (169.254.169.254 and friends). The provider
 * never knows whether that is a plain fetch on the node itself, or `curl` run over an SSH session the
 * orchestrator keeps to the node: it only builds requests and reads responses.
 */

/** HTTP methods the metadata services use: GET to read, PUT for the IMDSv2 token, POST for Azure acks. */
export type MetadataMethod = 'GET' | 'PUT' | 'POST';

/** One request to the metadata endpoint. */
export interface MetadataRequest {
  method: MetadataMethod;
  /** Path plus query, starting with `/`, e.g. `/computeMetadata/v1/instance/preempted?wait_for_change=true`. */
  path: string;
  headers?: Readonly<Record<string, string>>;
  body?: string;
  /** Give up after this long (hanging GETs pass their hang time plus a margin). */
  timeoutMs?: number;
  signal?: AbortSignal;
}

/** The answer, whatever the status: providers decide what a 404 or a 503 means. */
export interface MetadataResponse {
  status: number;
  /** Header names in lower case. */
  headers: Readonly<Record<string, string>>;
  body: string;
}

/**
 * Port: send one request to the node's metadata endpoint. Resolves for every HTTP status; rejects with
 * {@link MetadataTransportError} when no HTTP answer arrived, or with the signal's reason when aborted.
 */
export abstract class MetadataClient {
  abstract request(req: MetadataRequest): Promise<MetadataResponse>;

  /**
   * Calls `listener` when an answer this client serves from a watch of its own changed, so a poll now would
   * read news (a provider polling through it polls at once instead of at its next tick). Clients that ask the
   * endpoint on every request never call it. Returns the unsubscribe.
   */
  onChange(_listener: () => void): () => void {
    return () => undefined;
  }

  /** Shorthand for a GET. */
  get(
    path: string,
    headers?: Readonly<Record<string, string>>,
    opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<MetadataResponse> {
    return this.request({ method: 'GET', path, headers, ...opts });
  }

  /** Shorthand for a PUT. */
  put(
    path: string,
    headers?: Readonly<Record<string, string>>,
    opts: { timeoutMs?: number; signal?: AbortSignal; body?: string } = {},
  ): Promise<MetadataResponse> {
    return this.request({ method: 'PUT', path, headers, ...opts });
  }

  /** Shorthand for a POST. */
  post(
    path: string,
    headers: Readonly<Record<string, string>> | undefined,
    body: string,
    opts: { timeoutMs?: number; signal?: AbortSignal } = {},
  ): Promise<MetadataResponse> {
    return this.request({ method: 'POST', path, headers, body, ...opts });
  }
}

/** No HTTP answer: connection refused or reset, DNS, or the request's own timeout. */
export class MetadataTransportError extends Error {
  constructor(
    message: string,
    /** True when the request's own timeout fired (as opposed to a refused or reset connection). */
    readonly timedOut: boolean,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'MetadataTransportError';
  }
}
