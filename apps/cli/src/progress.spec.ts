/**
 * What `migrate` prints as a migration goes, given successive copies of its record (from polling today, the
 * event stream later): each phase once when it ends, rounds as they appear, the phase under way as a live line
 * on a terminal only, and exit codes from end states.
 */
import type { MigrationRecord, PhaseRecord } from '@spotlift/domain';
import { aMigration } from '@spotlift/testing';
import { EXIT, exitCodeOfError, exitCodeOfMigration } from './exit-codes.js';
import { ApiError, UnreachableError } from './api-client.js';
import { MigrationProgress } from './progress.js';

const T = (s: number) => new Date(Date.UTC(2026, 0, 1, 0, 0, s)).toISOString();
const phase = (name: PhaseRecord['name'], start: number, end?: number): PhaseRecord => ({
  name,
  startedAt: T(start),
  ...(end !== undefined ? { endedAt: T(end), durationMs: (end - start) * 1000, ok: true } : {}),
});

function copies(): MigrationRecord[] {
  const base = aMigration({ state: 'running' });
  return [
    { ...base, phases: [phase('preflight', 0)] },
    { ...base, phases: [phase('preflight', 0, 1), phase('prepare', 1)] },
    { ...base, phases: [phase('preflight', 0, 1), phase('prepare', 1, 2), phase('dump', 2)] },
    {
      ...base,
      state: 'completed',
      phases: [phase('preflight', 0, 1), phase('prepare', 1, 2), phase('dump', 2, 5), phase('restore', 5, 6)],
    },
  ];
}

describe('MigrationProgress', () => {
  it('prints every phase exactly once, when it ends, in order', () => {
    const out: string[] = [];
    const p = new MigrationProgress({ out: (s) => out.push(s) });
    for (const m of copies()) p.update(m);
    p.update(copies()[3]!); // the same copy again (a poll with no change) prints nothing
    expect(out.map((l) => l.trim().split(/\s+/)[1])).toEqual(['preflight', 'prepare', 'dump', 'restore']);
    expect(out[2]).toMatch(/dump\s+3000\.0 ms/);
  });

  it('on a terminal, shows the phase under way with its elapsed time on one live line', () => {
    const out: string[] = [];
    const live: string[] = [];
    const p = new MigrationProgress({ out: (s) => out.push(s), live: (s) => live.push(s) });
    const [, , dumping] = copies();
    p.update(dumping!, new Date(Date.parse(T(4))));
    expect(live.at(-1)).toMatch(/… dump\s+2\.0 s/);
    p.update(copies()[3]!, new Date(Date.parse(T(7))));
    expect(live.at(-1)).toBe(''); // cleared before the finished lines, and not shown for a finished job
    expect(out).toHaveLength(4);
  });

  it('prints pre-copy rounds and declared-file rounds as they are recorded', () => {
    const out: string[] = [];
    const p = new MigrationProgress({ out: (s) => out.push(s) });
    const round = { round: 1, pagesWritten: 100, pagesSkippedParent: 0, durationMs: 50, frozenMs: 1 };
    const m = aMigration({ state: 'running', phases: [] });
    p.update({ ...m, rounds: [{ ...round, bandwidthBytesPerSec: 2 ** 20 } as never] });
    p.update({
      ...m,
      rounds: [round, { ...round, round: 2 }].map((r) => ({ ...r, bandwidthBytesPerSec: 2 ** 21 })) as never,
    });
    expect(out).toEqual(['    round 1: 100 pages, 1.0 MiB/s, 50 ms', '    round 2: 100 pages, 2.0 MiB/s, 50 ms']);
  });
});

describe('exit codes', () => {
  it('map end states and errors to the documented codes', () => {
    expect(['completed', 'rolled_back', 'cancelled', 'failed'].map(exitCodeOfMigration)).toEqual([0, 3, 4, 1]);
    expect(exitCodeOfError(new ApiError(400, {}))).toBe(EXIT.badInput);
    expect(exitCodeOfError(new ApiError(404, {}))).toBe(EXIT.badInput);
    expect(exitCodeOfError(new ApiError(409, {}))).toBe(EXIT.badInput);
    expect(exitCodeOfError(new ApiError(401, {}))).toBe(EXIT.denied);
    expect(exitCodeOfError(new ApiError(403, {}))).toBe(EXIT.denied);
    expect(exitCodeOfError(new ApiError(502, {}))).toBe(EXIT.failed);
    expect(exitCodeOfError(new UnreachableError('refused'))).toBe(EXIT.unreachable);
    expect(exitCodeOfError(new Error('bug'))).toBe(EXIT.failed);
  });
});
