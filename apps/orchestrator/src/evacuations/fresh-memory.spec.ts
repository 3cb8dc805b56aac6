import type { NodeRecord } from '@spotlift/domain';
import { aNode } from '@spotlift/testing';
import { FRESH_MEMORY_READS, freshMemoryCandidates } from './fresh-memory.js';

const GIB = 2 ** 30;
const node = (id: string, freeGiB: number, state: NodeRecord['state'] = 'ready'): NodeRecord =>
  aNode(id, { state, probe: { probedAt: '', criuOk: true, features: {}, memAvailableBytes: freeGiB * GIB } });

describe('freshMemoryCandidates', () => {
  it('reads a bounded number of nodes however large the fleet: the roomiest ready ones, never the source', () => {
    const fleet = Array.from({ length: 1000 }, (_, i) => node(`n-${i}`, i % 97));
    fleet.push(node('source', 500), node('gone', 400, 'terminating'), node('drained', 300, 'draining'));
    const picked = freshMemoryCandidates(fleet, 'source');
    expect(picked).toHaveLength(FRESH_MEMORY_READS);
    const ids = picked.map((n) => n.id);
    expect(ids).not.toContain('source');
    expect(ids).not.toContain('gone');
    expect(ids).not.toContain('drained');
    // Every node left out has no more room (by its probe) than the least roomy one read.
    const least = Math.min(...picked.map((n) => n.probe!.memAvailableBytes!));
    const left = fleet.filter((n) => n.state === 'ready' && n.id !== 'source' && !ids.includes(n.id));
    expect(Math.max(...left.map((n) => n.probe!.memAvailableBytes!))).toBeLessThanOrEqual(least);
  });

  it('reads every ready node of a small fleet, unprobed ones too', () => {
    const fleet = [node('a', 1), aNode('b', { state: 'ready', probe: undefined }), node('c', 8)];
    expect(freshMemoryCandidates(fleet, 'a').map((n) => n.id)).toEqual(['c', 'b']);
  });
});
