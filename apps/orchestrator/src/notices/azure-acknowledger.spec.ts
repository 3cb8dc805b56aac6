import { Logger } from '@nestjs/common';
import type { Redis } from 'ioredis';
import type { EvacuationRecord } from '@spotlift/domain';
import type { AzureScheduledEventsNoticeProvider } from '@spotlift/notices';
import { InMemoryEvacuationRecords } from '@spotlift/store';
import { AzureAcknowledger } from './azure-acknowledger.js';

/** SET NX semantics, in memory: what the acknowledger uses Redis for. */
function fakeRedis(): Redis {
  const keys = new Set<string>();
  return {
    set: (key: string) => {
      if (keys.has(key)) return Promise.resolve(null);
      keys.add(key);
      return Promise.resolve('OK');
    },
  } as unknown as Redis;
}

function provider(events: Array<{ EventId: string; NotBefore: string }>) {
  const acked: string[] = [];
  const p = {
    ownEvents: () => events,
    acknowledge: (id: string) => {
      acked.push(id);
      return Promise.resolve();
    },
  } as unknown as AzureScheduledEventsNoticeProvider;
  return { p, acked };
}

function evacuation(state: EvacuationRecord['state'], eventId = 'E1'): EvacuationRecord {
  const at = new Date().toISOString();
  return {
    id: `evac-${eventId}`,
    nodeId: 'node-a',
    notice: {
      source: 'azure',
      kind: 'preemption',
      deadline: at,
      deadlineEstimated: false,
      receivedAt: at,
      reason: 'Preempt',
      dedupKey: 'k',
      raw: { event: { EventId: eventId } },
    },
    policy: 'evacuate',
    state,
    deadline: at,
    replans: 0,
    jobs: [],
    predictedMisses: [],
    events: [],
    createdAt: at,
    updatedAt: at,
  };
}

describe('AzureAcknowledger', () => {
  beforeAll(() => {
    Logger.overrideLogger(false);
  });
  const far = new Date(Date.now() + 120_000).toUTCString();

  it('does not approve while our evacuation runs and the deadline is far', async () => {
    const repo = new InMemoryEvacuationRecords();
    await repo.save(evacuation('running'));
    const { p, acked } = provider([{ EventId: 'E1', NotBefore: far }]);
    await new AzureAcknowledger(fakeRedis(), 't', repo, 10_000).check('node-a', p);
    expect(acked).toEqual([]);
  });

  it('approves once the evacuation finished, once across replicas, and records it', async () => {
    const repo = new InMemoryEvacuationRecords();
    await repo.save(evacuation('completed'));
    const redis = fakeRedis();
    const { p, acked } = provider([{ EventId: 'E1', NotBefore: far }]);
    await new AzureAcknowledger(redis, 't', repo, 10_000).check('node-a', p);
    await new AzureAcknowledger(redis, 't', repo, 10_000).check('node-a', p);
    expect(acked).toEqual(['E1']);
    expect((await repo.get('evac-E1'))!.acknowledgement).toMatchObject({
      eventId: 'E1',
      ok: true,
      why: 'evacuation-finished',
    });
  });

  it('approves when the deadline is near even if we are not done', async () => {
    const repo = new InMemoryEvacuationRecords();
    await repo.save(evacuation('running'));
    const { p, acked } = provider([{ EventId: 'E1', NotBefore: new Date(Date.now() + 5_000).toUTCString() }]);
    await new AzureAcknowledger(fakeRedis(), 't', repo, 10_000).check('node-a', p);
    expect(acked).toEqual(['E1']);
    expect((await repo.get('evac-E1'))!.acknowledgement?.why).toBe('deadline-near');
  });

  it('never approves an event no evacuation of ours was raised from', async () => {
    const repo = new InMemoryEvacuationRecords();
    await repo.save(evacuation('completed', 'E1'));
    const { p, acked } = provider([{ EventId: 'E2', NotBefore: far }]);
    await new AzureAcknowledger(fakeRedis(), 't', repo, 10_000).check('node-a', p);
    expect(acked).toEqual([]);
  });
});
