/**
 * GET /workloads/:id reads the tree again over SSH while a migration may commit: what it read must never
 * overwrite the record the migration wrote meanwhile (versioned records, issue 9).
 */
import type { NodeRecord, WorkloadRecord } from '@spotlift/domain';
import { SystemClock, type NodeOps } from '@spotlift/engine';
import { InMemoryRecords } from '@spotlift/store';
import { aNode, aWorkload } from '@spotlift/testing';
import { WorkloadsService } from './workloads.service.js';

function setup(duringInspection: (workloads: InMemoryRecords<WorkloadRecord>) => Promise<void> = async () => {}) {
  const workloads = new InMemoryRecords<WorkloadRecord>({ versioned: true });
  const nodes = new InMemoryRecords<NodeRecord>();
  void nodes.save(aNode('node-a'));
  void nodes.save(aNode('node-b'));
  void workloads.save(aWorkload({ tree: [4242], rssBytes: 1 }));
  const ops = {
    inspectTree: async (_n: NodeRecord, pid: number) => {
      await duringInspection(workloads);
      return { pids: [pid, pid + 1], rssBytes: 64 * 2 ** 20 };
    },
  } as unknown as NodeOps;
  return { service: new WorkloadsService(workloads, nodes, ops, new SystemClock()), workloads };
}

describe('WorkloadsService.refresh', () => {
  it('records the tree and RSS it read', async () => {
    const { service, workloads } = setup();
    await service.refresh('wl-1');
    expect(await workloads.get('wl-1')).toMatchObject({ tree: [4242, 4243], rssBytes: 64 * 2 ** 20, version: 2 });
  });

  it('a migration that committed while it read wins: the record keeps the new node and pid', async () => {
    const { service, workloads } = setup(async (repo) => {
      await repo.update('wl-1', (w) => void Object.assign(w, { nodeId: 'node-b', pid: 777 }));
    });
    const w = await service.refresh('wl-1');
    expect(w).toMatchObject({ nodeId: 'node-b', pid: 777 });
    expect(await workloads.get('wl-1')).toMatchObject({ nodeId: 'node-b', pid: 777, tree: [4242] });
  });
});
