import { encodeStatsImage } from '@spotlift/criu';
import type { DumpStats } from '@spotlift/domain';
import type { ScriptedNodeShell } from './scripted-node-shell.js';

/** One CRIU dump or pre-dump as captured from a real run: its wall time and its stats-dump figures. */
export interface ReplayedDump {
  ms: number;
  stats: DumpStats;
}

/** A real pre-copy run (libs/engine/test/fixtures/qemu-precopy.json): rounds, then the final dump. */
export interface PreCopyReplay {
  rounds: ReplayedDump[];
  final: ReplayedDump;
}

/** A real post-copy run (libs/engine/test/fixtures/lab-postcopy.json); times from the dump's start. */
export interface PostCopyReplay {
  seizedUs: number;
  restoredMs: number;
  allPagesMs: number;
  transferred: string[];
}

const b64 = (stats: DumpStats) => Buffer.from(encodeStatsImage({ dump: stats })).toString('base64');
const times = (startNs: bigint, ms: number, rc = 0) =>
  `SPOTLIFT_TIMES ${startNs} ${startNs + BigInt(Math.round(ms * 1e6))} ${rc}\n`;

/**
 * A scripted CRIU that replays a real pre-copy run on `node`: round N of `criu pre-dump` takes the captured
 * time and leaves the captured stats-dump in its round-N directory; the final dump likewise in the job's
 * directory. Rounds beyond the capture repeat its last round (the workload's steady hot set). Pre-dumps and
 * page-servers work; tests add failure rules before calling this.
 */
export function scriptPreCopyReplay(
  shell: ScriptedNodeShell,
  replay: PreCopyReplay,
  node = 'node-a',
  t0Ns = 1_000_000_000_000n,
): ScriptedNodeShell {
  const round = (n: number) => replay.rounds[Math.min(n, replay.rounds.length) - 1]!;
  let clock = t0Ns;
  const advance = (ms: number) => {
    const start = clock;
    clock += BigInt(Math.round(ms * 1e6)) + 50_000_000n;
    return start;
  };
  return (
    shell
      .on({
        node,
        match: /criu pre-dump /,
        reply: (command) => {
          const n = Number(/\/round-(\d+) /.exec(command)?.[1] ?? 1);
          return { stdout: times(advance(round(n).ms), round(n).ms) };
        },
      })
      .on({
        node,
        match: /base64 -w0 \S*\/round-\d+\/stats-dump/,
        reply: (command) => ({ stdout: b64(round(Number(/\/round-(\d+)\/stats-dump/.exec(command)?.[1] ?? 1)).stats) }),
      })
      // Not the lazy final of hybrid: that one is post-copy's (scriptPostCopyReplay).
      .on({
        node,
        match: /criu dump -t (?![^\n]*--lazy-pages)/,
        reply: () => ({ stdout: times(advance(replay.final.ms), replay.final.ms) }),
      })
      .on({ node, match: /base64 -w0 \S*\/src\/stats-dump/, reply: { stdout: b64(replay.final.stats) } })
  );
}

/**
 * A scripted CRIU that replays a real post-copy on `source` -> `destination`: the lazy dump reports ready with
 * the captured seize time, the lazy restore returns at the captured time, and the lazy-pages daemon ends
 * with the captured per-process page counts. `trialRestoredPid` answers the post-copy trial's restore.
 */
export function scriptPostCopyReplay(
  shell: ScriptedNodeShell,
  replay: PostCopyReplay,
  opts: { source?: string; destination?: string; t0Ns?: bigint; restoredPid?: number } = {},
): ScriptedNodeShell {
  const src = opts.source ?? 'node-a';
  const dst = opts.destination ?? 'node-b';
  const t0 = opts.t0Ns ?? 2_000_000_000_000n;
  const at = (ms: number) => t0 + BigInt(Math.round(ms * 1e6));
  const pid = opts.restoredPid ?? 777;
  return shell
    .on({ node: src, match: /ss -Hltn/, reply: { stdout: 'PORT_FREE\n' } })
    .on({ node: src, match: /Starting lazy pages server/, reply: { stdout: `LAZY_READY ${t0} ${replay.seizedUs}\n` } })
    .on({ node: src, match: /LAZY_NONE/, reply: { stdout: `LAZY_DONE 0 ${at(replay.allPagesMs)}\n` } })
    .on({ node: src, match: /PROBE_PID/, reply: { stdout: 'PROBE_PID 5555\n' } })
    .on({ node: dst, match: /criu lazy-pages /, reply: { code: 0 } })
    .on({
      node: dst,
      match: /criu restore .*--lazy-pages/,
      reply: (command) =>
        /\/trial-/.test(command)
          ? { stdout: 'RESTORED_PID 888\n' }
          : { stdout: `RESTORED_PID ${pid}\n${times(at(replay.restoredMs - 150), 150)}` },
    })
    .on({
      node: dst,
      match: /PAGES_END/,
      reply: {
        stdout: `PAGES_END ${at(replay.allPagesMs)}\n${replay.transferred.map((t) => `TRANSFERRED ${t}`).join('\n')}\n`,
      },
    });
}
