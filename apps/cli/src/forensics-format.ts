/** Tables for `spotlift checkpoints inspect` and `search`: what a checkpoint's images hold, readably. */
import type { ImageInspection, SearchResult } from '@spotlift/criu';
import { details, table } from './format.js';

export interface InspectAnswer {
  checkpoint: string;
  mode: string;
  workloadId: string;
  storageNodeId: string;
  writer: { nodeId: string; criuVersion?: string; kernel?: string };
  imageFiles: Record<string, number>;
  inspection: ImageInspection;
  /** A container's checkpoint: Podman's config.dump / spec.dump (the orchestrator's ContainerCheckpointMetadata). */
  container?: {
    id?: string;
    name?: string;
    image: { name?: string; id?: string };
    runtime?: string;
    ports: { hostIp?: string; hostPort: number; containerPort: number; protocol: string }[];
    volumes: { name: string; dest: string }[];
    command: string[];
  };
  durationMs: number;
}

export type InspectSections = { tree?: boolean; files?: boolean; sockets?: boolean; mappings?: boolean };

const KiB = (n: number) => `${Math.round(n / 1024)} KiB`;

/** Every section when none is asked for. */
export function inspectTables(a: InspectAnswer, want: InspectSections): string {
  const all = !want.tree && !want.files && !want.sockets && !want.mappings;
  const { inspection: r } = a;
  const out: string[] = [];
  if (all) {
    const stored = Object.values(a.imageFiles).reduce((n, s) => n + s, 0);
    out.push(
      details([
        ['checkpoint', `${a.checkpoint} (${a.mode})`],
        ['workload', a.workloadId],
        ['images', `${Object.keys(a.imageFiles).length} files, ${KiB(stored)} on ${a.storageNodeId}`],
        ['written by', `${a.writer.nodeId}: CRIU ${a.writer.criuVersion ?? '?'}, kernel ${a.writer.kernel ?? '?'}`],
        ['frozen', r.stats ? `${(r.stats.frozenTimeUs / 1000).toFixed(1)} ms, ${r.stats.pagesWritten} pages` : '?'],
        ['namespaces dumped', r.dumpedNamespaces.map((n) => n.kind).join(', ') || 'none (the host’s)'],
        ...containerRows(a.container),
      ]),
    );
  }
  if (all || want.tree) {
    out.push(
      table([
        ['PID', 'PPID', 'UID', 'STATE', 'THREADS', 'COMMAND'],
        ...r.processes.map((p) => [
          String(p.pid),
          String(p.ppid),
          p.creds ? String(p.creds.uid) : '?',
          p.state,
          String(p.threads.length),
          p.cmdline?.join(' ') ?? `[${p.comm}]`,
        ]),
      ]),
    );
  }
  if (all || want.files) {
    out.push(
      table([
        ['PID', 'FD', 'TYPE', 'POS', 'TARGET'],
        ...r.processes.flatMap((p) =>
          p.files.map((f) => [String(p.pid), String(f.fd), f.type, f.pos === undefined ? '' : String(f.pos), f.target]),
        ),
      ]),
    );
  }
  if (all || want.sockets) {
    out.push(
      table([
        ['INO', 'FAMILY', 'TYPE', 'STATE', 'LOCAL', 'REMOTE', 'HELD BY'],
        ...r.sockets.map((s) => [
          String(s.ino),
          s.family,
          `${s.type}${s.proto ? `/${s.proto}` : ''}`,
          s.state,
          s.local || '(unbound)',
          s.remote ?? '',
          s.owners.map((o) => `${o.pid}:${o.fd}`).join(' '),
        ]),
      ]),
    );
  }
  if (all || want.mappings) {
    out.push(
      table([
        ['PID', 'START', 'END', 'PERMS', 'SIZE', 'DUMPED', 'BACKING'],
        ...r.processes.flatMap((p) =>
          p.mappings.map((m) => [
            String(p.pid),
            m.start,
            m.end,
            m.perms,
            KiB(m.bytes),
            KiB(m.dumpedPages * 4096),
            m.file ?? `[${m.kind}]`,
          ]),
        ),
      ]),
    );
  }
  return out.join('\n\n');
}

export function searchTable(r: SearchResult & { durationMs: number }): string {
  const head = `${r.hits.length} hit(s) in ${KiB(r.bytesScanned)} of pages, ${r.durationMs} ms${r.truncated ? ` (stopped: ${r.truncated} limit)` : ''}`;
  if (r.hits.length === 0) return head;
  return `${head}\n${table([['PID', 'ADDRESS', 'MAPPING', 'BYTES AROUND'], ...r.hits.map((h) => [String(h.pid), h.vaddr, h.mapping, h.text])])}`;
}

/** `checkpointctl show`'s facts of a container checkpoint, when it is one. */
function containerRows(c: InspectAnswer['container']): [string, string][] {
  if (!c) return [];
  const ports = c.ports.map((p) => `${p.hostIp ? `${p.hostIp}:` : ''}${p.hostPort}->${p.containerPort}/${p.protocol}`);
  return [
    ['container', `${c.name ?? '?'} (${c.id?.slice(0, 12) ?? '?'}), runtime ${c.runtime ?? '?'}`],
    ['image', `${c.image.name ?? '?'} (${c.image.id?.slice(0, 12) ?? '?'})`],
    ['command', c.command.join(' ') || '?'],
    ['ports', ports.join(', ') || 'none'],
    ['volumes', c.volumes.map((v) => `${v.name}:${v.dest}`).join(', ') || 'none'],
  ];
}
