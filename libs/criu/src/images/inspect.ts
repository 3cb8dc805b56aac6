/**
 * What a set of CRIU images says about the dumped tree: processes, credentials, open files, sockets,
 * memory mappings, namespaces, mounts and CRIU's stats, decoded here with CRIU's own protos (the same
 * names `crit show` prints). Command lines are not a field of any image: they are read from the dumped
 * memory at mm_arg_start..mm_arg_end, as /proc/<pid>/cmdline reads them from the live process.
 */
import type { DumpStats } from '@spotlift/domain';
import { CriuImageError } from '../errors.js';
import { parseDumpStats } from '../stats.js';
import { readImage, readOne, u64, type Entry } from './image-file.js';
import { filesPageSource, PAGE_SIZE, readMemory, readPagemap, type PageSource, type Pagemap } from './pages.js';

export interface Credentials {
  uid: number;
  gid: number;
  euid: number;
  egid: number;
  suid: number;
  sgid: number;
  fsuid: number;
  fsgid: number;
  groups: number[];
  /** Effective capabilities as one hex mask (CRIU stores 32-bit words, low word first). */
  capEff: string;
}

export interface OpenFile {
  fd: number;
  /** CRIU's fd_types name: REG, INETSK, UNIXSK, PIPE, TTY, ... */
  type: string;
  /** The path of a regular file, `socket:[ino]`, `pipe:[ino]`, as /proc/<pid>/fd shows them. */
  target: string;
  /** File position (regular files). */
  pos?: number;
  /** open(2) flags as CRIU recorded them. */
  flags?: number;
  /** Size when CRIU recorded it (regular files). */
  size?: number;
}

export interface Socket {
  ino: number;
  /** INET, INET6 or UNIX. */
  family: string;
  type: string;
  proto?: string;
  state: string;
  /** `addr:port` (inet) or the path, `@name` for an abstract unix name, '' when unbound. */
  local: string;
  remote?: string;
  backlog: number;
  /** Which processes hold it, at which fd. */
  owners: { pid: number; fd: number }[];
}

export interface Mapping {
  start: string;
  end: string;
  bytes: number;
  /** r/w/x and p (private) or s (shared), as /proc/<pid>/maps prints them. */
  perms: string;
  /** The mapped file, for file-backed mappings. */
  file?: string;
  kind: 'file' | 'anon' | 'heap' | 'stack' | 'vdso' | 'vvar' | 'vsyscall' | 'shared-anon' | 'other';
  /** Pages of it in the pages file (what a memory search sees). */
  dumpedPages: number;
}

export interface InspectedProcess {
  pid: number;
  ppid: number;
  pgid: number;
  sid: number;
  threads: number[];
  comm: string;
  /** From the dumped memory; absent when those pages were not available (see `notes`). */
  cmdline?: string[];
  state: string;
  creds?: Credentials;
  exe?: string;
  cwd?: string;
  root?: string;
  files: OpenFile[];
  mappings: Mapping[];
  /** Namespace ids as CRIU numbers them (equal ids: the same namespace). */
  namespaces: Record<string, number>;
  dumpedBytes: number;
}

export interface ImageInspection {
  processes: InspectedProcess[];
  sockets: Socket[];
  /** Only when the mount namespace was dumped (containers); empty for a process sharing the host's. */
  mounts: { id: number; parent: number; mountpoint: string; source: string; fstype: string; options: string }[];
  /** Namespaces whose own images are in the dump (dumped with the tree) and their hostname for uts. */
  dumpedNamespaces: { kind: string; id: number; hostname?: string }[];
  inventory: { imgVersion: number; dumpRunId?: string; lsm?: string };
  stats?: DumpStats;
  /** CRIU writes neither its version nor the kernel into images: the checkpoint record holds the writer's. */
  notes: string[];
}

const TASK_STATES: Record<number, string> = { 1: 'alive', 3: 'zombie', 6: 'stopped' };
const SOCK_TYPES: Record<number, string> = { 1: 'STREAM', 2: 'DGRAM', 3: 'RAW', 5: 'SEQPACKET' };
const SOCK_FAMILIES: Record<number, string> = { 1: 'UNIX', 2: 'INET', 10: 'INET6' };
const PROTOS: Record<number, string> = { 0: 'IP', 6: 'TCP', 17: 'UDP' };
const TCP_STATES: Record<number, string> = {
  1: 'ESTABLISHED',
  2: 'SYN_SENT',
  3: 'SYN_RECV',
  4: 'FIN_WAIT1',
  5: 'FIN_WAIT2',
  6: 'TIME_WAIT',
  7: 'CLOSE',
  8: 'CLOSE_WAIT',
  9: 'LAST_ACK',
  10: 'LISTEN',
  11: 'CLOSING',
};
/** The most bytes of argv read from the dump (the kernel's own limit on argv+envp is far larger). */
const MAX_CMDLINE = 64 << 10;
/** vma_entry.status bits (criu/include/image.h). */
const VMA = { STACK: 1 << 1, VSYSCALL: 1 << 2, VDSO: 1 << 3, HEAP: 1 << 5, FILE_PRIVATE: 1 << 6 } as const;
const VMA_FILE_SHARED = 1 << 7;
const VMA_ANON_SHARED = 1 << 8;
const VMA_VVAR = 1 << 12;

