import { type TrialFacts, decideTrialSweep, trialMaxMs, trialName } from './trial-leftovers.js';

const MIN = 60_000;
const policy = { orphanGraceMs: 10 * MIN, trialMaxMs: trialMaxMs(60_000) };
const base: TrialFacts = { name: 'trial-d788c63e', record: 'none', marked: false, ageMs: 30 * MIN };

// name, record, marker, age -> action (undefined: not a trial's, the migration rules decide)
const table: Array<[string, Partial<TrialFacts>, 'remove-trial' | 'skip' | undefined]> = [
  ['a dead trial, past the grace', {}, 'remove-trial'],
  ['a trial younger than the orphan grace', { ageMs: 9 * MIN }, 'skip'],
  ['a migration id', { name: 'mig-0c1f5e2a9b3d' }, undefined],
  ['trial- with upper-case hex', { name: 'trial-D788C63E' }, undefined],
  ['trial- with a longer id', { name: 'trial-d788c63e0' }, undefined],
  ['trial- with a suffix', { name: 'trial-d788c63e-r1' }, undefined],
  ['a record by that name', { record: 'finished' }, undefined],
  ['a live record by that name', { record: 'live' }, undefined],
  ['an owner marker inside', { marked: true }, undefined],
];

describe('decideTrialSweep (the table is the contract)', () => {
  it.each(table)('%s', (_name, facts, action) => {
    const d = decideTrialSweep({ ...base, ...facts }, policy);
    expect(d?.action).toBe(action);
    if (d) expect(d.removeImages).toBe(action === 'remove-trial');
  });

  it('never takes a directory a running trial may still use, whatever the orphan grace (tests run with 0)', () => {
    const zero = { orphanGraceMs: 0, trialMaxMs: trialMaxMs(60_000) };
    expect(trialMaxMs(60_000)).toBe(5 * MIN);
    expect(decideTrialSweep({ ...base, ageMs: 5 * MIN - 1 }, zero)?.action).toBe('skip');
    expect(decideTrialSweep({ ...base, ageMs: 5 * MIN }, zero)?.action).toBe('remove-trial');
  });

  it('names trials only from 8 hex digits', () => {
    expect(trialName('d788c63e')).toBe('trial-d788c63e');
    expect(() => trialName('x; rm -rf /')).toThrow();
  });
});
