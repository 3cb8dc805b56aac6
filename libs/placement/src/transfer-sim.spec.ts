import { finishTimes, maxMinRates, type Links, type SimJob } from './transfer-sim.js';

const job = (id: string, over: Partial<SimJob> = {}): SimJob => ({
  id,
  destinationId: 'd1',
  capBytesPerSec: Number.POSITIVE_INFINITY,
  overheadLeftSeconds: 0,
  bytesLeft: 100,
  startedAt: 0,
  ...over,
});

describe('maxMinRates', () => {
  const links: Links = { sourceBytesPerSec: 100, inboundBytesPerSec: { d1: 40 } };
  const cases: Array<{ name: string; jobs: SimJob[]; want: number[] }> = [
    {
      name: 'k streams split the source 1/k each',
      jobs: [job('a', { destinationId: 'x' }), job('b', { destinationId: 'y' })],
      want: [50, 50],
    },
    {
      name: 'a capped stream leaves the rest to others',
      jobs: [job('a', { destinationId: 'x', capBytesPerSec: 20 }), job('b', { destinationId: 'y' })],
      want: [20, 80],
    },
    {
      name: 'a destination inbound limit is shared by its streams',
      jobs: [job('a'), job('b'), job('c', { destinationId: 'x' })],
      want: [20, 20, 60],
    },
    {
      name: 'a stream still in its overhead takes nothing',
      jobs: [job('a', { overheadLeftSeconds: 1, destinationId: 'x' }), job('b', { destinationId: 'y' })],
      want: [0, 100],
    },
  ];
  it.each(cases)('$name', ({ jobs, want }) => {
    maxMinRates(jobs, links).forEach((r, i) => expect(r).toBeCloseTo(want[i]!));
  });
});

describe('finishTimes', () => {
  const links: Links = { sourceBytesPerSec: 10, inboundBytesPerSec: {} };
  it('two equal transfers in parallel both finish at 2x; serial would finish the first at 1x', () => {
    const f = finishTimes([job('a', { destinationId: 'x' }), job('b', { destinationId: 'y' })], links, 0);
    expect(f.get('a')!.finishedAt).toBeCloseTo(20);
    expect(f.get('b')!.finishedAt).toBeCloseTo(20);
    expect(finishTimes([job('a')], links, 0).get('a')!.finishedAt).toBeCloseTo(10);
  });

  it('overhead comes first and a finished stream hands its share on', () => {
    const f = finishTimes(
      [job('a', { overheadLeftSeconds: 2, destinationId: 'x' }), job('b', { bytesLeft: 50, destinationId: 'y' })],
      links,
      5,
    );
    // b alone for 2 s (20 bytes), then 5/s each: b done at 5+2+6=13, a has 70 left at 10/s -> 20.
    expect(f.get('b')!.finishedAt).toBeCloseTo(13);
    expect(f.get('a')!.transferStartedAt).toBeCloseTo(7);
    expect(f.get('a')!.finishedAt).toBeCloseTo(20);
  });
});