export type ImageFiles = Readonly<Record<string, Uint8Array>>;

function need(files: ImageFiles, name: string): Uint8Array {
  const buf = files[name];
  if (!buf) throw new CriuImageError(`${name} is missing from the images`, { file: name });
  return buf;
}

const num = (v: unknown) => Number(v ?? 0);
const str = (v: unknown) => (typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '');

function ipv4(words: unknown): string {
  const w = num((words as number[] | undefined)?.[0]);
  return [w & 0xff, (w >>> 8) & 0xff, (w >>> 16) & 0xff, w >>> 24].join('.');
}

function ipv6(words: unknown): string {
  const parts: string[] = [];
  for (const w of (words as number[] | undefined) ?? []) {
    const v = num(w);
    const b = [v & 0xff, (v >>> 8) & 0xff, (v >>> 16) & 0xff, v >>> 24];
    parts.push(((b[0]! << 8) | b[1]!).toString(16), ((b[2]! << 8) | b[3]!).toString(16));
  }
  return `[${parts.join(':')}]`;
}

function unixName(name: unknown): string {
  const bytes = name instanceof Uint8Array ? name : new Uint8Array();
  if (bytes.length === 0) return '';
  if (bytes[0] === 0) return `@${new TextDecoder().decode(bytes.subarray(1))}`;
  // A path name as the kernel reports it, with its terminating NUL.
  return new TextDecoder().decode(bytes).replace(/\0+$/, '');
}

function socketOf(f: Entry): Omit<Socket, 'owners'> | undefined {
  if (f.isk) {
    const s = f.isk as Entry;
    const v6 = num(s.family) === 10;
    const addr = v6 ? ipv6 : ipv4;
    const tcp = num(s.proto) === 6;
    return {
      ino: num(s.ino),
      family: SOCK_FAMILIES[num(s.family)] ?? String(s.family),
      type: SOCK_TYPES[num(s.type)] ?? String(s.type),
      proto: PROTOS[num(s.proto)] ?? String(s.proto),
      state: tcp ? (TCP_STATES[num(s.state)] ?? String(s.state)) : num(s.state) === 7 ? 'UNCONNECTED' : 'CONNECTED',
      local: `${addr(s.src_addr)}:${num(s.src_port)}`,
      ...(num(s.dst_port) ? { remote: `${addr(s.dst_addr)}:${num(s.dst_port)}` } : {}),
      backlog: num(s.backlog),
    };
  }
  if (f.usk) {
    const s = f.usk as Entry;
    return {
      ino: num(s.ino),
      family: 'UNIX',
      type: SOCK_TYPES[num(s.type)] ?? String(s.type),
      state: TCP_STATES[num(s.state)] ?? String(s.state),
      local: unixName(s.name),
      ...(num(s.peer) ? { remote: `peer socket:[${num(s.peer)}]` } : {}),
      backlog: num(s.backlog),
    };
  }
  return undefined;
}

function target(f: Entry | undefined): string {
  if (!f) return '?';
  const reg = f.reg as Entry | undefined;
  if (reg) return String(reg.name);
  const sk = (f.isk ?? f.usk ?? f.psk ?? f.nlsk) as Entry | undefined;
  if (sk) return `socket:[${num(sk.ino)}]`;
  const pipe = (f.pipe ?? f.fifo) as Entry | undefined;
  if (pipe) return `pipe:[${num(pipe.pipe_id)}]`;
  return String(f.type).toLowerCase();
}

function creds(c: Entry | undefined): Credentials | undefined {
  if (!c) return undefined;
  const words = ((c.cap_eff as number[] | undefined) ?? []).map(num);
  const cap = words.reduce((acc, w, i) => acc | (BigInt(w >>> 0) << BigInt(32 * i)), 0n);
  return {
    uid: num(c.uid),
    gid: num(c.gid),
    euid: num(c.euid),
    egid: num(c.egid),
    suid: num(c.suid),
    sgid: num(c.sgid),
    fsuid: num(c.fsuid),
    fsgid: num(c.fsgid),
    groups: ((c.groups as number[] | undefined) ?? []).map(num),
    capEff: `0x${cap.toString(16).padStart(16, '0')}`,
  };
}

