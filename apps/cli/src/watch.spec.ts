import type { DeliveredEvent } from '@spotlift/domain';
import { parseFrame } from './event-stream-client.js';
import { eventLine } from './watch.js';

const phase = {
  id: '17-0',
  type: 'migration.phase',
  phase: 'dump',
  status: 'ended',
  ok: true,
  durationMs: 1234,
  at: '2026-01-01T10:11:12.000Z',
  nodes: ['node-a', 'node-b'],
  migration: 'mig-1',
} as DeliveredEvent;

describe('spotlift watch', () => {
  it('reads an event from its SSE frame; comments and id-less notices are not events', () => {
    expect(parseFrame(`id: 17-0\nevent: migration.phase\ndata: ${JSON.stringify(phase)}`)).toEqual(phase);
    expect(parseFrame(': heartbeat')).toBeUndefined();
    expect(parseFrame('event: redis\ndata: {"reachable":false}')).toBeUndefined();
  });

  it('prints one line per event', () => {
    expect(eventLine(phase)).toBe('10:11:12 mig-1 dump ended 1.23 s');
    expect(eventLine({ ...phase, ok: false, durationMs: 40 } as DeliveredEvent)).toBe(
      '10:11:12 mig-1 dump ended 40 ms FAILED',
    );
    expect(
      eventLine({
        ...phase,
        type: 'migration.state',
        state: 'rolled_back',
        strategy: 'stop-and-copy',
        rollbackReason: 'restore failed',
      } as DeliveredEvent),
    ).toBe('10:11:12 mig-1 rolled_back: restore failed');
    expect(
      eventLine({
        id: '1-0',
        type: 'node.updated',
        at: phase.at,
        nodes: ['node-c'],
        previousState: 'ready',
        node: { state: 'terminating', lifecycle: 'spot' },
      }),
    ).toBe('10:11:12 node-c ready -> terminating');
  });
});
