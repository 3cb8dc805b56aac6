import type { ScriptedNodeShell } from './scripted-node-shell.js';

/**
 * Answers for the engine's preflight on healthy nodes: `criu check` with plenty of memory and disk, and a
 * CPU compatibility check that passes (`criu cpuinfo dump` on the source, its cpuinfo.img read back, then
 * `criu cpuinfo check` on the destination). Add rules before calling this to make one check fail.
 */
export function scriptHealthyPreflight(
  shell: ScriptedNodeShell,
  opts: { memKb?: number; diskBytes?: number } = {},
): ScriptedNodeShell {
  const memKb = opts.memKb ?? 8_000_000;
  const diskBytes = opts.diskBytes ?? 50 * 2 ** 30;
  return (
    shell
      .on({
        match: /criu check/,
        reply: { stdout: `Looks good.\nMEM_AVAILABLE_KB ${memKb}\nDISK_AVAIL_BYTES ${diskBytes}\n` },
      })
      // the dump and the read-back of its image are one command
      .on({ match: /criu cpuinfo dump/, reply: { stdout: Buffer.from('cpuinfo image bytes').toString('base64') } })
      // a stored image read back on its own (checkpoints check the CPU of a later destination)
      .on({
        match: /base64 -w0 .*cpuinfo\.img/,
        reply: { stdout: Buffer.from('cpuinfo image bytes').toString('base64') },
      })
      .on({ match: /criu cpuinfo check/, reply: { code: 0 } })
  );
}
