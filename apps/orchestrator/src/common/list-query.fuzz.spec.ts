/**
 * The query of every list: what a caller may send (limit, cursor, since, until, filters) and what it gets for
 * anything else: a 400 naming it (BadRequestError, which the exception filter answers with 400), never
 * another error, never a page query outside its bounds.
 */
import fc from 'fast-check';
import { BadRequestError } from '@spotlift/domain';
import { MAX_PAGE, MIGRATION_STATES, encodeCursor } from '@spotlift/store';
import { NEXT_HEADER, parseListQuery, sendPage } from './list-query.js';

const parse = (q: unknown) => parseListQuery(q, 'desc', MIGRATION_STATES, ['state', 'node', 'workload']);
const refused = (q: unknown) => {
  try {
    parse(q);
  } catch (error) {
    return error instanceof BadRequestError ? error.message : `not a 400: ${String(error)}`;
  }
  return undefined;
};

describe('list queries', () => {
  it('defaults to the first page of 100, newest first', () => {
    expect(parse({})).toEqual({ limit: 100, order: 'desc' });
    expect(parse(undefined)).toEqual({ limit: 100, order: 'desc' });
  });

  it('takes every parameter a caller may send', () => {
    const cursor = encodeCursor({ score: 1_700_000_000_000, id: 'mig-1' });
    expect(
      parse({
        limit: '1000',
        cursor,
        state: 'rolled_back',
        node: 'node-a',
        workload: 'wl-1',
        since: '2026-12-01T00:00:00Z',
        until: '1765000000000',
      }),
    ).toEqual({
      limit: 1000,
      order: 'desc',
      cursor: { score: 1_700_000_000_000, id: 'mig-1' },
      where: ['state=rolled_back', 'node=node-a', 'workload=wl-1'],
      since: Date.parse('2026-12-01T00:00:00Z'),
      until: 1_765_000_000_000,
    });
  });

  it.each([
    ['a negative limit', { limit: '-1' }, /limit/],
    ['a zero limit', { limit: '0' }, /limit/],
    ['a limit above the largest page', { limit: String(MAX_PAGE + 1) }, /limit/],
    ['a limit that is no integer', { limit: '1.5' }, /limit/],
    ['a limit that is no number', { limit: 'ten' }, /limit/],
    ['a cursor no list handed out', { cursor: 'bm90IGEgY3Vyc29y' }, /cursor/],
    ['a cursor of odd characters', { cursor: '../../etc' }, /cursor/],
    ['a cursor of the right shape with a bad id', { cursor: encodeCursor({ score: 1, id: '' }) }, /cursor/],
    ['an unknown state', { state: 'exploded' }, /state/],
    ['an unknown parameter', { sort: 'asc' }, /sort|unrecognized/i],
    ['a repeated parameter', { state: ['queued', 'running'] }, /state/],
    ['a time that is no time', { since: 'yesterday' }, /since/],
    ['a node id with a separator', { node: 'a b' }, /node/],
  ])('answers 400 for %s', (_what, query, names) => {
    expect(refused(query)).toMatch(names);
  });

  it('answers any query with a bounded page query or a 400, never another error', () => {
    const value = fc.oneof(
      fc.string({ maxLength: 40 }),
      fc.constantFrom('1', '100', '1000', '1001', '-5', '0', 'queued', 'completed', 'node-a', '2026-12-01T00:00:00Z'),
      fc.array(fc.string({ maxLength: 8 }), { maxLength: 3 }),
    );
    const key = fc.constantFrom('limit', 'cursor', 'state', 'node', 'workload', 'since', 'until', 'x', '__proto__');
    fc.assert(
      fc.property(fc.dictionary(key, value, { maxKeys: 6 }), (query) => {
        const why = refused(query);
        if (why !== undefined) {
          expect(why).not.toMatch(/^not a 400/);
          return;
        }
        const q = parse(query);
        expect(q.limit).toBeGreaterThanOrEqual(1);
        expect(q.limit).toBeLessThanOrEqual(MAX_PAGE);
        for (const term of q.where ?? []) expect(term).toMatch(/^(state|node|workload)=[A-Za-z0-9._:-]+$/);
      }),
      { numRuns: 2000 },
    );
  });

  it("sends the page's items as the body and its cursor as a header, none on the last page", () => {
    const headers: Record<string, string> = {};
    const res = { setHeader: (k: string, v: string) => (headers[k] = v) } as never;
    expect(sendPage(res, { items: [1, 2], next: 'abc' })).toEqual([1, 2]);
    expect(headers).toEqual({ [NEXT_HEADER]: 'abc' });
    delete headers[NEXT_HEADER];
    expect(sendPage(res, { items: [3] })).toEqual([3]);
    expect(headers).toEqual({});
  });
});
