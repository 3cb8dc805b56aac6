import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Writable } from 'node:stream';

/** A thin client of the orchestrator's REST API: the CLI talks to nothing else. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: unknown,
  ) {
    const message = (body as { message?: string } | undefined)?.message ?? JSON.stringify(body);
    super(`HTTP ${status}: ${message}`);
  }
}

/** No HTTP answer at all: connection refused, DNS, TLS, or no answer in time. */
export class UnreachableError extends Error {}

/**
 * node:http(s) rather than fetch: fetch cannot be given a CA per request, and an orchestrator behind a private
 * CA (`--ca`, SPOTLIFT_CA) is the usual HTTPS setup. Without a CA, the system's trust store applies.
 */
export class ApiClient {
  constructor(
    readonly baseUrl: string,
    private readonly token: string,
    private readonly opts: { ca?: Buffer; timeoutMs?: number } = {},
  ) {}

  async request<T>(method: string, path: string, body?: unknown): Promise<T> {
    return (await this.exchange<T>(method, path, body)).body;
  }

  /** One page of a list: its items and the cursor of the next page (the `x-next-cursor` header), if any. */
  async page<T>(path: string): Promise<{ items: T[]; next?: string }> {
    const { body, next } = await this.exchange<T[]>('GET', path);
    return { items: body, ...(next ? { next } : {}) };
  }

  private async exchange<T>(method: string, path: string, body?: unknown): Promise<{ body: T; next?: string }> {
    const url = new URL(path, this.baseUrl);
    const payload = body === undefined ? undefined : JSON.stringify(body);
    const { status, text, next } = await new Promise<{ status: number; text: string; next?: string }>(
      (resolve, reject) => {
        const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
        const req = send(
          url,
          {
            method,
            headers: {
              authorization: `Bearer ${this.token}`,
              ...(payload !== undefined ? { 'content-type': 'application/json' } : {}),
            },
            ...(this.opts.ca ? { ca: this.opts.ca } : {}),
            timeout: this.opts.timeoutMs ?? 30_000,
          },
          (res) => {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            const cursor = res.headers['x-next-cursor'];
            res.on('end', () =>
              resolve({
                status: res.statusCode ?? 0,
                text: Buffer.concat(chunks).toString('utf8'),
                ...(typeof cursor === 'string' ? { next: cursor } : {}),
              }),
            );
            res.on('error', (error) => reject(new UnreachableError(`the answer broke off: ${error.message}`)));
          },
        );
        req.on('timeout', () => req.destroy(new Error('no answer in time')));
        req.on('error', (error) =>
          reject(new UnreachableError(`cannot reach the orchestrator at ${this.baseUrl}: ${error.message}`)),
        );
        req.end(payload);
      },
    );
    let parsed: unknown = undefined;
    try {
      parsed = text ? JSON.parse(text) : undefined;
    } catch {
      parsed = { message: text.slice(0, 300) };
    }
    if (status < 200 || status >= 300) throw new ApiError(status, parsed);
    return { body: parsed as T, ...(next ? { next } : {}) };
  }

  /**
   * Streams a binary answer (a checkpoint export) into `out`; the bytes written. A non-2xx answer is read as
   * the usual JSON error instead. An answer that breaks off rejects: the file is then incomplete.
   */
  async download(path: string, out: Writable): Promise<number> {
    const url = new URL(path, this.baseUrl);
    return new Promise<number>((resolve, reject) => {
      const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
      const req = send(
        url,
        {
          method: 'GET',
          headers: { authorization: `Bearer ${this.token}` },
          ...(this.opts.ca ? { ca: this.opts.ca } : {}),
          timeout: this.opts.timeoutMs ?? 30_000,
        },
        (res) => {
          const status = res.statusCode ?? 0;
          if (status < 200 || status >= 300) {
            const chunks: Buffer[] = [];
            res.on('data', (c: Buffer) => chunks.push(c));
            res.on('end', () => {
              const text = Buffer.concat(chunks).toString('utf8');
              let body: unknown;
              try {
                body = JSON.parse(text);
              } catch {
                body = { message: text.slice(0, 300) };
              }
              reject(new ApiError(status, body));
            });
            return;
          }
          let bytes = 0;
          res.on('data', (c: Buffer) => (bytes += c.length));
          res.on('aborted', () => reject(new UnreachableError('the download broke off; the file is incomplete')));
          res.on('error', (error) => reject(new UnreachableError(`the download broke off: ${error.message}`)));
          out.on('error', reject);
          out.on('finish', () => resolve(bytes));
          res.pipe(out);
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer in time')));
      req.on('error', (error) =>
        reject(new UnreachableError(`cannot reach the orchestrator at ${this.baseUrl}: ${error.message}`)),
      );
      req.end();
    });
  }
}
