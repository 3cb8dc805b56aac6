import { SHORTLIST, shortlistDestinations } from './destination-shortlist.js';
import type { EvacuationInput } from './evacuation-types.js';
import { candidate, gib, sourceNode, workload } from './fixtures.js';
import { planEvacuation } from './plan-evacuation.js';
import { replan } from './replan.js';
import type { CandidateNode } from './types.js';

const input = (destinations: CandidateNode[], over: Partial<EvacuationInput> = {}): EvacuationInput => ({
  deadlineSeconds: 60,
  source: sourceNode(),
  sourceOutboundBytesPerSec: gib(1),
  workloads: [workload('w1')],
  destinations,
  perMigrationOverheadSeconds: 0.5,
  ...over,
});
/** `n` destinations in other zones than the source's, 4 GiB free each, ids d000.. */
const fleet = (n: number, over: (i: number) => Partial<CandidateNode> = () => ({})): CandidateNode[] =>
  Array.from({ length: n }, (_, i) =>
    candidate(`d${String(i).padStart(3, '0')}`, { zone: 'zone-b', freeMemoryBytes: gib(4), ...over(i) }),
  );
const small = { atLeast: 4, perWorkload: 2, memoryFactor: 2 };
const ids = (ds: readonly CandidateNode[]) => ds.map((d) => d.id);

describe('shortlistDestinations', () => {
  it('keeps a fleet no larger than the shortlist whole (the same array: nothing to say)', () => {
    const all = fleet(SHORTLIST.atLeast);
    expect(shortlistDestinations(input(all))).toBe(all);
  });

  it("takes each workload's best by placement's ranking: the same-zone nodes of a large fleet", () => {
    // The source is in zone-a; five of 100 are too, scattered through the fleet.
    const all = fleet(100, (i) => (i % 20 === 7 ? { zone: 'zone-a' } : {}));
    const kept = shortlistDestinations(input(all, { workloads: [workload('w1'), workload('w2')] }), small);
    expect(kept).toHaveLength(4);
    expect(kept.every((d) => d.zone === 'zone-a')).toBe(true);
    // In the fleet's order, not the ranking's.
    expect(ids(kept)).toEqual(['d007', 'd027', 'd047', 'd067']);
  });

  it('grows to perWorkload per workload when that is more than atLeast', () => {
    const kept = shortlistDestinations(
      input(fleet(100), { workloads: ['a', 'b', 'c', 'd'].map((id) => workload(id)) }),
      small,
    );
    expect(kept).toHaveLength(8);
  });

  it('keeps going while its free memory is under memoryFactor x what the workloads need', () => {
    // Four 3 GiB workloads (12 GiB, 24 GiB wanted) over 1 GiB-free nodes... and 4 GiB ones further down.
    const all = fleet(100, (i) => ({ freeMemoryBytes: gib(i < 50 ? 4 : 8) }));
    const kept = shortlistDestinations(
      input(all, { workloads: ['a', 'b'].map((id) => workload(id, { memoryBytes: gib(3) })) }),
      { atLeast: 1, perWorkload: 1, memoryFactor: 2 },
    );
    const free = kept.reduce((s, d) => s + d.freeMemoryBytes, 0);
    expect(free).toBeGreaterThanOrEqual(gib(12));
    expect(kept.length).toBeLessThan(6);
  });

  it('leaves out nodes no workload may use (hard filters), even when short', () => {
    const all = fleet(100, (i) => (i >= 2 ? { state: 'terminating' } : {}));
    expect(ids(shortlistDestinations(input(all), small))).toEqual(['d000', 'd001']);
  });

  it('always keeps the storage node and a guard copy storage node, whatever they rank', () => {
    const all = fleet(100, (i) => (i === 90 || i === 91 ? { zone: 'zone-c', freeMemoryBytes: gib(1.5) } : {}));
    const kept = shortlistDestinations(
      input(all, {
        storageNodeId: 'd090',
        workloads: [
          workload('w1', {
            guardCopy: {
              checkpointId: 'cp',
              storageNodeId: 'd091',
              ageSeconds: 5,
              pagesBytes: gib(1),
              encrypted: false,
            },
          }),
        ],
      }),
      small,
    );
    // Counted in the shortlist's size: the two best fill the rest.
    expect(ids(kept)).toEqual(['d000', 'd001', 'd090', 'd091']);
  });
});

describe('planEvacuation over a shortlist', () => {
  const all = fleet(300, (i) => (i % 50 === 3 ? { zone: 'zone-a' } : {}));
  const plan = planEvacuation(input(all, { workloads: [workload('w1'), workload('w2')] }));

  it('plans over the shortlist and says so in the plan and its summary', () => {
    expect(plan.shortlist).toEqual({ kept: SHORTLIST.atLeast, of: 300 });
    expect(plan.input.destinations).toHaveLength(SHORTLIST.atLeast);
    expect(plan.summary).toMatch(/planned over the best 64 of 300 destinations$/);
  });

  it('places as the whole fleet would: on the same-zone nodes', () => {
    const dests = plan.migrations.map((m) => m.destinationId);
    expect(dests.every((d) => all.find((n) => n.id === d)?.zone === 'zone-a')).toBe(true);
  });

  it('a re-plan keeps the shortlist and its word', () => {
    const next = replan(plan, [{ workloadId: 'w1', outcome: 'failed' }], 5);
    expect(next.shortlist).toEqual(plan.shortlist);
    expect(next.input.destinations).toHaveLength(SHORTLIST.atLeast);
    expect(next.summary).toMatch(/planned over the best 64 of 300 destinations$/);
  });

  it('a small fleet is planned whole, with no shortlist', () => {
    const whole = planEvacuation(input(fleet(10)));
    expect(whole.shortlist).toBeUndefined();
    expect(whole.summary).not.toMatch(/planned over/);
  });
});
