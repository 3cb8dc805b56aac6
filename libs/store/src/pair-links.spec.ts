/** The node-level outbound figure: what several migrations leaving one node at once measured together. */
import { InMemoryPairLinks, nextOutbound, type OutboundTransfer } from './pair-links.js';

const MiB = 2 ** 20;
const T = Date.parse('2026-11-28T02:00:00.000Z');
const tr = (fromS: number, toS: number, mibps: number): OutboundTransfer => ({
  startedAt: T + fromS * 1000,
  endedAt: T + toS * 1000,
  bytesPerSec: mibps * MiB,
});
const ids = { nodeId: 'node-a', transport: 'tls', at: new Date(T).toISOString() };

describe('nextOutbound', () => {
  it.each([
    ['alone: no figure (the pair has it), the transfer kept', [], tr(-10, 0, 100), undefined, undefined],
    ['two together the whole time: the sum', [tr(-10, 0, 60)], tr(-10, 0, 40), 100, 2],
    ['one overlapping half the time counts half', [tr(-20, -5, 60)], tr(-10, 0, 40), 70, 2],
    ['three at once', [tr(-10, 0, 30), tr(-12, -1, 30)], tr(-10, 0, 30), 87, 3],
    ['an earlier one that ended before: alone again', [tr(-30, -20, 60)], tr(-10, 0, 40), undefined, undefined],
    ['older than an hour: forgotten', [tr(-7200, -3700, 60)], tr(-10, 0, 40), undefined, undefined],
  ] as const)('%s', (_name, recent, t, mibps, concurrent) => {
    const out = nextOutbound(undefined, recent, t, ids);
    if (mibps === undefined) expect(out.record).toBeUndefined();
    else {
      expect(out.record!.bytesPerSec / MiB).toBeCloseTo(mibps, 0);
      expect(out.record).toMatchObject({ nodeId: 'node-a', transport: 'tls', concurrent, samples: 1 });
    }
    expect(out.recent.at(-1)).toEqual(t);
    expect(out.recent.some((x) => x.endedAt < T - 3_600_000)).toBe(false);
  });

  it('moves half way from the previous figure, and a lone transfer leaves it as it was', () => {
    const first = nextOutbound(undefined, [tr(-10, 0, 100)], tr(-10, 0, 100), ids).record!;
    const second = nextOutbound(first, [tr(-5, 5, 200)], tr(-5, 5, 200), ids).record!;
    expect(second).toMatchObject({ bytesPerSec: 300 * MiB, samples: 2 });
    expect(nextOutbound(second, [], tr(100, 110, 10), ids).record).toBe(second);
  });
});

describe('InMemoryPairLinks.outbound', () => {
  it('per source and transport, from samples that say when their pages began; the pair figures unchanged', async () => {
    const links = new InMemoryPairLinks();
    const at = (s: number) => new Date(T + s * 1000).toISOString();
    const sample = (destinationNodeId: string, mibps: number, transport = 'tls') => ({
      sourceNodeId: 'node-a',
      destinationNodeId,
      transport,
      bytesPerSec: mibps * MiB,
      at: at(0),
      startedAt: at(-10),
    });
    await links.record(sample('node-b', 60));
    expect(await links.outbound('node-a', 'tls')).toBeUndefined();
    await links.record(sample('node-c', 40, 'tcp'));
    expect(await links.outbound('node-a', 'tls')).toBeUndefined();
    await links.record(sample('node-c', 40));
    expect(await links.outbound('node-a', 'tls')).toMatchObject({ bytesPerSec: 100 * MiB, concurrent: 2 });
    expect(await links.outbound('node-b', 'tls')).toBeUndefined();
    // Without startedAt (an older writer) only the pair figure moves.
    await links.record({ ...sample('node-b', 10), startedAt: undefined });
    expect(await links.get('node-a', 'node-b', 'tls')).toMatchObject({ bytesPerSec: 35 * MiB, samples: 2 });
    expect((await links.outbound('node-a', 'tls'))!.samples).toBe(1);
  });
});
