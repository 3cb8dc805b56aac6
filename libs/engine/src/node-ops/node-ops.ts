import { type CriuFeatureCheck, checkArgv, parseFeatureCheck } from '@spotlift/criu';
import type { NodeRecord } from '@spotlift/domain';
import { armed } from '@spotlift/node-commands';
import { NodeShell, shellJoin, shq, type CommandResult, type RemoteProcess } from '@spotlift/transport';
import { fenceChecked } from './fenced-shell.js';
import { type NodeCommand, nodeCommand } from './node-command.js';
import type { ArmedCommand, TimedResult } from './op-results.js';
import { ProcessNodeOps } from './process/process-ops.js';
import { type NodeLock, type NodeLockOptions, takeNodeLock } from './node-lock.js';
import { type CpuSample, cpuSampleCommand, parseCpuSample } from './cpu-sample.js';
import * as sh from './node-scripts.js';
import * as sweep from './sweep-commands.js';
import type { ListedDir, NodeFacts } from './sweep-commands.js';
import { parseRootProcess, type RootProcess } from '../process-inspection.js';
import { OWNER_MARKER_FILE } from '../sweeper/owner-marker.js';

export interface TreeInfo {
  pids: number[];
  rssBytes: number;
  /** The root's identity and what registration checks (process-inspection.ts); absent when unreadable. */
  root?: RootProcess;
}

export type { NodeLock, NodeLockOptions } from './node-lock.js';

export const nodeLockPath = sh.nodeLockPath;

export type { ArmedCommand, TimedResult } from './op-results.js';
export type { DumpOptions } from './process/process-ops.js';

/**
 * Typed operations on one node, built from NodeShell commands. No decisions here: the engine decides, this
 * class only runs the command and reads its one-line answer. The process kind's named operations (dump,
 * restore, page-servers, stored images...) are in process/process-ops.ts; this class gives them their runners.
 * The runners (`run`, `runTimed`, `armTimed`, `stream`) are for this layer only (ESLint `no-restricted-syntax`).
 */
export class NodeOps extends ProcessNodeOps {
  private readonly shell: NodeShell;

  /** `unfenced`: the sweeper's own view, which may kill a stale copy on a fenced node (fenced-shell.ts). */
  constructor(
    private readonly raw: NodeShell,
    unfenced = false,
  ) {
    super();
    this.shell = unfenced ? raw : fenceChecked(raw);
  }

  /** These operations on fenced nodes too: only for killing what a lost node still runs of a restored workload. */
  unfenced(): NodeOps {
    return new NodeOps(this.raw, true);
  }

  /** Whether the node answers a trivial command over SSH within the time. */
  async reachable(node: NodeRecord, timeoutMs: number): Promise<boolean> {
    try {
      return (await this.shell.exec(node, nodeCommand('true'), { timeoutMs })).code === 0;
    } catch {
      return false;
    }
  }

  async inspectTree(node: NodeRecord, pid: number): Promise<TreeInfo | undefined> {
    const res = await this.shell.exec(node, sh.inspectTree(pid), { timeoutMs: 15_000 });
    if (res.code === 3) return undefined;
    if (res.code !== 0) throw new Error(`inspecting pid ${pid} on ${node.id} failed: ${res.stderr.trim()}`);
    const tree = /^TREE (.*)$/m.exec(res.stdout)?.[1] ?? '';
    const rssKb = Number(/^RSS_KB (\d+)$/m.exec(res.stdout)?.[1] ?? '0');
    const root = parseRootProcess(res.stdout, pid);
    return { pids: tree.split(/\s+/).filter(Boolean).map(Number), rssBytes: rssKb * 1024, ...(root ? { root } : {}) };
  }

  /** One letter from /proc/PID/status (R, S, T, Z, ...) or 'gone'. */
  async processState(node: NodeRecord, pid: number): Promise<string> {
    return this.stateOf(await this.shell.exec(node, sh.processState(pid), { timeoutMs: 15_000 }));
  }

