/**
 * Two evacuation settings no other spec exercised: the safety margin (every planner spec sets it to 0) and
 * the cross-source dedup key as Nest wires it (the deduplicator's own spec passes the key by hand).
 */
import type { Provider } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { makeDedupKey, NoticeDeduplicator, type Notice } from '@spotlift/notices';
import { planEvacuation } from '@spotlift/placement';
import { aNode, aWorkload } from '@spotlift/testing';
import type { AppConfig } from '../config/app-config.js';
import { EvacuationSettings } from '../config/evacuation-config.js';
import { buildEvacuationInput } from './evacuation-input.js';
import { evacuationProviders } from './evacuations.providers.js';

const MIB = 2 ** 20;

describe('the evacuation safety margin', () => {
  // One 4 GiB workload at 200 MiB/s (~20.5 s of transfer + 1.5 s overhead) and a notice 30 s ahead.
  const plan = (safetyMarginSeconds: number) => {
    const now = new Date('2026-01-01T00:00:00Z');
    const settings = EvacuationSettings.parse({
      safetyMarginSeconds,
      maxParallel: 1,
      sourceBandwidthBytesPerSec: 200 * MIB,
      streamBandwidthBytesPerSec: 200 * MIB,
    });
    const input = buildEvacuationInput({
      deadline: new Date(now.getTime() + 30_000),
      now,
      source: aNode('node-a', { state: 'terminating' }),
      workloads: [aWorkload({ id: 'wl-big', rssBytes: 4096 * MIB })],
      nodes: [
        aNode('node-a', { state: 'terminating' }),
        aNode('node-b', { probe: { ...aNode('node-b').probe!, memAvailableBytes: 64 * 2 ** 30 } }),
      ],
      freshMemAvailable: {},
      reservedByNode: {},
      settings,
    });
    return { input, plan: planEvacuation(input) };
  };

  it('is taken off the deadline: 30 s with a 10 s margin plans against 20 s', () => {
    expect(plan(0).input.deadlineSeconds).toBe(30);
    expect(plan(10).input.deadlineSeconds).toBe(20);
    expect(plan(45).input.deadlineSeconds).toBe(0);
  });

  it('changes the plan: the move that fits in 30 s is a predicted miss once 10 s are kept back', () => {
    const line = (margin: number) => plan(margin).plan.migrations.find((m) => m.workloadId === 'wl-big');
    expect(line(0)).toMatchObject({ willMiss: false });
    expect(line(10)).toMatchObject({ willMiss: true });
  });
});

describe('the notice deduplicator as the Nest providers build it', () => {
  const notice = (source: Notice['source']): Notice => ({
    nodeId: 'node-a',
    source,
    kind: 'termination',
    deadline: new Date(Date.now() + 120_000),
    deadlineEstimated: false,
    receivedAt: new Date(),
    dedupKey: makeDedupKey('node-a', source, 'termination'),
    reason: 'test',
    raw: {},
  });

  it('keys by node and kind across sources, under the configured prefix: IMDS then a webhook raise once', async () => {
    // Redis as far as the dedup store uses it: its claim script, reduced to what it decides.
    const set = new Map<string, number>();
    const redis = {
      eval: (_script: string, _keys: number, key: string, deadline: string, _ttl: string, earlierBy: string) => {
        const held = set.get(key);
        if (held !== undefined && Number(deadline) >= held - Number(earlierBy)) return Promise.resolve('duplicate');
        set.set(key, Number(deadline));
        return Promise.resolve(held === undefined ? 'new' : 'earlier');
      },
    } as unknown as Redis;
    const config = { redisPrefix: 'fleet1', runsWorker: false, notices: {} } as unknown as AppConfig;
    const provider = evacuationProviders(config).find(
      (p): p is Extract<Provider, { useFactory: unknown }> =>
        typeof p === 'object' && 'provide' in p && p.provide === NoticeDeduplicator,
    )!;
    const dedup = (provider.useFactory as (r: Redis, c: AppConfig) => NoticeDeduplicator)(redis, config);
    const first = notice('aws');
    expect(await dedup.isNew(first)).toBe(true);
    expect(await dedup.isNew(notice('webhook'))).toBe(false);
    expect([...set.keys()]).toEqual(['fleet1:notice-dedup:node-a:termination']);
    expect(set.get('fleet1:notice-dedup:node-a:termination')).toBe(first.deadline.getTime());
  });
});
