// Shared helpers of the qemu lab suites: boot a pair of VMs linked over a private socket link, SSH into them
// with their pinned host keys, parse CRIU's stats and the lab workload's status line.
import { execFile } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
export const VM_SH = join(REPO, 'scripts/lab/qemu/vm.sh');
export const BUILD_SH = join(REPO, 'scripts/lab/qemu/build-image.sh');
export const LAB_DIR = process.env.SPOTLIFT_LAB_DIR ?? join(REPO, '.lab');
export const SRC_ADDR = '10.77.1.1';
export const DST_ADDR = '10.77.1.2';
export const PAGE = 4096;

export const envInt = (name: string, def: number): number => {
  const v = process.env[name];
  if (v === undefined || v === '') return def;
  const n = Number(v);
  if (!Number.isInteger(n) || n <= 0) throw new Error(`${name} must be a positive integer, got ${v}`);
  return n;
};

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export interface NodeInfo {
  id: string;
  host: string;
  port: number;
  user: string;
  hostKey: string;
  dataAddress: string;
  privateKeyPath: string;
}

export interface Run {
  stdout: string;
  stderr: string;
}

export function run(
  file: string,
  args: string[],
  opts: { timeoutMs: number; env?: NodeJS.ProcessEnv; input?: string },
): Promise<Run> {
  return new Promise((resolvePromise, reject) => {
    const child = execFile(
      file,
      args,
      { timeout: opts.timeoutMs, maxBuffer: 16 << 20, env: opts.env ?? process.env, killSignal: 'SIGKILL' },
      (err, stdout, stderr) => {
        if (err) {
          reject(
            new Error(
              `${file} ${args.slice(0, 3).join(' ')} failed: ${err.message}\nstdout: ${stdout}\nstderr: ${stderr}`,
            ),
          );
        } else resolvePromise({ stdout, stderr });
      },
    );
    if (opts.input !== undefined) child.stdin?.end(opts.input);
    else child.stdin?.end();
  });
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePromise, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const addr = srv.address();
      const port = typeof addr === 'object' && addr ? addr.port : 0;
      srv.close(() => resolvePromise(port));
    });
  });
}

/** SSH to a lab VM with the host key pinned from its node JSON (never accept an unknown key). */
export class Ssh {
  private readonly knownHosts: string;
  private readonly control: string;
  constructor(
    readonly node: NodeInfo,
    workDir: string,
  ) {
    if (!/^ssh-ed25519 [A-Za-z0-9+/=]+$/.test(node.hostKey)) throw new Error(`bad host key for ${node.id}`);
    this.knownHosts = join(workDir, `${node.id}.known_hosts`);
    writeFileSync(this.knownHosts, `[${node.host}]:${node.port} ${node.hostKey}\n`, { mode: 0o600 });
    this.control = join(workDir, `${node.id}.ctl`);
  }
  private opts(): string[] {
    const o = (kv: string) => ['-o', kv];
    return [
      ...['-i', this.node.privateKeyPath, '-p', String(this.node.port), '-l', this.node.user],
      ...o('IdentitiesOnly=yes'),
      ...o('BatchMode=yes'),
      ...o('StrictHostKeyChecking=yes'),
      ...o(`UserKnownHostsFile=${this.knownHosts}`),
      ...o('GlobalKnownHostsFile=/dev/null'),
      ...o('LogLevel=ERROR'),
      ...o('ConnectTimeout=20'),
      ...o('ControlMaster=auto'),
      ...o(`ControlPath=${this.control}`),
      ...o('ControlPersist=120'),
    ];
  }
  /** Runs a /bin/sh script on the VM; rejects on a non-zero exit. */
  async sh(script: string, timeoutMs = 120_000): Promise<string> {
    const r = await run('ssh', [...this.opts(), this.node.host, 'sh -s'], { timeoutMs, input: script });
    return r.stdout;
  }
  async close(): Promise<void> {
    await run('ssh', [...this.opts(), '-O', 'exit', this.node.host], { timeoutMs: 10_000 }).catch(() => undefined);
  }
}

export interface CriuStats {
  frozenUs?: number;
  pagesScanned?: number;
  pagesSkippedParent?: number;
  pagesWritten?: number;
}

/** Parses `criu ... --display-stats` output ("Memory pages written: 4604 (0x11fc)"). */
export function parseStats(text: string): CriuStats {
  const num = (re: RegExp): number | undefined => {
    const m = re.exec(text);
    return m ? Number(m[1]) : undefined;
  };
  return {
    frozenUs: num(/^Frozen time: (-?\d+) us$/m),
    pagesScanned: num(/^Memory pages scanned: (\d+)/m),
    pagesSkippedParent: num(/^Memory pages skipped from parent: (\d+)/m),
    pagesWritten: num(/^Memory pages written: (\d+)/m),
  };
}

/** key=value pairs of a line (the workload's status file, timing lines). */
export function kv(line: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const m of line.matchAll(/(\w+)=(\S+)/g)) out[m[1]!] = m[2]!;
  return out;
}

export interface WorkloadStatus {
  pid: number;
  counter: number;
  sum: string;
  verify: string;
}
export function parseStatus(text: string): WorkloadStatus {
  const s = kv(text.trim());
  if (!s.pid || !s.counter) throw new Error(`bad workload status: ${text}`);
  return { pid: Number(s.pid), counter: Number(s.counter), sum: s.sum ?? '', verify: s.verify ?? '' };
}

