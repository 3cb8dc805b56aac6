import { parseEventBridgeSpotEvent } from './eventbridge-spot-event.js';

const itn = {
  version: '0',
  id: '12345678-1234-1234-1234-123456789012',
  'detail-type': 'EC2 Spot Instance Interruption Warning',
  source: 'aws.ec2',
  account: '123456789012',
  time: '2026-11-20T10:00:00Z',
  region: 'us-east-2',
  resources: ['arn:aws:ec2:us-east-2b:instance/i-1234567890abcdef0'],
  detail: { 'instance-id': 'i-1234567890abcdef0', 'instance-action': 'terminate' },
};
const nodeIdOf = (id: string) => (id === 'i-1234567890abcdef0' ? 'node-a' : undefined);
const receivedAt = new Date('2026-11-20T10:00:03Z');

describe('parseEventBridgeSpotEvent', () => {
  it('sets the deadline to event time + 2 minutes and shares the IMDS dedup key', () => {
    const { notices, problems } = parseEventBridgeSpotEvent(JSON.stringify(itn), { nodeIdOf, receivedAt });
    expect(problems).toEqual([]);
    expect(notices[0]).toMatchObject({
      nodeId: 'node-a',
      kind: 'preemption',
      action: 'terminate',
      deadline: new Date('2026-11-20T10:02:00Z'),
      deadlineEstimated: true,
      dedupKey: 'node-a:aws:preemption',
    });
  });

  it('reads the instance from detail.instance-id, not resources', () => {
    const odd = { ...itn, resources: ['arn:aws:ec2:us-east-2:123:instance/i-someone-else'] };
    expect(parseEventBridgeSpotEvent(odd, { nodeIdOf, receivedAt }).notices[0]?.nodeId).toBe('node-a');
  });

  it('ignores instances that are not ours (shared queue) without a problem', () => {
    expect(parseEventBridgeSpotEvent(itn, { nodeIdOf: () => undefined, receivedAt })).toEqual({
      notices: [],
      problems: [],
    });
  });

  it('reads a rebalance recommendation', () => {
    const rebalance = {
      ...itn,
      'detail-type': 'EC2 Instance Rebalance Recommendation',
      detail: { 'instance-id': 'i-1234567890abcdef0' },
    };
    expect(parseEventBridgeSpotEvent(rebalance, { nodeIdOf, receivedAt }).notices[0]?.kind).toBe('rebalance');
  });

  it.each([
    ['malformed JSON', '{"id":', 'malformed_json'],
    [
      'an old event (redelivered after the deadline)',
      JSON.stringify({ ...itn, time: '2026-11-20T09:00:00Z' }),
      'stale',
    ],
    [
      'an unknown action',
      JSON.stringify({ ...itn, detail: { 'instance-id': 'i-1234567890abcdef0', 'instance-action': 'melt' } }),
      'unknown_action',
    ],
    [
      'another detail-type',
      JSON.stringify({ ...itn, 'detail-type': 'EC2 Instance State-change Notification' }),
      'unknown_action',
    ],
    ['another source', JSON.stringify({ ...itn, source: 'aws.health' }), 'invalid_payload'],
    ['a bad time', JSON.stringify({ ...itn, time: 'yyyy-mm-ddThh:mm:ssZ' }), 'invalid_payload'],
  ])('reports %s', (_name, json, code) => {
    const { notices, problems } = parseEventBridgeSpotEvent(json, { nodeIdOf, receivedAt });
    expect(notices).toEqual([]);
    expect(problems[0]?.code).toBe(code);
  });
});
