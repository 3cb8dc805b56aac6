import type { ParseContext } from '../parse-context.js';
import { parseMaintenanceEvent, parsePreempted } from './gcp-metadata-parsers.js';

const now = new Date('2026-11-20T10:00:00Z');
const ctx: ParseContext = {
  nodeId: 'g1',
  source: 'gcp',
  path: '/computeMetadata/v1/instance/preempted',
  receivedAt: now,
  maxPastMs: 5_000,
};

describe('parsePreempted', () => {
  it('raises on TRUE with deadline = receipt + lead', () => {
    const { notices } = parsePreempted(ctx, 'TRUE', 30_000);
    expect(notices[0]).toMatchObject({
      kind: 'preemption',
      deadline: new Date('2026-11-20T10:00:30Z'),
      deadlineEstimated: true,
      dedupKey: 'g1:gcp:preemption',
    });
  });

  it('says nothing on FALSE', () => {
    expect(parsePreempted(ctx, 'FALSE', 30_000)).toEqual({ notices: [], problems: [] });
  });

  it.each(['true', 'TRUE\n', ' TRUE', '1', '', '{"preempted":true}'])('rejects %j', (body) => {
    const { notices, problems } = parsePreempted(ctx, body, 30_000);
    expect(notices).toEqual([]);
    expect(problems[0]?.code).toBe('invalid_payload');
  });
});

describe('parseMaintenanceEvent', () => {
  it.each([
    ['NONE', undefined],
    ['MIGRATE_ON_HOST_MAINTENANCE', 'maintenance'],
    ['TERMINATE_ON_HOST_MAINTENANCE', 'termination'],
  ])('%s -> %s', (body, kind) => {
    const { notices, problems } = parseMaintenanceEvent(ctx, body, 60_000);
    expect(problems).toEqual([]);
    expect(notices.map((n) => n.kind)).toEqual(kind ? [kind] : []);
  });

  it.each(['none', 'toString', 'REBOOT', ''])('rejects %j as unknown', (body) => {
    expect(parseMaintenanceEvent(ctx, body, 60_000).problems[0]?.code).toBe('unknown_action');
  });
});
