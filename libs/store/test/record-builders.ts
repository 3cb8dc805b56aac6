/** Node and evacuation records for the store's race specs (unit and int). */
import type { EvacuationRecord, NodeRecord } from '@spotlift/domain';

export const aNodeRecord = (): NodeRecord => ({
  id: 'node-a',
  name: 'node-a',
  host: '10.0.0.1',
  port: 22,
  user: 'root',
  hostKey: 'SHA256:x',
  labels: {},
  lifecycle: 'spot',
  state: 'ready',
  createdAt: '2026-12-06T12:00:00.000Z',
  updatedAt: '2026-12-06T12:00:00.000Z',
});

export const anEvacuation = (workloads: string[]): EvacuationRecord => ({
  id: 'evac-1',
  nodeId: 'node-a',
  notice: {
    source: 'aws',
    kind: 'preemption',
    deadline: '2026-12-06T12:02:00.000Z',
    deadlineEstimated: false,
    receivedAt: '2026-12-06T12:00:00.000Z',
    reason: 'test',
    dedupKey: 'k',
    raw: {},
  },
  policy: 'evacuate',
  state: 'running',
  deadline: '2026-12-06T12:02:00.000Z',
  replans: 0,
  jobs: workloads.map((workloadId, i) => ({
    workloadId,
    memoryBytes: 1,
    priority: 0,
    state: 'running',
    migrationId: `mig-${i}`,
  })),
  predictedMisses: [],
  events: [],
  createdAt: '2026-12-06T12:00:00.000Z',
  updatedAt: '2026-12-06T12:00:00.000Z',
});
