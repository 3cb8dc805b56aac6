/**
 * A watched notice whose evacuation cannot be raised (Redis timing out under load): its dedup claim is released
 * after a back-off (0.5 s, doubling to 8 s per node), so the watcher does not raise it again at every poll into
 * the overload that failed it; a success resets the back-off. Fake timers, a fake Redis `del` and raise.
 */
import { jest } from '@jest/globals';
import type { Redis } from 'ioredis';
import { makeDedupKey, type Notice, type NoticeDeduplicator } from '@spotlift/notices';
import type { NodeRepository } from '@spotlift/store';
import type { AppConfig } from '../config/app-config.js';
import type { EvacuationsService } from '../evacuations/evacuations.service.js';
import { NoticeIntake } from './notice-intake.service.js';

const notice: Notice = {
  nodeId: 'node-a',
  source: 'aws',
  kind: 'termination',
  deadline: new Date('2026-12-07T10:00:00Z'),
  deadlineEstimated: false,
  receivedAt: new Date('2026-12-07T09:58:00Z'),
  dedupKey: makeDedupKey('node-a', 'aws', 'termination'),
  reason: 'AWS Spot interruption',
  raw: '{}',
};

function intake(outcomes: ('fail' | 'ok')[]) {
  const released: number[] = [];
  const redis = { del: () => (released.push(Date.now()), Promise.resolve(1)) } as unknown as Redis;
  const evacuations = {
    raise: () =>
      outcomes.shift() === 'ok'
        ? Promise.resolve({ evacuation: { id: 'evac-1' }, created: true })
        : Promise.reject(new Error('Command timed out')),
  } as unknown as EvacuationsService;
  const config = { redisPrefix: 'fleet' } as AppConfig;
  const service = new NoticeIntake({} as NoticeDeduplicator, evacuations, {} as NodeRepository, redis, config);
  return { service, released };
}

describe('NoticeIntake.watched: a raise that fails', () => {
  beforeEach(() => jest.useFakeTimers({ now: 0 }));
  afterEach(() => jest.useRealTimers());

  it('keeps the claim 0.5 s, then 1 s, 2 s ... up to 8 s; a success resets the back-off', async () => {
    const { service, released } = intake(['fail', 'fail', 'fail', 'fail', 'fail', 'fail', 'ok', 'fail']);
    const waits: number[] = [];
    for (let i = 0; i < 8; i++) {
      const before = released.length;
      const at = Date.now();
      await service.watched(notice);
      if (i === 6) continue; // the success: nothing to release
      await jest.advanceTimersByTimeAsync(60_000);
      expect(released.length).toBe(before + 1);
      waits.push(released.at(-1)! - at);
    }
    expect(waits).toEqual([500, 1_000, 2_000, 4_000, 8_000, 8_000, 500]);
  });
});
