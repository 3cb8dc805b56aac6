import { commit, createLedger, freeBytes, release, reserve, reservedBytes, setCapacity } from './capacity-ledger.js';
import { gib } from './fixtures.js';

describe('capacity ledger', () => {
  const base = createLedger({ a: gib(8), b: gib(2) });

  it('reserves until the node is full, then refuses with the free amount', () => {
    const r1 = reserve(base, { id: 'm1', nodeId: 'a', bytes: gib(5) });
    expect(r1.ok).toBe(true);
    const r2 = reserve(r1.ledger, { id: 'm2', nodeId: 'a', bytes: gib(4) });
    expect(r2).toMatchObject({ ok: false, freeBytes: gib(3) });
    expect(r2.ok ? '' : r2.reason).toContain('3.0 GiB unreserved');
    expect(freeBytes(r1.ledger, 'a')).toBe(gib(3));
    expect(reservedBytes(r1.ledger, 'a')).toBe(gib(5));
    expect(freeBytes(base, 'a')).toBe(gib(8)); // immutable
  });

  const refusals = [
    { name: 'an unknown node', res: { id: 'x', nodeId: 'zz', bytes: 1 } },
    { name: 'a negative size', res: { id: 'x', nodeId: 'a', bytes: -1 } },
    { name: 'a NaN size', res: { id: 'x', nodeId: 'a', bytes: Number.NaN } },
  ];
  it.each(refusals)('refuses $name', ({ res }) => {
    expect(reserve(base, res).ok).toBe(false);
  });

  it('is idempotent per reservation id and refuses a conflicting re-use', () => {
    const r1 = reserve(base, { id: 'm1', nodeId: 'a', bytes: gib(1) });
    const again = reserve(r1.ledger, { id: 'm1', nodeId: 'a', bytes: gib(1) });
    expect(again.ok && again.ledger).toBe(r1.ledger);
    expect(reserve(r1.ledger, { id: 'm1', nodeId: 'b', bytes: gib(1) }).ok).toBe(false);
  });

  it('release frees the memory and ignores unknown ids; commit turns it into used memory', () => {
    const r1 = reserve(base, { id: 'm1', nodeId: 'a', bytes: gib(3) });
    expect(freeBytes(release(r1.ledger, 'm1'), 'a')).toBe(gib(8));
    expect(release(r1.ledger, 'nope')).toBe(r1.ledger);
    const c = commit(r1.ledger, 'm1');
    expect(freeBytes(c, 'a')).toBe(gib(5));
    expect(reservedBytes(c, 'a')).toBe(0);
    expect(commit(c, 'm1')).toBe(c);
  });

  it('keeps in-flight reservations across a fresh probe', () => {
    const r1 = reserve(base, { id: 'm1', nodeId: 'a', bytes: gib(3) });
    expect(freeBytes(setCapacity(r1.ledger, 'a', gib(6)), 'a')).toBe(gib(3));
  });
});