function mapping(v: Entry, files: Map<number, Entry>, map: Pagemap | undefined): Mapping {
  // BigInt: the vsyscall page sits at 0xffffffffff600000, above what a number holds exactly.
  const start = BigInt(v.start as string);
  const end = BigInt(v.end as string);
  if (end <= start || end - start > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new CriuImageError(`a vma from 0x${start.toString(16)} to 0x${end.toString(16)} is empty or impossible`);
  }
  const status = num(v.status);
  const prot = num(v.prot);
  const shared = (num(v.flags) & 0x01) !== 0; // MAP_SHARED
  const fileBacked = (status & (VMA.FILE_PRIVATE | VMA_FILE_SHARED)) !== 0;
  const file = fileBacked ? target(files.get(u64(v.shmid, 'vma shmid'))) : undefined;
  const kind: Mapping['kind'] = fileBacked
    ? 'file'
    : status & VMA.HEAP
      ? 'heap'
      : status & VMA.STACK
        ? 'stack'
        : status & VMA.VDSO
          ? 'vdso'
          : status & VMA_VVAR
            ? 'vvar'
            : status & VMA.VSYSCALL
              ? 'vsyscall'
              : status & VMA_ANON_SHARED
                ? 'shared-anon'
                : status & 1
                  ? 'anon'
                  : 'other';
  let dumpedPages = 0;
  for (const run of map?.runs ?? []) {
    if (run.offset === undefined) continue;
    const lo = BigInt(run.vaddr) > start ? BigInt(run.vaddr) : start;
    const runEnd = BigInt(run.vaddr + run.pages * PAGE_SIZE);
    const hi = runEnd < end ? runEnd : end;
    if (hi > lo) dumpedPages += Number(hi - lo) / PAGE_SIZE;
  }
  const perms = `${prot & 1 ? 'r' : '-'}${prot & 2 ? 'w' : '-'}${prot & 4 ? 'x' : '-'}${shared ? 's' : 'p'}`;
  return {
    start: `0x${start.toString(16)}`,
    end: `0x${end.toString(16)}`,
    bytes: Number(end - start),
    perms,
    ...(file ? { file } : {}),
    kind,
    dumpedPages,
  };
}

async function cmdline(mm: Entry, map: Pagemap | undefined, pages: PageSource): Promise<string[] | undefined> {
  const start = u64(mm.mm_arg_start, 'mm_arg_start');
  const end = u64(mm.mm_arg_end, 'mm_arg_end');
  if (!map || end <= start || end - start > MAX_CMDLINE) return undefined;
  const bytes = await readMemory(map, pages, start, end - start);
  if (!bytes) return undefined;
  const text = new TextDecoder().decode(bytes);
  return text.replace(/\0+$/, '').split('\0');
}

/**
 * Decodes the images in `files` (name -> bytes). Pages are read through `pages` (default: the
 * pages-*.img in `files`); without them the command lines are left out and a note says so.
 */
