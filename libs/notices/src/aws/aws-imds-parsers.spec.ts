import type { ParseContext } from '../parse-context.js';
import { parseInstanceAction, parseMaintenanceEvents, parseRebalance } from './aws-imds-parsers.js';

const now = new Date('2026-11-20T10:00:00Z');
const ctx = (path = '/latest/meta-data/spot/instance-action'): ParseContext => ({
  nodeId: 'n1',
  source: 'aws',
  path,
  receivedAt: now,
  maxPastMs: 5_000,
});

describe('parseInstanceAction', () => {
  it('reads the documented body (AEMM pretty-prints it with tabs)', () => {
    const body = '{\n\t"action": "terminate",\n\t"time": "2026-11-20T10:02:00Z"\n}';
    const { notices, problems } = parseInstanceAction(ctx(), body);
    expect(problems).toEqual([]);
    expect(notices).toEqual([
      expect.objectContaining({
        nodeId: 'n1',
        source: 'aws',
        kind: 'preemption',
        action: 'terminate',
        deadline: new Date('2026-11-20T10:02:00Z'),
        deadlineEstimated: false,
        receivedAt: now,
        dedupKey: 'n1:aws:preemption',
      }),
    ]);
  });

  it('keeps the same dedup key when only the time changes', () => {
    const a = parseInstanceAction(ctx(), '{"action":"stop","time":"2026-11-20T10:02:00Z"}').notices[0]!;
    const b = parseInstanceAction(ctx(), '{"action":"stop","time":"2026-11-20T10:02:01Z"}').notices[0]!;
    expect(a.dedupKey).toBe(b.dedupKey);
  });

  it('accepts a hibernate notice whose time is now (no 2-minute warning)', () => {
    expect(parseInstanceAction(ctx(), '{"action":"hibernate","time":"2026-11-20T09:59:58Z"}').notices).toHaveLength(1);
  });

  it.each([
    ['not JSON', '<html>404</html>', 'malformed_json'],
    ['truncated JSON', '{"action":"terminate",', 'malformed_json'],
    ['a JSON array', '[]', 'invalid_payload'],
    ['a missing time', '{"action":"terminate"}', 'invalid_payload'],
    ['a numeric time', '{"action":"terminate","time":1700000000}', 'invalid_payload'],
    ['an unknown action', '{"action":"explode","time":"2026-11-20T10:02:00Z"}', 'unknown_action'],
    ['an upper-case action', '{"action":"TERMINATE","time":"2026-11-20T10:02:00Z"}', 'unknown_action'],
    ['a non-RFC 3339 time', '{"action":"terminate","time":"2026-11-20 10:02"}', 'invalid_payload'],
    ['a time left over from a failed termination', '{"action":"terminate","time":"2026-11-20T09:00:00Z"}', 'stale'],
  ])('reports %s without a notice', (_name, body, code) => {
    const { notices, problems } = parseInstanceAction(ctx(), body);
    expect(notices).toEqual([]);
    expect(problems).toHaveLength(1);
    expect(problems[0]).toMatchObject({
      code,
      nodeId: 'n1',
      source: 'aws',
      path: '/latest/meta-data/spot/instance-action',
    });
    expect(problems[0]!.message.startsWith('/latest/meta-data/spot/instance-action: ')).toBe(true);
    expect(problems[0]!.bodyExcerpt).toBe(body);
  });
});

describe('parseRebalance', () => {
  it('estimates the deadline from receipt, since noticeTime is the emission time', () => {
    const { notices } = parseRebalance(ctx(), '{"noticeTime": "2026-11-20T09:00:00Z"}', 120_000);
    expect(notices[0]).toMatchObject({
      kind: 'rebalance',
      deadline: new Date('2026-11-20T10:02:00Z'),
      deadlineEstimated: true,
    });
  });

  it('rejects a bad noticeTime', () => {
    expect(parseRebalance(ctx(), '{"noticeTime": "yesterday"}', 1).problems[0]?.code).toBe('invalid_payload');
  });
});

describe('parseMaintenanceEvents', () => {
  const ev = (o: Record<string, unknown>) => ({
    Code: 'system-reboot',
    Description: 'scheduled reboot',
    EventId: 'instance-event-0d59937288b749b32',
    NotBefore: '21 Nov 2026 09:00:43 GMT',
    NotAfter: '21 Nov 2026 09:17:23 GMT',
    State: 'active',
    ...o,
  });

  it('reads the documented array, one notice per active event keyed by EventId', () => {
    const { notices, problems } = parseMaintenanceEvents(
      ctx(),
      JSON.stringify([ev({}), ev({ EventId: 'e2', Code: 'instance-stop' })]),
    );
    expect(problems).toEqual([]);
    expect(notices.map((n) => [n.kind, n.action, n.dedupKey])).toEqual([
      ['maintenance', 'system-reboot', 'n1:aws:maintenance:instance-event-0d59937288b749b32'],
      ['termination', 'instance-stop', 'n1:aws:termination:e2'],
    ]);
    expect(notices[0]!.deadline).toEqual(new Date('2026-11-21T09:00:43Z'));
  });

  it('skips completed and canceled events', () => {
    expect(
      parseMaintenanceEvents(ctx(), JSON.stringify([ev({ State: 'completed' }), ev({ State: 'canceled' })])),
    ).toEqual({ notices: [], problems: [] });
  });

  it('uses now as the deadline when the window has opened, and calls a closed window stale', () => {
    const open = parseMaintenanceEvents(
      ctx(),
      JSON.stringify([ev({ NotBefore: '20 Nov 2026 09:00:00 GMT', NotAfter: '20 Nov 2026 11:00:00 GMT' })]),
    );
    expect(open.notices[0]!.deadline).toEqual(now);
    const closed = parseMaintenanceEvents(
      ctx(),
      JSON.stringify([ev({ NotBefore: '20 Nov 2026 08:00:00 GMT', NotAfter: '20 Nov 2026 09:00:00 GMT' })]),
    );
    expect(closed.problems[0]?.code).toBe('stale');
  });

  it('reports a bad event without hiding a good one', () => {
    const { notices, problems } = parseMaintenanceEvents(
      ctx(),
      JSON.stringify([
        ev({ EventId: 'bad', NotBefore: '2026-11-21T09:00:43Z' }),
        ev({ EventId: 'odd', Code: 'toString' }),
        ev({ EventId: 'good' }),
      ]),
    );
    expect(notices.map((n) => n.dedupKey)).toEqual(['n1:aws:maintenance:good']);
    expect(problems.map((p) => p.code)).toEqual(['invalid_payload', 'unknown_action']);
  });

  it('rejects a body that is not an array', () => {
    expect(parseMaintenanceEvents(ctx(), JSON.stringify(ev({}))).problems[0]?.message).toMatch(/JSON array/);
  });
});
