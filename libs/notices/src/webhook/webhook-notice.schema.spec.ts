import { parseWebhookNotice } from './webhook-notice.schema.js';

const receivedAt = new Date('2026-11-20T10:00:00Z');

describe('parseWebhookNotice', () => {
  it('accepts secondsUntil', () => {
    const r = parseWebhookNotice(
      { nodeId: 'n1', kind: 'termination', secondsUntil: 45, reason: 'operator' },
      { receivedAt },
    );
    expect(r.ok && r.notice).toMatchObject({
      nodeId: 'n1',
      source: 'webhook',
      kind: 'termination',
      deadline: new Date('2026-11-20T10:00:45Z'),
      reason: 'operator',
      dedupKey: 'n1:webhook:termination',
    });
  });

  it('accepts an RFC 3339 deadline and a relayed cloud source with its event id', () => {
    const r = parseWebhookNotice(
      {
        nodeId: 'n1',
        kind: 'preemption',
        deadline: '2026-11-20T10:00:30Z',
        source: 'azure',
        eventId: 'E1',
        action: 'Preempt',
      },
      { receivedAt },
    );
    expect(r.ok && r.notice).toMatchObject({
      source: 'azure',
      deadline: new Date('2026-11-20T10:00:30Z'),
      dedupKey: 'n1:azure:preemption:E1',
      action: 'Preempt',
    });
  });

  it.each([
    ['not an object', 'hello', /root|expected object/],
    ['no node', { kind: 'termination', secondsUntil: 10 }, /nodeId/],
    ['an unknown kind', { nodeId: 'n1', kind: 'explosion', secondsUntil: 10 }, /kind/],
    [
      'both deadline and secondsUntil',
      { nodeId: 'n1', kind: 'termination', secondsUntil: 10, deadline: '2026-11-20T10:00:30Z' },
      /exactly one/,
    ],
    ['neither deadline nor secondsUntil', { nodeId: 'n1', kind: 'termination' }, /exactly one/],
    ['negative secondsUntil', { nodeId: 'n1', kind: 'termination', secondsUntil: -5 }, /secondsUntil/],
    ['a deadline in the past', { nodeId: 'n1', kind: 'termination', deadline: '2026-11-20T09:00:00Z' }, /in the past/],
    ['a deadline that is not RFC 3339', { nodeId: 'n1', kind: 'termination', deadline: 'in 2 minutes' }, /RFC 3339/],
    [
      'a deadline absurdly far ahead',
      { nodeId: 'n1', kind: 'termination', deadline: '2030-01-01T00:00:00Z' },
      /60 days/,
    ],
    ['an unknown field', { nodeId: 'n1', kind: 'termination', secondsUntil: 5, drain: true }, /drain|Unrecognized/i],
    ['an unknown source', { nodeId: 'n1', kind: 'termination', secondsUntil: 5, source: 'oracle' }, /source/],
  ])('refuses %s', (_name, body, message) => {
    const r = parseWebhookNotice(body, { receivedAt });
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.problem.message).toMatch(message);
  });
});
