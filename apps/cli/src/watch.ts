import type { Command } from 'commander';
import type { DeliveredEvent } from '@spotlift/domain';
import { followEvents, type StreamSettings } from './event-stream-client.js';

const ms = (n: number | undefined) =>
  n === undefined ? '' : n < 1000 ? `${Math.round(n)} ms` : `${(n / 1000).toFixed(2)} s`;

/** One line per event, for people: when, what, about what. */
export function eventLine(e: DeliveredEvent): string {
  const t = e.at.slice(11, 19);
  switch (e.type) {
    case 'migration.queued':
      return `${t} ${e.migration} queued: ${e.source} -> ${e.destination} (${e.strategy}, ${e.transport})`;
    case 'migration.phase':
      return `${t} ${e.migration} ${e.phase} ${e.status}${e.durationMs !== undefined ? ` ${ms(e.durationMs)}` : ''}${e.ok === false ? ' FAILED' : ''}`;
    case 'migration.round':
      return `${t} ${e.migration} pre-copy round ${e.round.round}: ${e.round.pagesWritten} pages, ${(e.round.bandwidthBytesPerSec / 2 ** 20).toFixed(0)} MiB/s`;
    case 'migration.fill':
      return `${t} ${e.migration} lazy pages: ${e.done ? 'all in' : (e.progress.lazyPages ?? 0)}`;
    case 'migration.downtime':
      return `${t} ${e.migration} downtime ${ms(e.downtimeMs)}`;
    case 'migration.state':
      return `${t} ${e.migration} ${e.state}${e.rollbackReason ? `: ${e.rollbackReason}` : e.error ? `: ${e.error}` : ''}`;
    case 'node.updated':
      return `${t} ${e.nodes[0]} ${e.previousState ? `${e.previousState} -> ` : ''}${e.node.state}`;
    case 'node.removed':
      return `${t} ${e.nodes[0]} removed`;
    case 'notice':
      return `${t} ${e.nodes[0]} ${e.kind} notice (${e.source}), deadline ${e.deadline}`;
    case 'notice.deadline':
      return `${t} ${e.nodes[0]} deadline moved earlier: ${e.to}`;
    case 'evacuation.plan':
      return `${t} ${e.evacuation} plan: ${e.plan?.summary ?? `${e.jobs.length} jobs`}`;
    case 'evacuation.job':
      return `${t} ${e.evacuation} ${e.workloadId} ${e.state}${e.downtimeMs !== undefined ? ` (downtime ${ms(e.downtimeMs)})` : ''}`;
    case 'evacuation.state':
      return `${t} ${e.evacuation} ${e.state}${e.outcome ? `: ${e.outcome.summary}` : ''}`;
  }
}

/** `spotlift watch`: follows the event stream, a line per event (`--json`: the event as one JSON line). */
export function addWatchCommand(program: Command, settings: () => StreamSettings): void {
  program
    .command('watch')
    .description('follow the event stream (migrations, nodes, notices, evacuations) until interrupted')
    .option('--node <id>', 'only events about this node')
    .option('--workload <id>', 'only events about this workload')
    .option('--migration <id>', 'only events about this migration')
    .option('--evacuation <id>', 'only events about this evacuation')
    .option('--after <event-id>', 'replay from after this event id (what the retention window still holds)')
    .action(
      async (o: { node?: string; workload?: string; migration?: string; evacuation?: string; after?: string }) => {
        const json = program.opts<{ json?: boolean }>().json === true;
        const filter = Object.fromEntries(
          (['node', 'workload', 'migration', 'evacuation'] as const).flatMap((k) => (o[k] ? [[k, o[k]]] : [])),
        );
        const stop = new AbortController();
        process.once('SIGINT', () => stop.abort());
        const events = followEvents(settings(), {
          filter,
          ...(o.after ? { after: o.after } : {}),
          signal: stop.signal,
          onReconnect: (error) => console.error(`stream interrupted (${error.message}); reconnecting`),
        });
        for await (const e of events) console.log(json ? JSON.stringify(e) : eventLine(e));
      },
    );
}