  async resumeTree(node: NodeRecord, pid: number): Promise<string> {
    return this.stateOf(await this.shell.exec(node, sh.resumeTree(pid), { timeoutMs: 15_000 }));
  }

  async killTree(node: NodeRecord, pid: number): Promise<string> {
    return this.stateOf(await this.shell.exec(node, sh.killTree(pid), { timeoutMs: 15_000 }));
  }

  /**
   * Takes the node-side lock of `key`, held on the node under a lease this process renews (node-lock.ts), so
   * a broken channel does not free it: a second holder (another job, another orchestrator installation with
   * its own Redis) gets undefined and must not touch what the lock guards. Throws when the node could not
   * answer either way.
   */
  async holdLock(node: NodeRecord, key: string, opts?: NodeLockOptions): Promise<NodeLock | undefined> {
    return takeNodeLock(this.shell, node, key, opts);
  }

  /** `criu check --feature F` on the node, asked now (a probe record may be stale), as CRIU answered it. */
  async checkFeature(node: NodeRecord, feature: string): Promise<CriuFeatureCheck> {
    const res = await this.run(node, nodeCommand(`${shellJoin(checkArgv({ feature }))} 2>&1`), 30_000);
    return parseFeatureCheck(feature, res.stdout + res.stderr, res.code ?? 1);
  }

  /** `stdin`: text the command reads (e.g. a small file as base64), in the same round trip. */
  async run(node: NodeRecord, command: NodeCommand, timeoutMs: number, stdin?: string): Promise<CommandResult> {
    return this.shell.exec(node, command, { timeoutMs, ...(stdin !== undefined ? { stdin } : {}) });
  }

  /** Starts a command whose stdout the caller streams on (an export archive); `stdin` is written and closed. */
  async stream(node: NodeRecord, command: NodeCommand, stdin: string): Promise<RemoteProcess> {
    const proc = await this.shell.spawn(node, command);
    proc.stdin.end(stdin);
    return proc;
  }

  /** Starts a command whose stdin the caller writes and ends (a stream the orchestrator builds for a node). */
  async streamIn(node: NodeRecord, command: NodeCommand): Promise<RemoteProcess> {
    return this.shell.spawn(node, command);
  }

  async runTimed(node: NodeRecord, command: NodeCommand, timeoutMs: number): Promise<TimedResult> {
    const res = await this.shell.exec(node, sh.timed(command), { timeoutMs });
    return { ...res, ...sh.parseTimes(res.stdout) };
  }

  /**
   * Opens the channel for a timed command now and runs it on `fire()`, so the freeze window holds no channel
   * open. `cancel()` after `fire()` does nothing.
   */
  async armTimed(node: NodeRecord, command: NodeCommand, timeoutMs: number): Promise<ArmedCommand> {
    const proc = await this.shell.spawn(node, armed(sh.timed(command)));
    const out: Buffer[] = [];
    proc.stdout.on('data', (d: Buffer) => out.push(d));
    let fired = false;
    return {
      fire: async () => {
        fired = true;
        proc.stdin.end('go\n');
        let timer: NodeJS.Timeout | undefined;
        const timeout = new Promise<never>((_, reject) => {
          timer = setTimeout(() => {
            proc.stdin.destroy();
            reject(new Error(`command on ${node.id} timed out after ${timeoutMs} ms`));
          }, timeoutMs);
        });
        try {
          const res = await Promise.race([proc.done, timeout]);
          const stdout = Buffer.concat(out).toString('utf8');
          return { ...res, stdout, ...sh.parseTimes(stdout) };
        } finally {
          clearTimeout(timer);
        }
      },
      cancel: async () => {
        if (fired) return;
        proc.stdin.end('no\n');
        await proc.done.catch(() => undefined);
      },
    };
  }

