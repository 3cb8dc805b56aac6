import type { SweepAction } from './sweep-decision.js';
import { type ContainerSweepFacts, decideContainerSweep } from './container-sweep-decision.js';

const HOUR = 3_600_000;
const policy = { keepImagesMaxAgeMs: 24 * HOUR, orphanGraceMs: 10 * 60_000 };
const base: ContainerSweepFacts = {
  record: 'none',
  marked: true,
  lockHeld: false,
  podmanBusy: false,
  source: 'checkpointed',
  destination: 'none',
  keepImages: false,
  ageMs: HOUR,
};

type Row = [string, Partial<ContainerSweepFacts>, SweepAction, boolean];

// A dead orchestrator's container move, records lost: the source's and destination's containers -> action.
const table: Row[] = [
  ['checkpointed source, no copy: restored from the kept checkpoint', {}, 'resume-source', true],
  ['checkpointed source, copy runs: the source container is removed', { destination: 'running' }, 'kill-source', true],
  [
    'checkpointed source, copy does not run: the copy is removed (then the source decided again)',
    { destination: 'not-running' },
    'remove-copy',
    false,
  ],
  [
    'running source, copy does not run (a rolled-back move): the copy is removed',
    { source: 'running', destination: 'not-running' },
    'remove-copy',
    false,
  ],
  [
    'source gone, copy does not run: untouched (it may be all there is)',
    { source: 'gone', destination: 'not-running' },
    'remove-images',
    true,
  ],
  ['copy does not run, but a live record: hands off', { destination: 'not-running', record: 'live' }, 'skip', false],
  ['copy does not run, but Podman still busy: wait', { destination: 'not-running', podmanBusy: true }, 'wait', false],
  ['checkpointed source, destination silent: report', { destination: undefined }, 'report', false],
  ['Podman still checkpointing or restoring: wait', { podmanBusy: true }, 'wait', false],
  ['live record: hands off', { record: 'live' }, 'skip', false],
  ['lock held: hands off', { lockHeld: true }, 'skip', false],
  ['source silent: wait', { source: undefined }, 'wait', false],
  ['running source, no copy: images only', { source: 'running' }, 'remove-images', true],
  ['running source and a running copy: two copies', { source: 'running', destination: 'running' }, 'report', false],
  ['source gone, copy runs', { source: 'gone', destination: 'running' }, 'remove-images', true],
  [
    'stopped without checkpoint, copy runs: source removed',
    { source: 'stopped', destination: 'running' },
    'kill-source',
    true,
  ],
  ['stopped without checkpoint, no copy: report', { source: 'stopped' }, 'report', false],
  [
    'stopped without checkpoint, copy not running: report',
    { source: 'stopped', destination: 'not-running' },
    'report',
    false,
  ],
  ['stopped without checkpoint, Podman busy: wait', { source: 'stopped', podmanBusy: true }, 'wait', false],
  ['stopped without checkpoint, live record: hands off', { source: 'stopped', record: 'live' }, 'skip', false],
  ['no marker, no record: report, nothing touched', { marked: false, source: undefined }, 'report', false],
];

describe('decideContainerSweep', () => {
  it.each(table)('%s', (_name, over, action, removeImages) => {
    const d = decideContainerSweep({ ...base, ...over }, policy);
    expect({ action: d.action, removeImages: d.removeImages }).toEqual({ action, removeImages });
    expect(d.why).not.toBe('');
  });

  it('restores a source only when it is checkpointed and the destination has no copy; removes it only when the copy runs', () => {
    const sources = ['running', 'checkpointed', 'stopped', 'gone', undefined] as const;
    const dests = ['none', 'running', 'not-running', undefined] as const;
    for (const source of sources)
      for (const destination of dests) {
        const { action } = decideContainerSweep({ ...base, source, destination }, policy);
        if (action === 'resume-source') expect([source, destination]).toEqual(['checkpointed', 'none']);
        if (action === 'kill-source') expect(destination).toBe('running');
        // Never a running copy, never one whose source is gone or unrestorable (it may be the only one).
        if (action === 'remove-copy') {
          expect(destination).toBe('not-running');
          expect(['running', 'checkpointed']).toContain(source);
        }
      }
  });
});
