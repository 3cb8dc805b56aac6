import type { ParseContext } from '../parse-context.js';
import { parseScheduledEvents } from './azure-scheduled-events-parser.js';

const now = new Date('2026-11-20T10:00:00Z');
const ctx: ParseContext = {
  nodeId: 'z1',
  source: 'azure',
  path: '/metadata/scheduledevents?api-version=2020-07-01',
  receivedAt: now,
  maxPastMs: 5_000,
};
const ev = (o: Record<string, unknown> = {}) => ({
  EventId: '602d9444-d2cd-49c7-8624-8643e7171297',
  EventType: 'Preempt',
  ResourceType: 'VirtualMachine',
  Resources: ['vm-spot'],
  EventStatus: 'Scheduled',
  NotBefore: 'Fri, 20 Nov 2026 10:00:30 GMT',
  Description: 'The Spot Virtual Machine is being deleted.',
  EventSource: 'Platform',
  DurationInSeconds: -1,
  ...o,
});
const doc = (...events: unknown[]) => JSON.stringify({ DocumentIncarnation: 7, Events: events });

describe('parseScheduledEvents', () => {
  it('reads the documented document: deadline from NotBefore, key with EventId', () => {
    const r = parseScheduledEvents(ctx, doc(ev()), 'vm-spot');
    expect(r.problems).toEqual([]);
    expect(r.incarnation).toBe(7);
    expect(r.notices[0]).toMatchObject({
      kind: 'preemption',
      action: 'Preempt',
      deadline: new Date('2026-11-20T10:00:30Z'),
      deadlineEstimated: false,
      dedupKey: 'z1:azure:preemption:602d9444-d2cd-49c7-8624-8643e7171297',
    });
    expect(r.ownEvents.map((e) => e.EventId)).toEqual(['602d9444-d2cd-49c7-8624-8643e7171297']);
  });

  it('maps each documented EventType', () => {
    const types = ['Preempt', 'Terminate', 'Redeploy', 'Reboot', 'Freeze'];
    const r = parseScheduledEvents(ctx, doc(...types.map((t, i) => ev({ EventType: t, EventId: `e${i}` }))), 'vm-spot');
    expect(r.notices.map((n) => n.kind)).toEqual([
      'preemption',
      'termination',
      'termination',
      'maintenance',
      'maintenance',
    ]);
  });

  it('only raises for events that list our VM (case-insensitive)', () => {
    const r = parseScheduledEvents(
      ctx,
      doc(ev({ Resources: ['VM-SPOT'] }), ev({ EventId: 'x', Resources: ['vm-other'] })),
      'vm-spot',
    );
    expect(r.notices).toHaveLength(1);
    expect(r.ownEvents.map((e) => e.EventId)).not.toContain('x');
  });

  it('treats a started event with blank NotBefore as happening now', () => {
    const r = parseScheduledEvents(ctx, doc(ev({ EventStatus: 'Started', NotBefore: '' })), 'vm-spot');
    expect(r.notices[0]?.deadline).toEqual(now);
  });

  it('an empty Events array means nothing is scheduled', () => {
    expect(parseScheduledEvents(ctx, doc(), 'vm-spot')).toEqual({
      notices: [],
      problems: [],
      incarnation: 7,
      ownEvents: [],
    });
  });

  it.each([
    ['malformed JSON', '{"DocumentIncarnation":', 'malformed_json'],
    ['a missing incarnation', JSON.stringify({ Events: [] }), 'invalid_payload'],
    ['a string incarnation', JSON.stringify({ DocumentIncarnation: '7', Events: [] }), 'invalid_payload'],
    ['an ISO NotBefore', doc(ev({ NotBefore: '2026-11-20T10:00:30Z' })), 'invalid_payload'],
    ['a blank NotBefore on a scheduled event', doc(ev({ NotBefore: '' })), 'invalid_payload'],
    ['a NotBefore in the past', doc(ev({ NotBefore: 'Fri, 20 Nov 2026 09:00:00 GMT' })), 'stale'],
    ['an unknown EventType', doc(ev({ EventType: 'Evaporate' })), 'unknown_action'],
    ['an unknown EventStatus', doc(ev({ EventStatus: 'Completed' })), 'invalid_payload'],
    ['Resources not an array', doc(ev({ Resources: 'vm-spot' })), 'invalid_payload'],
  ])('reports %s without a notice', (_name, body, code) => {
    const r = parseScheduledEvents(ctx, body, 'vm-spot');
    expect(r.notices).toEqual([]);
    expect(r.problems[0]?.code).toBe(code);
  });
});