  async readFile(node: NodeRecord, path: string): Promise<Buffer | undefined> {
    const res = await this.shell.exec(node, sh.readFileBase64(path), { timeoutMs: 15_000 });
    const text = res.stdout.trim();
    return text ? Buffer.from(text, 'base64') : undefined;
  }

  async tail(node: NodeRecord, path: string, lines = 30): Promise<string> {
    return (await this.shell.exec(node, sh.tailLog(path, lines), { timeoutMs: 15_000 })).stdout;
  }

  /** `owner`: the ownership marker's text, written into the new directory in the same round trip. */
  async makeDir(node: NodeRecord, dir: string, owner?: string): Promise<void> {
    const mark = owner === undefined ? '' : ` && cat > ${shq(`${dir}/${OWNER_MARKER_FILE}`)}`;
    const res = await this.shell.exec(node, `rm -rf ${shq(dir)} && mkdir -p -m 0700 ${shq(dir)}${mark}`, {
      timeoutMs: 15_000,
      ...(owner === undefined ? {} : { stdin: owner }),
    });
    if (res.code !== 0) throw new Error(`cannot create ${dir} on ${node.id}: ${res.stderr.trim()}`);
  }

  /** Removes an image directory (it holds process memory). Never throws: cleanup must not mask the outcome. */
  async removeDir(node: NodeRecord, dir: string): Promise<boolean> {
    try {
      const res = await this.shell.exec(node, `rm -rf ${shq(dir)}`, { timeoutMs: 60_000 });
      return res.code === 0;
    } catch {
      return false;
    }
  }

  /** Keeps the tails of a job's CRIU logs in `logsDir` (see node-scripts); the number of logs kept, 0 on any error. */
  async keepLogs(node: NodeRecord, imageDir: string, logsDir: string, maxBytes: number, maxAgeMin: number) {
    try {
      const res = await this.shell.exec(node, sh.keepLogs(imageDir, logsDir, maxBytes, maxAgeMin), {
        timeoutMs: 30_000,
      });
      return Number(/^KEPT (\d+)$/m.exec(res.stdout)?.[1] ?? 0);
    } catch {
      return 0;
    }
  }

  /** True once no CRIU process of `dir` runs on the node (page-servers of `dir` are killed); see node-scripts. */
  async waitCriuIdle(node: NodeRecord, dir: string, timeoutMs: number): Promise<{ idle: boolean; pids: number[] }> {
    const res = await this.shell.exec(node, sh.waitCriuIdle(dir, timeoutMs / 1000), { timeoutMs: timeoutMs + 15_000 });
    if (res.code === 0) return { idle: true, pids: [] };
    const busy = /^CRIU_IDLE no(.*)$/m.exec(res.stdout);
    if (res.code !== 1 || !busy) {
      throw new Error(
        `checking for CRIU processes on ${node.id} failed (${res.code}): ${(res.stderr || res.stdout).trim().slice(0, 300)}`,
      );
    }
    return { idle: false, pids: (busy[1] ?? '').split(/\s+/).filter(Boolean).map(Number) };
  }

  /** The pid in a pidfile (e.g. CRIU's restored.pid), or undefined when there is none. */
  async readPidfile(node: NodeRecord, path: string): Promise<number | undefined> {
    const res = await this.shell.exec(node, sh.readPidfile(path), { timeoutMs: 15_000 });
    const pid = Number(/^PID (\d+)$/m.exec(res.stdout)?.[1]);
    return Number.isInteger(pid) && pid > 0 ? pid : undefined;
  }

  /** A file's modification time in ns since the epoch (GNU or busybox node), undefined when it is missing. */
  async fileMtimeNs(node: NodeRecord, path: string): Promise<bigint | undefined> {
    return sh.parseFileMtime((await this.shell.exec(node, sh.fileMtimeCommand(path), { timeoutMs: 15_000 })).stdout);
  }

