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
  ) {}

  async push(notice: Notice): Promise<boolean> {
    let delay = 200;
    for (;;) {
      try {
        const res = await fetch(new URL('/notices', this.baseUrl), {
          method: 'POST',
          headers: { authorization: `Bearer ${this.token}`, 'content-type': 'application/json' },
          body: JSON.stringify(webhookBody(notice)),
          signal: AbortSignal.timeout(5_000),
        });
        if (res.ok) return true;
        const text = await res.text();
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
}
