/** NodeOps on a fenced node: every command refused before it reaches the shell, except through unfenced(). */
import type { NodeRecord } from '@spotlift/domain';
import { aNode, ScriptedNodeShell } from '@spotlift/testing';
import { NodeFencedError } from './fenced-shell.js';
import { NodeOps } from './node-ops.js';

describe('NodeOps on a fenced node', () => {
  const fenced: NodeRecord = aNode('node-a', { fence: { at: '2026-12-07T01:00:00.000Z', reason: 'lost' } });

  it('refuses kill, inspect and run there without sending anything; other nodes are served', async () => {
    const shell = new ScriptedNodeShell();
    shell.on({ match: /./, reply: { stdout: 'STATE gone\n', code: 0 } });
    const ops = new NodeOps(shell);
    await expect(ops.killTree(fenced, 42)).rejects.toBeInstanceOf(NodeFencedError);
    await expect(ops.inspectTree(fenced, 42)).rejects.toThrow("node 'node-a' is fenced");
    // A domain error (409 at the API, with the way out), not an unknown one (500).
    await expect(ops.inspectTree(fenced, 42)).rejects.toMatchObject({
      code: 'node_fenced',
      meta: { nodeId: 'node-a' },
      message: expect.stringMatching(/registered again \(POST \/nodes\)/),
    });
    expect(await ops.reachable(fenced, 1000)).toBe(false);
    expect(shell.ran('node-a', /./)).toEqual([]);
    expect(await ops.reachable(aNode('node-b'), 1000)).toBe(true);
  });

  it('unfenced() lets the sweeper kill the stale copy there', async () => {
    const shell = new ScriptedNodeShell();
    shell.on({ match: /kill/, reply: { stdout: 'STATE gone\n', code: 0 } });
    expect(await new NodeOps(shell).unfenced().killTree(fenced, 42)).toBe('gone');
    expect(shell.ran('node-a', /kill/)).toHaveLength(1);
  });
});
