/**
 * The workload's process identity in the engine: preflight refuses a pid that is another process now (no
 * freeze), and the commit makes the restored process the workload's identity.
 */
import { aWorkload, inspectionOutput } from '@spotlift/testing';
import { engineKit, phaseNames, scriptHappyPath } from '@spotlift/testing';

const identity = { bootId: '53b88e37-904f-4ee1-8e18-0fb871a935bd', pidNs: '4026532201', startTime: '123456' };

function kitWith(sourceFacts: Parameters<typeof inspectionOutput>[0]) {
  const kit = engineKit({ workload: aWorkload({ identity, tree: [4242, 4243] }) });
  kit.shell
    .on({
      node: 'node-a',
      match: /echo TREE/,
      reply: { stdout: inspectionOutput({ tree: [4242, 4243], ...sourceFacts }) },
    })
    .on({
      node: 'node-b',
      match: /echo TREE/,
      reply: { stdout: inspectionOutput({ pid: 777, tree: [777, 778], startTime: '990001', pidNs: '4026532777' }) },
    });
  scriptHappyPath(kit.shell);
  return kit;
}

describe('the workload identity in the engine', () => {
  it('fails preflight, touching nothing, when the pid now belongs to another process', async () => {
    const kit = kitWith({ startTime: '999999' });
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(phaseNames(m)).toEqual(['preflight:fail', 'cleanup:ok']);
    expect(m.error).toMatch(/^workload 'demo' no longer runs: pid 4242 on node 'node-a' is another process now/);
    expect(kit.shell.ran('node-a', /criu dump|kill -|page-server/)).toEqual([]);
    expect(kit.shell.ran('node-b', /criu page-server|criu restore/)).toEqual([]);
  });

  it('fails preflight when the node rebooted since the registration', async () => {
    const kit = kitWith({ bootId: '00000000-0000-0000-0000-000000000001' });
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('failed');
    expect(m.error).toMatch(/node 'node-a' rebooted since pid 4242 was registered/);
  });

  it('moves when the process is the registered one, and the commit records the restored process', async () => {
    const kit = kitWith({});
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    expect(await kit.workloads.get('wl-1')).toMatchObject({
      nodeId: 'node-b',
      pid: 777,
      identity: { bootId: identity.bootId, pidNs: '4026532777', startTime: '990001' },
    });
  });

  it('drops the old identity when the restored one could not be read (node and pid stand for it then)', async () => {
    const kit = engineKit({ workload: aWorkload({ identity, tree: [4242, 4243] }) });
    kit.shell.on({ node: 'node-a', match: /echo TREE/, reply: { stdout: inspectionOutput({ tree: [4242, 4243] }) } });
    scriptHappyPath(kit.shell);
    const m = await kit.engine.run('mig-1');
    expect(m.state).toBe('completed');
    const w = await kit.workloads.get('wl-1');
    expect(w).toMatchObject({ nodeId: 'node-b', pid: 777 });
    expect(w?.identity).toBeUndefined();
  });
});
