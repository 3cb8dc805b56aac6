import type { Command } from 'commander';
import type { ApiClient } from './api-client.js';

/** The options every `ls` takes: the list's filters and its paging (see README "REST API", lists). */
export interface ListOptions {
  limit?: string;
  cursor?: string;
  all?: boolean;
  state?: string;
  node?: string;
  workload?: string;
  since?: string;
  until?: string;
}

export function listOptions(cmd: Command, filters: ('state' | 'node' | 'workload')[]): Command {
  cmd
    .option('--limit <n>', 'records per page (1..1000, default 100)')
    .option('--cursor <cursor>', 'start after the page that printed this cursor')
    .option('--all', 'every page, one request after the other')
    .option('--since <time>', 'created at or after (ISO time)')
    .option('--until <time>', 'created at or before (ISO time)');
  if (filters.includes('state')) cmd.option('--state <state>', 'only records in this state');
  if (filters.includes('node')) cmd.option('--node <node>', 'only records of this node');
  if (filters.includes('workload')) cmd.option('--workload <workload>', 'only records of this workload');
  return cmd;
}

/**
 * Reads a list with the options' filters: one page, or every page with --all. `more` is the cursor to go on
 * from when there are more records than were read (told on stderr, so a piped output stays the records).
 */
export async function readList<T>(
  api: ApiClient,
  path: string,
  o: ListOptions,
): Promise<{ items: T[]; more?: string }> {
  const query = new URLSearchParams();
  for (const key of ['limit', 'state', 'node', 'workload', 'since', 'until'] as const) {
    const v = o[key];
    if (v !== undefined) query.set(key, v);
  }
  const items: T[] = [];
  let cursor = o.cursor;
  for (;;) {
    const q = new URLSearchParams(query);
    if (cursor) q.set('cursor', cursor);
    const s = q.toString();
    const page = await api.page<T>(s ? `${path}?${s}` : path);
    items.push(...page.items);
    if (!page.next) return { items };
    if (!o.all) return { items, more: page.next };
    cursor = page.next;
  }
}

/** Tells (on stderr) how to read on when a list had more than one page. */
export function moreHint(more: string | undefined): void {
  if (more) process.stderr.write(`more records: --cursor ${more} (or --all)\n`);
}
