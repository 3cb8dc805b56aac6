import type { NodeProbe, NodeTarget } from '@spotlift/domain';
import { NodeShell, shq } from '@spotlift/transport';
import type { Clock } from '../clock.js';
import { type NodeCommand, nodeCommand } from './node-command.js';

/** Features probed on every node; what each strategy needs is decided elsewhere. */
export const PROBED_FEATURES = ['mem_dirty_track', 'uffd-noncoop', 'lazy_parent_pages'] as const;

/** One command for the whole probe: one channel, sections marked so each answer is parsed on its own. */
function probeScript(imageRoot: string): NodeCommand {
  return nodeCommand(
    [
      `echo '@@version'; criu --version 2>&1`,
      `echo '@@check'; criu check 2>&1 | tail -n 20`,
      ...PROBED_FEATURES.map(
        (f) => `echo '@@feature ${f}'; criu check --feature ${f} >/dev/null 2>&1 && echo yes || echo no`,
      ),
      `echo '@@kernel'; uname -r`,
      `echo '@@cpu'; awk -F': ' '/^model name/{print $2; exit}' /proc/cpuinfo; nproc`,
      `echo '@@mem'; awk '/^(MemTotal|MemAvailable):/{print $1, $2}' /proc/meminfo`,
      // POSIX df (busybox has no --output): 1024-byte blocks, one line per file system, 'Available' 4th
      `echo '@@disk'; mkdir -p ${shq(imageRoot)} && df -P -k ${shq(imageRoot)} | awk 'NR == 2 {printf "%.0f\\n", $4 * 1024}'`,
    ].join('; '),
  );
}

export function parseProbe(output: string, probedAt: string): NodeProbe {
  const sections = new Map<string, string>();
  for (const chunk of output.split(/^@@/m).slice(1)) {
    const nl = chunk.indexOf('\n');
    sections.set(chunk.slice(0, nl).trim(), chunk.slice(nl + 1).trim());
  }
  const features: Record<string, boolean> = {};
  for (const f of PROBED_FEATURES) features[f] = sections.get(`feature ${f}`) === 'yes';
  const check = sections.get('check') ?? '';
  const [cpuModel, cpuCount] = (sections.get('cpu') ?? '').split('\n');
  const mem = sections.get('mem') ?? '';
  const kb = (name: string) => Number(new RegExp(`${name}: (\\d+)`).exec(mem)?.[1] ?? NaN) * 1024;
  const probe: NodeProbe = {
    probedAt,
    criuOk: /Looks good/.test(check),
    criuCheckOutput: check.slice(-2000),
    features,
  };
  const version = /Version: (\S+)/.exec(sections.get('version') ?? '')?.[1];
  if (version) probe.criuVersion = version;
  if (sections.get('kernel')) probe.kernel = sections.get('kernel');
  if (cpuModel) probe.cpuModel = cpuModel.trim();
  if (cpuCount && Number.isFinite(Number(cpuCount))) probe.cpuCount = Number(cpuCount);
  if (Number.isFinite(kb('MemTotal'))) probe.memTotalBytes = kb('MemTotal');
  if (Number.isFinite(kb('MemAvailable'))) probe.memAvailableBytes = kb('MemAvailable');
  const disk = Number(sections.get('disk'));
  if (Number.isFinite(disk)) probe.diskFreeBytes = disk;
  if (!probe.criuOk)
    probe.error = version ? `criu check failed: ${check.split('\n').slice(-3).join(' | ')}` : 'criu is not installed';
  return probe;
}

/** Probes a node over SSH: CRIU version, `criu check`, feature probes, kernel, CPU, memory, disk. */
export class NodeProber {
  constructor(
    private readonly shell: NodeShell,
    private readonly clock: Clock,
    private readonly imageRoot: string,
  ) {}

  async probe(node: NodeTarget): Promise<NodeProbe> {
    const res = await this.shell.exec(node, probeScript(this.imageRoot), { timeoutMs: 60_000 });
    return parseProbe(res.stdout, this.clock.now().toISOString());
  }
}