  /** Removes `dir` when it holds nothing (e.g. a workload's checkpoint parent); never throws. */
  async removeEmptyDir(node: NodeRecord, dir: string): Promise<void> {
    await this.shell.exec(node, sh.removeEmptyDir(dir), { timeoutMs: 15_000 }).catch(() => undefined);
  }

  /** The node's SSH login home (where its authorized_keys live), or undefined when it does not say. */
  async loginHome(node: NodeRecord): Promise<string | undefined> {
    const res = await this.shell.exec(node, sh.PRINT_LOGIN_HOME, { timeoutMs: 15_000 });
    return res.code === 0 && res.stdout.startsWith('/') ? res.stdout : undefined;
  }

  /** MemAvailable in bytes, read now; undefined when the node did not answer within `timeoutMs` or made no sense. */
  async memAvailableBytes(node: NodeRecord, timeoutMs: number): Promise<number | undefined> {
    const res = await this.shell.exec(node, sh.MEM_AVAILABLE_KB, { timeoutMs }).catch(() => undefined);
    const kb = Number(res?.stdout.trim());
    return res?.code === 0 && Number.isFinite(kb) && kb > 0 ? kb * 1024 : undefined;
  }

  /**
   * CPU use read now over one second (cpu-sample.ts): busy CPUs and each pid's share; undefined when the node
   * did not answer within `timeoutMs` or made no sense. Never throws.
   */
  async cpuSample(node: NodeRecord, pids: readonly number[], timeoutMs: number): Promise<CpuSample | undefined> {
    const res = await this.shell.exec(node, cpuSampleCommand(pids, 1), { timeoutMs }).catch(() => undefined);
    return res?.code === 0 ? parseCpuSample(res.stdout) : undefined;
  }

  /** The image directories under `root` with their markers and CRIU processes (sweep-commands.ts); throws when the node cannot list them. */
  async listImageDirs(node: NodeRecord, root: string): Promise<ListedDir[]> {
    const res = await this.shell.exec(node, sweep.listImageDirs(root), { timeoutMs: 30_000 });
    if (res.code !== 0) throw new Error(res.stderr.trim().slice(0, 200) || `exit ${res.code}`);
    return sweep.parseImageDirs(res.stdout, root);
  }

  /** A dead post-copy trial's probe, CRIU helpers and directory on this node (sweep-commands.ts); throws when the node does not answer. */
  async cleanTrial(node: NodeRecord, root: string, name: string): Promise<sweep.TrialCleanup> {
    const res = await this.shell.exec(node, sweep.cleanTrial(root, name), { timeoutMs: 60_000 });
    if (res.code !== 0) throw new Error(res.stderr.trim().slice(0, 200) || `exit ${res.code}`);
    return sweep.parseTrialCleanup(res.stdout);
  }

  /**
   * What identifies each of `pids` now (state, start time, pid namespace, command-line checksum), the node's
   * boot id and whether each lock file is held, in one command for any number of them; undefined when the
   * node did not answer.
   */
  async processFacts(
    node: NodeRecord,
    pids: readonly number[],
    locks: readonly string[] = [],
  ): Promise<NodeFacts | undefined> {
    try {
      const res = await this.shell.exec(node, sweep.processFacts(pids, locks), { timeoutMs: 15_000 });
      return res.code === 0 ? sweep.parseProcessFacts(res.stdout) : undefined;
    } catch {
      return undefined;
    }
  }

  async writeFile(node: NodeRecord, path: string, data: Buffer): Promise<void> {
    const res = await this.shell.exec(node, sh.writeFileFromBase64(path), {
      timeoutMs: 15_000,
      stdin: data.toString('base64'),
    });
    if (res.code !== 0) throw new Error(`cannot write ${path} on ${node.id}: ${res.stderr.trim()}`);
  }

  private stateOf(res: CommandResult): string {
    return /^STATE (\S+)$/m.exec(res.stdout)?.[1] ?? 'unknown';
  }
}
