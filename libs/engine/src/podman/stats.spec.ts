/**
 * Podman's --print-stats output (libs/engine/test/fixtures/podman: a 16 MiB heartbeat container moved node-a ->
 * node-b in the lab) decoded to the figures the process path reports, and bad outputs refused.
 */
import { readFileSync } from 'node:fs';
import {
  parseImageLoadOutput,
  parsePodmanCheckpointStats,
  parsePodmanRestoreStats,
  PodmanOutputError,
  podmanMoveFigures,
  statsOf,
} from './index.js';

const fixture = (name: string): string =>
  readFileSync(new URL(`../../test/fixtures/podman/${name}`, import.meta.url), 'utf8');
const ID = 'b2cf46b220c33e6235ff380f7bc27c522df6913fe924797ebd4981e74cf15f06';

describe('podman --print-stats: golden outputs of the lab', () => {
  it('decodes a checkpoint', () => {
    expect(parsePodmanCheckpointStats(fixture('checkpoint-stats.json'))).toEqual({
      podmanUs: 1142681,
      containers: [
        {
          id: ID,
          runtimeUs: 292273,
          criu: {
            freezingTimeUs: 1326,
            frozenTimeUs: 126120,
            memdumpTimeUs: 6431,
            memwriteTimeUs: 5009,
            pagesScanned: 4119,
            pagesSkippedParent: 0,
            pagesWritten: 4112,
          },
        },
      ],
    });
  });

  it('decodes a restore', () => {
    expect(parsePodmanRestoreStats(fixture('restore-stats.json'))).toEqual({
      podmanUs: 583196,
      containers: [
        {
          id: ID,
          runtimeUs: 355036,
          criu: { forkingTimeUs: 2, restoreTimeUs: 206439, pagesCompared: 0, pagesSkippedCow: 0, pagesRestored: 4112 },
        },
      ],
    });
  });

  it('gives the move figures in ms, every written page restored', () => {
    const ck = parsePodmanCheckpointStats(fixture('checkpoint-stats.json'));
    const rs = parsePodmanRestoreStats(fixture('restore-stats.json'));
    expect(podmanMoveFigures(ck, rs, ID)).toEqual({
      frozenMs: 126.1,
      checkpointMs: 1142.7,
      restoreMs: 583.2,
      criuRestoreMs: 206.4,
      pagesWritten: 4112,
      pagesRestored: 4112,
    });
    expect(statsOf(ck, ID.slice(0, 12)).id).toBe(ID);
  });

  it('says which container is missing', () => {
    const ck = parsePodmanCheckpointStats(fixture('checkpoint-stats.json'));
    expect(() => statsOf(ck, 'f'.repeat(64))).toThrow(/no entry for container f{64}/);
  });

  const good = JSON.parse(fixture('checkpoint-stats.json')) as Record<string, unknown>;
  const entry = (patch: Record<string, unknown>) =>
    JSON.stringify({ ...good, container_statistics: [{ Id: ID, runtime_checkpoint_duration: 1, ...patch }] });
  it.each<[string, string, RegExp]>([
    ['the container name Podman prints without --print-stats', 'web-1\n', /output is not JSON/],
    ['an array', '[]', /expected a JSON object/],
    ['no podman duration', JSON.stringify({ container_statistics: [] }), /'podman_checkpoint_duration' is missing/],
    ['no containers', JSON.stringify({ podman_checkpoint_duration: 1, container_statistics: [] }), /missing or empty/],
    ['a short id', entry({ Id: 'abc' }), /not a 64-hex id/],
    [
      'a negative counter',
      entry({ criu_statistics: { pages_written: -1 } }),
      /'pages_written' is not a non-negative integer/,
    ],
    [
      'a counter as text',
      entry({ criu_statistics: { frozen_time: '12' } }),
      /'frozen_time' is not a non-negative integer/,
    ],
    [
      'no runtime duration',
      entry({ runtime_checkpoint_duration: undefined }),
      /'runtime_checkpoint_duration' is missing/,
    ],
  ])('refuses %s', (_what, text, message) => {
    expect(() => parsePodmanCheckpointStats(text)).toThrow(PodmanOutputError);
    expect(() => parsePodmanCheckpointStats(text)).toThrow(message);
  });

  it('reads a counter Podman left out (omitempty: it was zero) as 0', () => {
    const s = parsePodmanCheckpointStats(entry({ criu_statistics: { frozen_time: 5 } }));
    expect(s.containers[0]!.criu).toMatchObject({ frozenTimeUs: 5, pagesWritten: 0 });
  });
});

describe('podman image load output', () => {
  it.each<[string, string[]]>([
    ['Loaded image: localhost/spotlift-heartbeat:lab\n', ['localhost/spotlift-heartbeat:lab']],
    ['Getting image source signatures\nLoaded image(s): a:1,b:2\n', ['a:1', 'b:2']],
  ])('%j', (text, names) => {
    expect(parseImageLoadOutput(text)).toEqual(names);
  });

  it('refuses an output without a loaded image', () => {
    expect(() => parseImageLoadOutput('Error: payload does not match')).toThrow(/no "Loaded image:" line/);
  });
});
