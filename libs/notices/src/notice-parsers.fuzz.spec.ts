/**
 * Fuzzing every notice parser (AWS IMDS and EventBridge, GCP, Azure, Kubernetes, webhook) with arbitrary text,
 * arbitrary JSON and near-valid documents: a metadata service, a queue or a caller can send anything, and the
 * parsers' contract is to report problems, never to throw. Every notice that comes out is well formed (our
 * node, a real deadline, a kind we know, a dedup key), every problem has a known code.
 */
import fc from 'fast-check';
import { parseEventBridgeSpotEvent } from './aws/eventbridge-spot-event.js';
import {
  parseInstanceAction,
  parseMaintenanceEvents,
  parseRebalance,
  parseTerminationTime,
} from './aws/aws-imds-parsers.js';
import { parseScheduledEvents } from './azure/azure-scheduled-events-parser.js';
import { parseMaintenanceEvent, parsePreempted } from './gcp/gcp-metadata-parsers.js';
import { kubeNodeSchema } from './k8s/kube-node-api.port.js';
import { DEFAULT_KUBE_SIGNALS, evaluateKubeNode } from './k8s/kube-signals.js';
import { NOTICE_KINDS, NOTICE_SOURCES, type Notice } from './notice.js';
import type { NoticeBatch, NoticeProblemCode } from './notice-problem.js';
import type { ParseContext } from './parse-context.js';
import { parseWebhookNotice } from './webhook/webhook-notice.schema.js';

const RUNS = 200;
const CODES: readonly NoticeProblemCode[] = [
  'unauthorized',
  'unavailable',
  'http_status',
  'transport',
  'malformed_json',
  'invalid_payload',
  'unknown_action',
  'stale',
  'wrong_server',
  'watch',
];
const NOW = new Date('2026-06-01T12:00:00Z');
const ctx = (): ParseContext => ({
  nodeId: 'node-a',
  source: 'aws',
  path: '/fuzz',
  receivedAt: new Date(NOW),
  maxPastMs: 5_000,
});

/** The parsers' contract, checked on every output. */
function wellFormed(out: NoticeBatch, nodeId = 'node-a'): void {
  expect(Array.isArray(out.notices) && Array.isArray(out.problems)).toBe(true);
  for (const n of out.notices) checkNotice(n, nodeId);
  for (const p of out.problems) {
    expect(CODES).toContain(p.code);
    expect(typeof p.message).toBe('string');
  }
}

function checkNotice(n: Notice, nodeId: string): void {
  expect(n.nodeId).toBe(nodeId);
  expect(NOTICE_KINDS).toContain(n.kind);
  expect(NOTICE_SOURCES).toContain(n.source);
  expect(n.deadline).toBeInstanceOf(Date);
  expect(Number.isFinite(n.deadline.getTime())).toBe(true);
  // Nothing that was already over (beyond the tolerance) comes out as a new notice.
  expect(n.deadline.getTime()).toBeGreaterThanOrEqual(NOW.getTime() - 5_000);
  expect(n.dedupKey.length).toBeGreaterThan(0);
  expect(typeof n.reason).toBe('string');
}

const json = fc.jsonValue({ maxDepth: 4 });
const text = fc.oneof(
  fc.string({ maxLength: 80 }),
  fc.string({ unit: 'binary', maxLength: 80 }),
  json.map((v) => JSON.stringify(v)),
  fc.constantFrom('', 'null', '[]', '{}', 'TRUE', 'FALSE', 'NONE', '{"__proto__":{"x":1}}', 'toString', '\u0000'),
);
const times = fc.oneof(
  fc
    .date({ min: new Date('1970-01-01'), max: new Date('2100-01-01'), noInvalidDate: true })
    .map((d) => d.toISOString()),
  fc.constantFrom(
    '2026-06-01T12:02:00Z',
    '2026-06-01T12:02:00+02:00',
    '2026-06-01',
    'soon',
    '',
    '9999-99-99T99:99:99Z',
  ),
  fc.string({ maxLength: 30 }),
);
/** Values of any JSON type in place of the documented field values. */
const field = fc.oneof(times, json);

const property = <T>(arb: fc.Arbitrary<T>, check: (v: T) => void) =>
  fc.assert(fc.property(arb, check), { numRuns: RUNS });

