import type { MigrationRecord, NodeRecord, WorkloadRecord } from '@spotlift/domain';

const T0 = '2026-01-01T00:00:00.000Z';

export function aNode(id: string, over: Partial<NodeRecord> = {}): NodeRecord {
  return {
    id,
    name: id,
    host: `10.0.0.${id.charCodeAt(id.length - 1) % 200}`,
    port: 22,
    user: 'spotlift',
    hostKey: 'SHA256:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA',
    labels: {},
    lifecycle: 'spot',
    state: 'ready',
    probe: { probedAt: T0, criuOk: true, criuVersion: '4.2.1', features: {}, memAvailableBytes: 8 * 2 ** 30 },
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

export function aWorkload(over: Partial<WorkloadRecord> = {}): WorkloadRecord {
  return {
    id: 'wl-1',
    name: 'demo',
    nodeId: 'node-a',
    pid: 4242,
    state: 'running',
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}

export function aMigration(over: Partial<MigrationRecord> = {}): MigrationRecord {
  return {
    id: 'mig-1',
    workloadId: 'wl-1',
    sourceNodeId: 'node-a',
    destinationNodeId: 'node-b',
    destinationReason: 'requested',
    strategy: 'stop-and-copy',
    transport: 'tcp',
    state: 'queued',
    phases: [],
    criu: {},
    bytes: { pages: 0, images: 0 },
    createdAt: T0,
    updatedAt: T0,
    ...over,
  };
}
