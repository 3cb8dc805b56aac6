import { type SweepAction, type SweepFacts, decideSweep } from './sweep-decision.js';

const HOUR = 3_600_000;
const policy = { keepImagesMaxAgeMs: 24 * HOUR, orphanGraceMs: 10 * 60_000 };
const base: SweepFacts = {
  record: 'none',
  marked: true,
  lockHeld: false,
  criuBusy: false,
  source: 'frozen',
  destination: 'none',
  keepImages: false,
  ageMs: HOUR,
};

type Row = [string, Partial<SweepFacts>, SweepAction, boolean];

// marker, record, lock, CRIU, source tree, destination tree -> action, images removed
const table: Row[] = [
  ['live record: hands off, even frozen', { record: 'live' }, 'skip', false],
  ['lock held by a live job, record gone', { lockHeld: true }, 'skip', false],
  ['no record and young: may be another installation mid-freeze', { ageMs: 60_000 }, 'skip', false],
  ['finished record, young: decided at once', { record: 'finished', ageMs: 60_000 }, 'resume-source', true],
  ['CRIU still running in the directory', { criuBusy: true }, 'wait', false],
  ['source node silent', { source: undefined }, 'wait', false],
  ['frozen, destination runs nothing', {}, 'resume-source', true],
  ['frozen, finished record, destination runs nothing', { record: 'finished' }, 'resume-source', true],
  ['frozen, destination copy verified', { destination: 'verified' }, 'kill-source', true],
  ['frozen, destination copy not verified', { destination: 'unverified' }, 'report', false],
  ['frozen, destination silent', { destination: undefined }, 'report', false],
  ['running, no copy', { source: 'running' }, 'remove-images', true],
  ['running, destination silent', { source: 'running', destination: undefined }, 'remove-images', true],
  ['running and a verified copy: two copies', { source: 'running', destination: 'verified' }, 'report', false],
  ['running and an unverified copy', { source: 'running', destination: 'unverified' }, 'report', false],
  ['gone, copy runs', { source: 'gone', destination: 'verified' }, 'remove-images', true],
  ['gone, nothing runs', { source: 'gone' }, 'remove-images', true],
  ['no marker, finished record', { marked: false, record: 'finished', source: undefined }, 'remove-images', true],
  ['no marker, no record, young', { marked: false, source: undefined }, 'report', false],
  ['no marker, no record, old', { marked: false, source: undefined, ageMs: 25 * HOUR }, 'report', true],
  ['keepImages young: resumed, images stay', { keepImages: true }, 'resume-source', false],
  ['keepImages old: resumed, images go', { keepImages: true, ageMs: 25 * HOUR }, 'resume-source', true],
  ['keepImages young, nothing frozen', { keepImages: true, source: 'running' }, 'remove-images', false],
  ['keepImages old, nothing frozen', { keepImages: true, source: 'gone', ageMs: 24 * HOUR }, 'remove-images', true],
];

describe('decideSweep', () => {
  it.each(table)('%s', (_name, over, action, removeImages) => {
    const d = decideSweep({ ...base, ...over }, policy);
    expect({ action: d.action, removeImages: d.removeImages }).toEqual({ action, removeImages });
    expect(d.why).not.toBe('');
  });

  it('never resumes or kills unless the source is frozen and the destination answered', () => {
    const sources = ['frozen', 'running', 'gone', undefined] as const;
    const dests = ['none', 'verified', 'unverified', undefined] as const;
    for (const source of sources)
      for (const destination of dests) {
        const { action } = decideSweep({ ...base, source, destination }, policy);
        if (action === 'resume-source') expect([source, destination]).toEqual(['frozen', 'none']);
        if (action === 'kill-source') expect([source, destination]).toEqual(['frozen', 'verified']);
      }
  });
});