export interface VmPair {
  a: Ssh;
  b: Ssh;
  names: readonly [string, string];
}

const labEnv = (): NodeJS.ProcessEnv => ({ ...process.env, SPOTLIFT_LAB_DIR: LAB_DIR });

/**
 * Builds the image (cached), boots vm-a (source, 10.77.1.1) and vm-b (destination, 10.77.1.2) at once, and
 * sets the guests' clocks to the host's (they boot from the RTC, 1 s resolution): timings that span both
 * VMs (the engine's downtime: freeze on vm-a to resume on vm-b) then mean something, to within the offset
 * printed here.
 */
export async function bootPair(opts: {
  tag: string;
  vmMiB: number;
  workDir: string;
  /** Append the Podman layer (scripts/lab/qemu/build-podman-layer.sh): podman, runc, conmon in both VMs. */
  podman?: boolean;
}): Promise<VmPair> {
  await run('bash', [BUILD_SH], { timeoutMs: 300_000 });
  const names = [`${opts.tag}-a-${process.pid}`, `${opts.tag}-b-${process.pid}`] as const;
  const [portA, portB, linkPort] = [await freePort(), await freePort(), await freePort()];
  const vmEnv = (link: string, addr: string): NodeJS.ProcessEnv => ({
    ...labEnv(),
    SPOTLIFT_QEMU_CPUS: '1',
    SPOTLIFT_QEMU_LINK: link,
    SPOTLIFT_QEMU_LINK_ADDR: addr,
    ...(opts.podman ? { SPOTLIFT_QEMU_PODMAN: '1' } : {}),
  });
  const lastJson = (out: string): NodeInfo => JSON.parse(out.trim().split('\n').pop()!) as NodeInfo;
  const t0 = Date.now();
  // vm-a listens on the link, vm-b connects (vm.sh waits for the listener): boot both at once.
  const up = (name: string, port: number, env: NodeJS.ProcessEnv) =>
    run('bash', [VM_SH, 'up', name, String(port), String(opts.vmMiB)], { timeoutMs: 240_000, env });
  const settled = await Promise.allSettled([
    up(names[0], portA, vmEnv(`listen:${linkPort}`, `${SRC_ADDR}/24`)),
    up(names[1], portB, vmEnv(`connect:${linkPort}`, `${DST_ADDR}/24`)),
  ]);
  const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
  if (failed) {
    await shutdownPair(names);
    throw failed.reason;
  }
  const [outA, outB] = settled.map((s) => (s as PromiseFulfilledResult<Run>).value.stdout);
  console.log(`[qemu] two VMs booted in ${Date.now() - t0} ms`);
  const pair = { a: new Ssh(lastJson(outA!), opts.workDir), b: new Ssh(lastJson(outB!), opts.workDir), names };
  for (const vm of [pair.a, pair.b]) {
    await vm.sh('true'); // opens the control master: later calls are one channel each
    const rtt0 = Date.now();
    await vm.sh('nowms');
    const rtt = Date.now() - rtt0;
    await vm.sh(`nowms set ${Date.now() + Math.round(rtt / 2)}`);
    const t1 = Date.now();
    const g = Number((await vm.sh('nowms')).trim());
    console.log(
      `[qemu] ${vm.node.id} clock offset after sync: ${g - Math.round((t1 + Date.now()) / 2)} ms (ssh rtt ${rtt} ms)`,
    );
  }
  return pair;
}

/** Stops the VMs (and their ssh control masters); never throws. */
export async function shutdownPair(names: readonly string[], ssh: (Ssh | undefined)[] = []): Promise<void> {
  for (const s of ssh) await s?.close();
  for (const n of names) {
    await run('bash', [VM_SH, 'down', n], { timeoutMs: 30_000, env: labEnv() }).catch((e: unknown) =>
      console.error(String(e)),
    );
  }
}

/**
 * Starts the lab workload on a VM as the init of its own pid namespace (`unshare -p -f setsid`, so CRIU can
 * move it whole); returns its pid in the VM's view and the `unshare` parent's. Status goes to STATUS.
 */
export async function startWorkload(
  vm: Ssh,
  o: { sizeMiB: number; hotMiB: number; status: string },
): Promise<{ pid: number; unsharePid: number }> {
  const out = await vm.sh(
    `mkdir -p "$(dirname ${o.status})"; rm -f ${o.status}
     unshare -p -f setsid workload ${o.sizeMiB} ${o.hotMiB} ${o.status} 20 </dev/null >/dev/null 2>&1 &
     u=$!
     i=0; while [ ! -s ${o.status} ]; do i=$((i+1)); [ $i -lt 600 ] || exit 1; sleep 0.2; done
     sleep 2
     echo "unshare=$u pid=$(cat /proc/$u/task/$u/children)"`,
    180_000,
  );
  const s = kv(out);
  return { pid: Number(s.pid), unsharePid: Number(s.unshare) };
}

/** Asks the workload (by pid on VM) to check the sum of all its memory; returns its final status. */
export async function verifyWorkload(vm: Ssh, pid: number, status: string): Promise<WorkloadStatus> {
  await vm.sh(`kill -USR1 ${pid}`);
  let st = parseStatus(await vm.sh(`cat ${status}`));
  for (let i = 0; i < 240 && !/^(ok|BAD)/.test(st.verify); i++) {
    await sleep(500);
    st = parseStatus(await vm.sh(`cat ${status}`));
  }
  return st;
}
