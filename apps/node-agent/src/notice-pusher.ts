import { request as httpRequest } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { Notice } from '@spotlift/notices';

/** The webhook body (`POST /notices`) for a notice seen on this node, keeping the cloud's own event id. */
export function webhookBody(notice: Notice): Record<string, unknown> {
  const eventId = notice.dedupKey.split(':')[3];
  return {
    nodeId: notice.nodeId,
    kind: notice.kind,
    deadline: notice.deadline.toISOString(),
    source: notice.source,
    ...(notice.action ? { action: notice.action } : {}),
    ...(eventId ? { eventId: decodeURIComponent(eventId) } : {}),
    reason: notice.reason,
  };
}

/**
 * Pushes notices to the orchestrator. A notice is worth nothing once its deadline passed, so retries (with
 * backoff, for 5xx and network errors) stop there; a 4xx is final (the orchestrator said why).
 */
export class NoticePusher {
  constructor(
    private readonly baseUrl: string,
    private readonly token: string,
    private readonly log: (msg: string) => void = (m) => console.error(m),
    /** A private CA for the orchestrator's HTTPS (fetch cannot take one, hence node:https). */
    private readonly ca?: Buffer,
  ) {}

  async push(notice: Notice): Promise<boolean> {
    let delay = 200;
    for (;;) {
      try {
        const res = await this.post(JSON.stringify(webhookBody(notice)));
        if (res.status >= 200 && res.status < 300) return true;
        const text = res.text;
        if (res.status < 500) {
          this.log(`orchestrator refused notice ${notice.dedupKey}: ${res.status} ${text.slice(0, 300)}`);
          return false;
        }
        this.log(`orchestrator answered ${res.status}; retrying`);
      } catch (error) {
        this.log(`cannot reach the orchestrator: ${(error as Error).message}; retrying`);
      }
      if (Date.now() + delay > notice.deadline.getTime()) return false;
      await new Promise((r) => setTimeout(r, delay));
      delay = Math.min(delay * 2, 5_000);
    }
  }

  private post(body: string): Promise<{ status: number; text: string }> {
    const url = new URL('/notices', this.baseUrl);
    const send = url.protocol === 'https:' ? httpsRequest : httpRequest;
    return new Promise((resolve, reject) => {
      const req = send(
        url,
        {
          method: 'POST',
          headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
          ...(this.ca ? { ca: this.ca } : {}),
          timeout: 5_000,
        },
        (res) => {
          let text = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (text += c.length + text.length > 4096 ? '' : c));
          res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error('no answer within 5 s')));
      req.on('error', reject);
      req.end(body);
    });
  }
}
