/**
 * The workload's process identity in the engine: preflight refuses a pid that is another process now (no
 * freeze), and the commit makes the restored process the workload's identity. Over the fake node operations:
 * inspectTree answers the typed facts (what its script prints is golden in node-ops).
 */
import { aWorkload, type FakeProcessOps, inspectedTree, type InspectionFacts } from '@spotlift/testing';
import { fakeEngineKit, phaseNames, scriptHappyOps } from '@spotlift/testing';

const identity = { bootId: '53b88e37-904f-4ee1-8e18-0fb871a935bd', pidNs: '4026532201', startTime: '123456' };

function kitWith(sourceFacts: InspectionFacts, restored?: InspectionFacts) {
  const kit = fakeEngineKit({ workload: aWorkload({ identity, tree: [4242, 4243] }) });
  kit.ops.on('inspectTree', inspectedTree({ tree: [4242, 4243], ...sourceFacts }), { node: 'node-a' });
  if (restored) kit.ops.on('inspectTree', inspectedTree(restored), { node: 'node-b' });
  scriptHappyOps(kit.ops, kit.streams);
  return kit;
}

/** The workload was frozen, signalled, or restored somewhere. */
const touched = (ops: FakeProcessOps) =>
  ops.calls.filter((c) =>
    ['dump', 'killTree', 'resumeTree', 'startPageServer', 'restore', 'armRestore'].includes(c.op),
  );

describe('the workload identity in the engine', () => {
  it('fails preflight, touching nothing, when the pid now belongs to another process', async () => {
    const kit = kitWith({ startTime: '999999' });
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(phaseNames(m)).toEqual(['preflight:fail', 'cleanup:ok']);
    expect(m.error).toMatch(/^workload 'demo' no longer runs: pid 4242 on node 'node-a' is another process now/);
    expect(touched(kit.ops)).toEqual([]);
  });

  it('fails preflight when the node rebooted since the registration', async () => {
    const kit = kitWith({ bootId: '00000000-0000-0000-0000-000000000001' });
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/node 'node-a' rebooted since pid 4242 was registered/);
    expect(touched(kit.ops)).toEqual([]);
  });

  it('moves when the process is the registered one, and the commit records the restored process', async () => {
    const kit = kitWith({}, { pid: 777, tree: [777, 778], startTime: '990001', pidNs: '4026532777' });
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(await kit.workloads.get('wl-1')).toMatchObject({
      nodeId: 'node-b',
      pid: 777,
      identity: { bootId: identity.bootId, pidNs: '4026532777', startTime: '990001' },
    });
  });

  it('drops the old identity when the restored one could not be read (node and pid stand for it then)', async () => {
    // node-b's inspection gives the tree but no root facts (the happy path's answer there)
    const kit = kitWith({});
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    const w = await kit.workloads.get('wl-1');
    expect(w).toMatchObject({ nodeId: 'node-b', pid: 777 });
    expect(w?.identity).toBeUndefined();
  });
});
