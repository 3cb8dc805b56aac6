import { applyDecorators } from '@nestjs/common';
import { ApiOkResponse, ApiQuery } from '@nestjs/swagger';
import type { Response } from 'express';
import { z } from 'zod';
import { BadRequestError } from '@spotlift/domain';
import { DEFAULT_PAGE, MAX_PAGE, type Page, type PageQuery, decodeCursor } from '@spotlift/store';

/** The header that carries the cursor of the next page (absent on the last one); the body stays the array. */
export const NEXT_HEADER = 'x-next-cursor';

type Filter = 'state' | 'node' | 'workload';

const id = z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/, 'an id');
const time = z.union([
  z.iso.datetime({ offset: true }).transform((s) => Date.parse(s)),
  z
    .string()
    .regex(/^\d{1,15}$/, 'an ISO time or epoch milliseconds')
    .transform(Number),
]);

function schema(states: readonly [string, ...string[]], filters: readonly Filter[]) {
  return z
    .object({
      limit: z.coerce.number().int().min(1).max(MAX_PAGE).default(DEFAULT_PAGE),
      cursor: z.string().max(400).optional(),
      since: time.optional(),
      until: time.optional(),
      ...(filters.includes('state') ? { state: z.enum(states).optional() } : {}),
      ...(filters.includes('node') ? { node: id.optional() } : {}),
      ...(filters.includes('workload') ? { workload: id.optional() } : {}),
    })
    .strict();
}

/**
 * The query of a list (`limit`, `cursor`, `since`, `until` and the filters the kind has), checked: anything
 * else, a repeated parameter, a limit outside 1..MAX_PAGE, a cursor no list handed out or an unknown state is
 * a 400 naming it.
 */
export function parseListQuery(
  raw: unknown,
  order: PageQuery['order'],
  states: readonly [string, ...string[]],
  filters: readonly Filter[],
): PageQuery {
  const parsed = schema(states, filters).safeParse(raw ?? {});
  if (!parsed.success) {
    const problems = parsed.error.issues.map((i) => `${i.path.join('.') || 'query'}: ${i.message}`);
    throw new BadRequestError(`invalid query: ${problems.join('; ')}`, { problems });
  }
  const q = parsed.data as { limit: number; cursor?: string; since?: number; until?: number } & Partial<
    Record<Filter, string>
  >;
  const where = filters.flatMap((f) => (q[f] !== undefined ? [`${f}=${q[f]}`] : []));
  return {
    limit: q.limit,
    order,
    ...(q.cursor !== undefined ? { cursor: decodeCursor(q.cursor) } : {}),
    ...(where.length ? { where } : {}),
    ...(q.since !== undefined ? { since: q.since } : {}),
    ...(q.until !== undefined ? { until: q.until } : {}),
  };
}

/** Sends a page: its items as the body (what callers of the unpaged lists read), `next` as a header. */
export function sendPage<T>(res: Response, page: Page<T>): T[] {
  if (page.next !== undefined) res.setHeader(NEXT_HEADER, page.next);
  return page.items;
}

/** The OpenAPI side of a list: its query parameters and the next-page header. */
export function ListDocs(states: readonly string[], filters: readonly Filter[]): MethodDecorator {
  const docs = {
    state: { description: `only records in this state: ${states.join(', ')}` },
    node: { description: 'only records of this node (a migration: its source or destination)' },
    workload: { description: 'only records of this workload' },
  };
  return applyDecorators(
    ApiQuery({ name: 'limit', required: false, schema: { type: 'integer', minimum: 1, maximum: MAX_PAGE } }),
    ApiQuery({ name: 'cursor', required: false, description: `the ${NEXT_HEADER} header of the previous page` }),
    ApiQuery({ name: 'since', required: false, description: 'created at or after (ISO time or epoch ms)' }),
    ApiQuery({ name: 'until', required: false, description: 'created at or before (ISO time or epoch ms)' }),
    ...filters.map((f) => ApiQuery({ name: f, required: false, ...docs[f] })),
    ApiOkResponse({
      description: `one page (at most \`limit\`, default ${DEFAULT_PAGE}); may be shorter than \`limit\`: the end is the page without ${NEXT_HEADER}`,
      headers: { [NEXT_HEADER]: { description: 'cursor of the next page', schema: { type: 'string' } } },
    }),
  );
}
