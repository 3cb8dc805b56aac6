import { poolNoticeRates, poolReserve } from './rebalance-reserve.js';

const NOW = new Date('2026-03-04T12:00:00Z');
const DAY = 86_400_000;
const at = (daysAgo: number) => NOW.getTime() - daysAgo * DAY;

describe('poolNoticeRates', () => {
  const nodes = [
    { id: 'a', spotPool: 'p', lifecycle: 'spot' },
    { id: 'b', spotPool: 'p', lifecycle: 'spot' },
    { id: 'od', spotPool: 'p', lifecycle: 'on-demand' },
    { id: 'c', spotPool: 'q', lifecycle: 'spot' },
  ];

  it('weighs notices per node-day of the pool, counting nodes that are gone but were noticed', () => {
    const rates = poolNoticeRates(
      nodes,
      [
        { nodeId: 'x', spotPool: 'p', kind: 'interruption', at: at(2) },
        { nodeId: 'a', spotPool: 'p', kind: 'recommendation', at: at(1) },
        // Older than the week, in the future, or without a pool: none counts.
        { nodeId: 'b', spotPool: 'p', kind: 'interruption', at: at(8) },
        { nodeId: 'b', spotPool: 'p', kind: 'interruption', at: NOW.getTime() + DAY },
        { nodeId: 'z', kind: 'interruption', at: at(1) },
      ],
      NOW,
    );
    // 1 + 0.5 over a, b and the gone x (the on-demand node is not of the spot pool) for seven days.
    expect(rates.get('p')).toBeCloseTo(1.5 / (3 * 7));
    expect(rates.get('q')).toBe(0);
    expect(rates.has('z')).toBe(false);
  });

  it('a shorter window divides by fewer days and drops what is older', () => {
    const notices = [
      { nodeId: 'c', spotPool: 'q', kind: 'interruption' as const, at: at(0.5) },
      { nodeId: 'c', spotPool: 'q', kind: 'interruption' as const, at: at(3) },
    ];
    expect(poolNoticeRates(nodes, notices, NOW, 86_400).get('q')).toBeCloseTo(1);
    expect(poolNoticeRates(nodes, notices, NOW).get('q')).toBeCloseTo(2 / 7);
  });
});

describe('poolReserve', () => {
  it.each([
    ['a pool without notices keeps the floor (0 by default)', 0, {}, 0],
    ['half way to the full rate: half the reserve', 0.1, {}, 0.1],
    ['at the full rate: the whole reserve', 0.2, {}, 0.2],
    ['above it: never more than the whole reserve', 3, {}, 0.2],
    ['a floor lifts a calm pool', 0, { floorFraction: 0.05 }, 0.05],
    ['half way between floor and reserve', 0.1, { floorFraction: 0.1 }, 0.15],
    ['a floor above the reserve is the reserve', 0, { floorFraction: 0.5 }, 0.2],
  ] as const)('%s', (_name, rate, over, expected) => {
    expect(poolReserve(rate, 0.2, { fullAtPerNodeDay: 0.2, ...over })).toBeCloseTo(expected);
  });
});