describe('notice parsers under fuzzing: problems, never exceptions; notices always well formed', () => {
  it('AWS spot/instance-action and spot/termination-time', () => {
    const nearValid = fc
      .record({ action: fc.oneof(fc.constantFrom('terminate', 'stop', 'hibernate'), field), time: field })
      .map((v) => JSON.stringify(v));
    property(fc.oneof(text, nearValid), (body) => {
      wellFormed(parseInstanceAction(ctx(), body));
      wellFormed(parseTerminationTime(ctx(), body, 'malformed'));
    });
  });

  it('AWS rebalance recommendation and scheduled maintenance events', () => {
    const event = fc.record(
      {
        Code: fc.oneof(fc.constantFrom('instance-stop', 'system-reboot', 'instance-retirement', 'toString'), field),
        EventId: field,
        NotBefore: fc.oneof(fc.constantFrom('21 Jan 2027 09:00:43 GMT', '31 Feb 2026 09:00:43 GMT'), field),
        NotAfter: field,
        State: fc.oneof(fc.constantFrom('active', 'completed', 'canceled'), field),
      },
      { requiredKeys: [] },
    );
    property(
      fc.oneof(
        text,
        fc.array(event, { maxLength: 4 }).map((v) => JSON.stringify(v)),
      ),
      (body) => {
        wellFormed(parseRebalance(ctx(), body, 120_000));
        wellFormed(parseMaintenanceEvents(ctx(), body));
      },
    );
  });

  it('AWS EventBridge Spot events (SQS bodies, text or decoded)', () => {
    const nearValid = fc.record(
      {
        'detail-type': fc.oneof(
          fc.constantFrom('EC2 Spot Instance Interruption Warning', 'EC2 Instance Rebalance Recommendation'),
          field,
        ),
        source: fc.oneof(fc.constant('aws.ec2'), field),
        time: field,
        detail: fc.oneof(
          fc.record({ 'instance-id': fc.oneof(fc.constant('i-1'), field), 'instance-action': field }),
          field,
        ),
      },
      { requiredKeys: [] },
    );
    property(
      fc.oneof(
        text,
        json,
        nearValid,
        nearValid.map((v) => JSON.stringify(v)),
      ),
      (body) => {
        const out = parseEventBridgeSpotEvent(body, {
          nodeIdOf: (id) => (id === 'i-1' ? 'node-a' : undefined),
          receivedAt: new Date(NOW),
        });
        wellFormed(out);
      },
    );
  });

  it('GCP instance/preempted and instance/maintenance-event', () => {
    property(text, (body) => {
      wellFormed(parsePreempted({ ...ctx(), source: 'gcp' }, body, 30_000));
      wellFormed(parseMaintenanceEvent({ ...ctx(), source: 'gcp' }, body, 60_000));
    });
  });

  it('Azure Scheduled Events documents', () => {
    const event = fc.record(
      {
        EventId: field,
        EventType: fc.oneof(fc.constantFrom('Preempt', 'Terminate', 'Reboot', 'Freeze', 'constructor'), field),
        ResourceType: fc.oneof(fc.constant('VirtualMachine'), field),
        Resources: fc.oneof(fc.constant(['vm-a']), field),
        EventStatus: fc.oneof(fc.constantFrom('Scheduled', 'Started'), field),
        NotBefore: fc.oneof(fc.constantFrom('Mon, 01 Jun 2026 12:05:00 GMT', ''), field),
        DurationInSeconds: field,
      },
      { requiredKeys: [] },
    );
    const doc = fc
      .record(
        { DocumentIncarnation: fc.oneof(fc.nat(), field), Events: fc.oneof(fc.array(event, { maxLength: 3 }), field) },
        { requiredKeys: [] },
      )
      .map((v) => JSON.stringify(v));
    property(fc.oneof(text, doc), (body) => {
      const out = parseScheduledEvents({ ...ctx(), source: 'azure' }, body, 'vm-a');
      wellFormed(out);
      expect(Array.isArray(out.ownEvents)).toBe(true);
    });
  });

  it('Kubernetes Nodes from a watch (validated, then evaluated against every default signal)', () => {
    const taint = fc.record(
      {
        key: fc.oneof(
          fc.constantFrom(...DEFAULT_KUBE_SIGNALS.flatMap((s) => (s.match === 'taint' ? [s.key] : []))),
          field,
        ),
        value: field,
        effect: fc.oneof(fc.constantFrom('NoSchedule', 'NoExecute'), field),
        timeAdded: field,
      },
      { requiredKeys: [] },
    );
    const condition = fc.record(
      {
        type: fc.oneof(
          fc.constantFrom(...DEFAULT_KUBE_SIGNALS.flatMap((s) => (s.match === 'condition' ? [s.type] : []))),
          field,
        ),
        status: fc.oneof(fc.constantFrom('True', 'False'), field),
        reason: field,
        message: fc.oneof(fc.constant('Preempt Scheduled: Mon, 01 Jun 2026 12:05:00 GMT. EventId: x'), field),
        lastTransitionTime: field,
      },
      { requiredKeys: [] },
    );
    const node = fc.record(
      {
        metadata: fc.oneof(
          fc.record({
            name: fc.oneof(fc.constant('node-a'), field),
            annotations: fc.oneof(
              fc.dictionary(
                fc.constantFrom('karpenter.sh/nodeclaim-termination-timestamp', 'x'),
                fc.oneof(times, json),
              ),
              field,
            ),
          }),
          field,
        ),
        spec: fc.oneof(fc.record({ taints: fc.oneof(fc.array(taint, { maxLength: 3 }), field) }), field),
        status: fc.oneof(fc.record({ conditions: fc.oneof(fc.array(condition, { maxLength: 3 }), field) }), field),
      },
      { requiredKeys: [] },
    );
    property(fc.oneof(json, node), (raw) => {
      const parsed = kubeNodeSchema.safeParse(raw);
      if (!parsed.success) return; // refused at the door, as the provider does
      wellFormed(evaluateKubeNode({ ...ctx(), source: 'k8s' }, parsed.data, DEFAULT_KUBE_SIGNALS));
    });
  });

  it('webhook bodies (POST /notices): ok with a well-formed notice, or a problem', () => {
    const nearValid = fc.record(
      {
        nodeId: fc.oneof(fc.constant('node-a'), field),
        kind: fc.oneof(fc.constantFrom(...NOTICE_KINDS), field),
        deadline: field,
        secondsUntil: fc.oneof(fc.integer({ min: -10, max: 60 * 60 * 24 * 70 }), fc.double(), field),
        source: fc.oneof(fc.constantFrom(...NOTICE_SOURCES), field),
        reason: field,
        action: field,
        eventId: field,
      },
      { requiredKeys: [] },
    );
    property(fc.oneof(json, nearValid), (body) => {
      const out = parseWebhookNotice(body, { receivedAt: new Date(NOW) });
      if (out.ok) checkNotice(out.notice, (body as { nodeId: string }).nodeId.trim());
      else expect(CODES).toContain(out.problem.code);
    });
  });
});