export async function inspectImages(
  files: ImageFiles,
  pages: PageSource = filesPageSource(files),
): Promise<ImageInspection> {
  const notes: string[] = [
    'CRIU records neither its own version nor the kernel in the images; see the checkpoint record for the writer',
  ];
  const inv = readOne('inventory.img', need(files, 'inventory.img'), 'inventory');
  const tree = readImage('pstree.img', need(files, 'pstree.img'), 'pstree');
  if (tree.length === 0) throw new CriuImageError('pstree.img holds no process');
  // Images a dump may lack (no open files, a kernel thread): read when present.
  const opt = <T>(name: string, read: (n: string, b: Uint8Array) => T): T | undefined => {
    const buf = files[name];
    return buf ? read(name, buf) : undefined;
  };
  const fileEntries = new Map<number, Entry>();
  for (const f of opt('files.img', (n, b) => readImage(n, b, 'files')) ?? []) fileEntries.set(num(f.id), f);
  const sockets = new Map<number, Socket>();
  const processes: InspectedProcess[] = [];
  for (const p of tree) {
    const pid = num(p.pid);
    const core = readOne(`core-${pid}.img`, need(files, `core-${pid}.img`), 'core');
    const tc = (core.tc ?? {}) as Entry;
    const ids = opt(`ids-${pid}.img`, (n, b) => readOne(n, b, 'ids')) ?? ((core.ids ?? {}) as Entry);
    const mm = opt(`mm-${pid}.img`, (n, b) => readOne(n, b, 'mm'));
    const map = opt(`pagemap-${pid}.img`, readPagemap);
    const fds = opt(`fdinfo-${num(ids.files_id)}.img`, (n, b) => readImage(n, b, 'fdinfo')) ?? [];
    const open: OpenFile[] = fds.map((fd) => {
      const f = fileEntries.get(num(fd.id));
      const reg = f?.reg as Entry | undefined;
      const sk = f && socketOf(f);
      if (sk) {
        const known = sockets.get(sk.ino) ?? { ...sk, owners: [] };
        known.owners.push({ pid, fd: num(fd.fd) });
        sockets.set(sk.ino, known);
      }
      return {
        fd: num(fd.fd),
        type: String(fd.type),
        target: target(f),
        ...(reg ? { pos: u64(reg.pos, 'file pos'), flags: num(reg.flags) } : {}),
        ...(reg?.size !== undefined ? { size: u64(reg.size, 'file size') } : {}),
      };
    });
    const fs = opt(`fs-${pid}.img`, (n, b) => readOne(n, b, 'fs'));
    const args = mm ? await cmdline(mm, map, pages) : undefined;
    if (mm && !args) notes.push(`pid ${pid}: its command line is not in the pages read (only '${String(tc.comm)}')`);
    const c = creds((core.thread_core as Entry | undefined)?.creds as Entry | undefined);
    const exe = mm ? fileEntries.get(num(mm.exe_file_id)) : undefined;
    const cwd = fs ? fileEntries.get(num(fs.cwd_id)) : undefined;
    const root = fs ? fileEntries.get(num(fs.root_id)) : undefined;
    processes.push({
      pid,
      ppid: num(p.ppid),
      pgid: num(p.pgid),
      sid: num(p.sid),
      threads: ((p.threads as number[] | undefined) ?? []).map(num),
      comm: str(tc.comm),
      ...(args ? { cmdline: args } : {}),
      state: TASK_STATES[num(tc.task_state)] ?? String(tc.task_state),
      ...(c ? { creds: c } : {}),
      ...(exe ? { exe: target(exe) } : {}),
      ...(cwd ? { cwd: target(cwd) } : {}),
      ...(root ? { root: target(root) } : {}),
      files: open.sort((a, b) => a.fd - b.fd),
      mappings: ((mm?.vmas as Entry[] | undefined) ?? []).map((v) => mapping(v, fileEntries, map)),
      namespaces: Object.fromEntries(
        Object.entries(ids)
          .filter(([k]) => k.endsWith('_ns_id'))
          .map(([k, v]) => [k.replace(/_ns_id$/, ''), num(v)]),
      ),
      dumpedBytes: map?.presentBytes ?? 0,
    });
  }
  const mounts = Object.keys(files)
    .filter((n) => /^mountpoints-\d+\.img$/.test(n))
    .flatMap((n) => readImage(n, files[n]!, 'mnts'))
    .map((m) => ({
      id: num(m.mnt_id),
      parent: num(m.parent_mnt_id),
      mountpoint: String(m.mountpoint),
      source: String(m.source),
      fstype: String(m.fsname ?? m.fstype),
      options: String(m.options),
    }));
  const dumpedNamespaces = Object.keys(files)
    .map((n) => /^(utsns|netns|ipcns-var|mountpoints|pidns|userns|timens)-(\d+)\.img$/.exec(n))
    .filter((m): m is RegExpExecArray => m !== null)
    .map((m) => {
      const kind = {
        utsns: 'uts',
        netns: 'net',
        'ipcns-var': 'ipc',
        mountpoints: 'mnt',
        pidns: 'pid',
        userns: 'user',
        timens: 'time',
      }[m[1]!]!;
      const uts = m[1] === 'utsns' ? readOne(m[0], files[m[0]]!, 'utsns') : undefined;
      return { kind, id: Number(m[2]), ...(uts ? { hostname: String(uts.nodename) } : {}) };
    })
    .sort((a, b) => a.kind.localeCompare(b.kind) || a.id - b.id);
  return {
    processes,
    sockets: [...sockets.values()].sort((a, b) => a.ino - b.ino),
    mounts,
    dumpedNamespaces,
    inventory: {
      imgVersion: num(inv.img_version),
      ...(inv.dump_criu_run_id ? { dumpRunId: str(inv.dump_criu_run_id) } : {}),
      ...(inv.lsmtype ? { lsm: str(inv.lsmtype) } : {}),
    },
    ...(files['stats-dump'] ? { stats: parseDumpStats(files['stats-dump']) } : {}),
    notes,
  };
}

/** The image files inspectImages reads for a tree (all but the pages): what a caller fetches first. */
export function metadataImageNames(names: readonly string[]): string[] {
  return names.filter(
    (n) =>
      n === 'inventory.img' ||
      n === 'pstree.img' ||
      n === 'files.img' ||
      n === 'stats-dump' ||
      /^(core|ids|mm|pagemap|fdinfo|fs|mountpoints|utsns|netns|ipcns-var|pidns|userns|timens)-\d+\.img$/.test(n),
  );
}
