/**
 * Typed builders for CRIU 4.2 command lines. Each returns a plain argv (`['criu', ...]`) that a
 * CommandRunner executes directly, or over SSH after quoting (libs/transport `shellJoin`). Every value is checked here,
 * before anything runs on a node: a bad pid or port, a relative path CRIU would resolve against some
 * other directory, or a value starting with '-' that getopt would read as the next option.
 */
import { CriuArgError } from './errors.js';

/** CRIU's binary name; callers that need another path replace argv[0]. */
export const CRIU_BIN = 'criu';

/** PID_MAX_LIMIT on 64-bit Linux (2^22): no pid can be larger. */
const PID_MAX = 4_194_304;

/**
 * Where CRIU writes its log. A relative `file` is resolved by CRIU against the work dir (`-W`, or `-D`
 * when there is no `-W`), as are a relative `--pidfile` and the stats images.
 */
export interface CriuLogOptions {
  file: string;
  /** 0..4; default 4. spotlift keeps debug logs so a failure can be classified afterwards. */
  verbosity?: 0 | 1 | 2 | 3 | 4;
}

/**
 * CRIU's own TLS for page traffic (GnuTLS). Omitted files fall back to CRIU's defaults under /etc/pki.
 * The peer's certificate must carry a subjectAltName matching the `--address` used (an IP SAN for an
 * IP); a CN alone fails with "The name in the certificate does not match the expected".
 */
export interface CriuTlsOptions {
  cacert?: string;
  cacrl?: string;
  cert?: string;
  key?: string;
  /** Skip the name check of the server certificate; weakens TLS to "any cert from this CA". */
  noCnVerify?: boolean;
}

/** A remote `criu page-server` (or lazy-pages source) to connect to. */
export interface CriuEndpoint {
  address: string;
  port: number;
}

/** Options of `criu check`. */
export interface CheckOptions {
  /** Probe one feature, e.g. `mem_dirty_track`, `uffd-noncoop` (see {@link KNOWN_CRIU_FEATURES}). */
  feature?: string;
  /** `--all`: also extra and experimental features (exits 1 when any is missing). */
  all?: boolean;
}

/** Options of `criu page-server` (runs on the destination, receives pages). */
export interface PageServerOptions {
  imagesDir: string;
  workDir?: string;
  /** Listen address; CRIU listens on all addresses when omitted. */
  address?: string;
  /** Listen port, 1..65535 (CRIU 4.2.1 rejects `--port 0`). Required unless `psSocket` is given. */
  port?: number;
  /** Use an already connected socket (an fd inherited by CRIU) instead of listening. */
  psSocket?: number;
  /** Fork into the background once the socket listens; the command returns only then. */
  daemon?: boolean;
  pidfile?: string;
  /** CRIU writes `\0` to this fd and closes it once ready to serve. */
  statusFd?: number;
  /** Serve the pages to a lazy-pages daemon (post-copy) instead of only storing them. */
  lazyPages?: boolean;
  /** Punch holes in parent images as pages are rewritten. */
  autoDedup?: boolean;
  /** Parent images (previous pre-dump), relative to `imagesDir` like `../1`, or absolute. */
  prevImagesDir?: string;
  tls?: CriuTlsOptions;
  log?: CriuLogOptions;
}

/** Options shared by `dump` and `pre-dump`. */
interface DumpCommonOptions {
  /** Root of the process tree (`-t`). For a pid-namespaced workload: the namespace's init. */
  pid: number;
  imagesDir: string;
  /** Where logs, pidfiles and the stats images go (default: `imagesDir`). */
  workDir?: string;
  /** Send pages to this `criu page-server` instead of writing pages-*.img locally. */
  pageServer?: CriuEndpoint;
  /** Parent images, relative to `imagesDir` (e.g. `../1`, as CRIU documents) or absolute. */
  prevImagesDir?: string;
  /** Soft-dirty memory tracking (needs CONFIG_MEM_SOFT_DIRTY). */
  trackMem?: boolean;
  autoDedup?: boolean;
  tls?: CriuTlsOptions;
  displayStats?: boolean;
  log?: CriuLogOptions;
}

/** Options of `criu dump` (the final, freezing dump). */
export interface DumpOptions extends DumpCommonOptions {
  /** `--leave-stopped`: keep the tree frozen after the dump (spotlift's default for rollback). */
  leaveStopped?: boolean;
  /** `--leave-running`: resume the tree after the dump. */
  leaveRunning?: boolean;
  /** Post-copy source: dump everything but memory, then serve pages on this port (`--address` optional). */
  lazyPages?: { address?: string; port: number };
  tcpEstablished?: boolean;
  fileLocks?: boolean;
  /** Largest deleted-file content CRIU may put in the images, in bytes (CRIU's default: 1 MiB). */
  ghostLimitBytes?: number;
  linkRemap?: boolean;
  networkLock?: 'iptables' | 'nftables' | 'skip';
  /** Seconds to wait while seizing the tree (CRIU's default: 10). */
  timeoutSec?: number;
  shellJob?: boolean;
  extUnixSk?: boolean;
}

/** Options of `criu pre-dump` (memory only; the tree keeps running). */
export interface PreDumpOptions extends DumpCommonOptions {
  /** `splice` (CRIU's default) or `read` (process_vm_readv: shorter freeze, less memory pressure). */
  preDumpMode?: 'splice' | 'read';
}

/** Options of `criu restore`. */
export interface RestoreOptions {
  imagesDir: string;
  workDir?: string;
  /** `--restore-detached`: return once the tree runs, instead of waiting for it to exit. */
  detached?: boolean;
  /** Restore the root as a sibling of CRIU; only valid with `detached` (CRIU rejects it otherwise). */
  restoreSibling?: boolean;
  pidfile?: string;
  /** Restore without memory; pages come from a running `criu lazy-pages` daemon. */
  lazyPages?: boolean;
  tcpEstablished?: boolean;
  fileLocks?: boolean;
  shellJob?: boolean;
  extUnixSk?: boolean;
  /** `--leave-stopped`: keep the restored tree stopped (spotlift resumes it after verification). */
  leaveStopped?: boolean;
  displayStats?: boolean;
  log?: CriuLogOptions;
}

/** Options of `criu lazy-pages` (destination side of post-copy). */
export interface LazyPagesOptions {
  imagesDir: string;
  workDir?: string;
  /** The dumping source that serves pages (`dump --lazy-pages`). Omitted: pages come from local images. */
  pageServer?: CriuEndpoint;
  /** Fork into the background once `lazy-pages.socket` is ready. */
  daemon?: boolean;
  pidfile?: string;
  tls?: CriuTlsOptions;
  log?: CriuLogOptions;
}

/** CPU capabilities `criu cpuinfo check` compares (`--cpu-cap`). */
export type CpuCap = 'fpu' | 'cpu' | 'ins' | 'all' | 'none';

/** Options of `criu cpuinfo dump` / `criu cpuinfo check`. */
export interface CpuinfoOptions {
  imagesDir: string;
  workDir?: string;
  /**
   * What `cpuinfo check` compares. Without it CRIU 4.2.1 compares the FPU/xsave features only: an image
   * claiming CPU capability bits this host lacks still passes. `['cpu']` or `['all']` checks them too.
   */
  cpuCap?: CpuCap[];
  log?: CriuLogOptions;
}

/** Feature names `criu check --feature` knows in CRIU 4.2.1 (from `criu --help`). */
// prettier-ignore
export const KNOWN_CRIU_FEATURES = [
  'mnt_id', 'mem_dirty_track', 'aio_remap', 'timerfd', 'tun', 'tun_ns', 'userns', 'fdinfo_lock', 'seccomp_suspend',
  'seccomp_filters', 'loginuid', 'cgroupns', 'autofs', 'tcp_half_closed', 'compat_cr', 'uffd', 'uffd-noncoop',
  'can_map_vdso', 'sk_ns', 'sk_unix_file', 'net_diag_raw', 'nsid', 'link_nsid', 'kcmp_epoll', 'timens',
  'external_net_ns', 'clone3_set_tid', 'newifindex', 'nftables', 'has_ipt_legacy', 'pidfd_store', 'ns_pid',
  'apparmor_stacking', 'network_lock_nftables', 'sockopt_buf_lock', 'memfd_hugetlb', 'move_mount_set_group',
  'openat2', 'get_rseq_conf', 'ipv6_freebind', 'pagemap_scan', 'timer_cr_ids', 'overlayfs_maps', 'breakpoints',
  'pagemap_scan_guard_pages',
] as const;

// ---------------------------------------------------------------------------------------------------
// Validation

function fail(message: string, meta: Record<string, unknown> = {}): never {
  throw new CriuArgError(message, meta);
}

// Control characters would survive argv but break logs, pidfiles and any shell the argv passes through.
// eslint-disable-next-line no-control-regex
const CONTROL_CHARS = /[\u0000-\u001f\u007f]/;

function checkPid(pid: number, what = 'pid'): string {
  if (!Number.isInteger(pid) || pid <= 0 || pid > PID_MAX) {
    fail(`${what} must be a positive integer no larger than ${PID_MAX}, got ${String(pid)}`, { [what]: pid });
  }
  return String(pid);
}

function checkPort(port: number, what = 'port'): string {
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    // CRIU itself answers `--port 0` with "invalid argument for --port: 0": no ephemeral ports.
    fail(`${what} must be an integer in 1..65535 (CRIU rejects 0), got ${String(port)}`, { [what]: port });
  }
  return String(port);
}

function checkFd(fd: number, what: string): string {
  if (!Number.isInteger(fd) || fd < 0 || fd > 1_048_576) {
    fail(`${what} must be a file descriptor number (a non-negative integer), got ${String(fd)}`, { [what]: fd });
  }
  return String(fd);
}

function checkText(value: unknown, what: string): string {
  if (typeof value !== 'string' || value.length === 0) fail(`${what} must be a non-empty string`, { [what]: value });
  if (CONTROL_CHARS.test(value))
    fail(`${what} must not contain control characters (newline, NUL, ...)`, { [what]: value });
  // getopt would take "-x" as the next option rather than as this option's value.
  if (value.startsWith('-'))
    fail(`${what} must not start with '-' (CRIU would read it as an option): ${value}`, { [what]: value });
  return value;
}

/** Directories and certificate files: absolute, so nothing depends on the remote shell's cwd. */
function checkAbsPath(value: string, what: string): string {
  checkText(value, what);
  if (!value.startsWith('/')) fail(`${what} must be an absolute path, got '${value}'`, { [what]: value });
  return value;
}

/** Log files and pidfiles: absolute, or relative to the work dir (CRIU resolves them there). */
function checkOutputFile(value: string, what: string): string {
  return checkText(value, what);
}

function checkAddress(value: string, what = 'address'): string {
  checkText(value, what);
  // IPv4, IPv6 (no brackets: CRIU passes the text to getaddrinfo) or a host name.
  if (!/^[A-Za-z0-9][A-Za-z0-9.:%_-]*$/.test(value) || value.length > 253) {
    fail(`${what} must be an IP address or host name, got '${value}'`, { [what]: value });
  }
  return value;
}

function checkBool(value: unknown, what: string): boolean {
  if (value !== undefined && typeof value !== 'boolean') fail(`${what} must be true or false`, { [what]: value });
  return value === true;
}

/**
 * Rejects keys a builder does not know, so `leaveStopped` passed to pre-dump or a misspelt option fails
 * loudly instead of being dropped from the command line.
 */
function checkKeys(
  opts: object,
  allowed: readonly string[],
  command: string,
  special: Record<string, string> = {},
): void {
  for (const key of Object.keys(opts)) {
    if ((opts as Record<string, unknown>)[key] === undefined) continue;
    if (key in special) fail(special[key] ?? '', { option: key, command });
    if (!allowed.includes(key)) fail(`criu ${command} has no option '${key}'`, { option: key, command });
  }
}

function needObject(opts: unknown, command: string): void {
  if (typeof opts !== 'object' || opts === null) fail(`criu ${command} needs an options object`);
}

// ---------------------------------------------------------------------------------------------------
// Pieces shared by several commands

function dirArgs(opts: { imagesDir: string; workDir?: string }): string[] {
  const out = ['-D', checkAbsPath(opts.imagesDir, 'imagesDir')];
  if (opts.workDir !== undefined) out.push('-W', checkAbsPath(opts.workDir, 'workDir'));
  return out;
}

function logArgs(log: CriuLogOptions | undefined): string[] {
  if (log === undefined) return [];
  if (typeof log !== 'object' || log === null) fail('log must be an object { file, verbosity? }');
  const level = log.verbosity ?? 4;
  if (!Number.isInteger(level) || level < 0 || level > 4) fail(`log.verbosity must be 0..4, got ${String(level)}`);
  // `-v` takes an optional argument: it must be glued (`-v4`); `-v 4` would make "4" a stray argument.
  return ['-o', checkOutputFile(log.file, 'log.file'), `-v${level}`];
}

function tlsArgs(tls: CriuTlsOptions | undefined): string[] {
  if (tls === undefined) return [];
  if (typeof tls !== 'object' || tls === null) fail('tls must be an object');
  checkKeys(tls, ['cacert', 'cacrl', 'cert', 'key', 'noCnVerify'], 'TLS');
  if ((tls.cert === undefined) !== (tls.key === undefined)) {
    fail('tls.cert and tls.key go together: CRIU needs both to present a certificate', { tls });
  }
  const out = ['--tls'];
  if (tls.cacert !== undefined) out.push('--tls-cacert', checkAbsPath(tls.cacert, 'tls.cacert'));
  if (tls.cacrl !== undefined) out.push('--tls-cacrl', checkAbsPath(tls.cacrl, 'tls.cacrl'));
  if (tls.cert !== undefined) out.push('--tls-cert', checkAbsPath(tls.cert, 'tls.cert'));
  if (tls.key !== undefined) out.push('--tls-key', checkAbsPath(tls.key, 'tls.key'));
  if (checkBool(tls.noCnVerify, 'tls.noCnVerify')) out.push('--tls-no-cn-verify');
  return out;
}

function endpointArgs(ep: CriuEndpoint, what: string): string[] {
  if (typeof ep !== 'object' || ep === null) fail(`${what} must be an object { address, port }`);
  return ['--address', checkAddress(ep.address, `${what}.address`), '--port', checkPort(ep.port, `${what}.port`)];
}

function prevImagesArgs(prev: string | undefined): string[] {
  if (prev === undefined) return [];
  // Relative to -D per CRIU's documentation (e.g. "../1"), so relative values are fine here.
  return ['--prev-images-dir', checkText(prev, 'prevImagesDir')];
}

function flag(value: unknown, what: string, option: string): string[] {
  return checkBool(value, what) ? [option] : [];
}

// ---------------------------------------------------------------------------------------------------
// Builders

/** `criu --version`. */
export function versionArgv(): string[] {
  return [CRIU_BIN, '--version'];
}

/** `criu check`, `criu check --all` or `criu check --feature X`. */
export function checkArgv(opts: CheckOptions = {}): string[] {
  needObject(opts, 'check');
  checkKeys(opts, ['feature', 'all'], 'check');
  const out = [CRIU_BIN, 'check'];
  if (opts.feature !== undefined) {
    if (opts.all === true) fail('criu check takes either --feature or --all, not both');
    const feature = checkText(opts.feature, 'feature');
    if (!/^[a-z0-9_-]+$/.test(feature))
      fail(`feature must be a CRIU feature name like 'mem_dirty_track', got '${feature}'`);
    out.push('--feature', feature);
  }
  if (checkBool(opts.all, 'all')) out.push('--all');
  return out;
}

/** `criu page-server`: receives pages from `dump`/`pre-dump --page-server` on the destination. */
export function pageServerArgv(opts: PageServerOptions): string[] {
  needObject(opts, 'page-server');
  checkKeys(
    opts,
    [
      'imagesDir',
      'workDir',
      'address',
      'port',
      'psSocket',
      'daemon',
      'pidfile',
      'statusFd',
      'lazyPages',
      'autoDedup',
      'prevImagesDir',
      'tls',
      'log',
    ],
    'page-server',
  );
  if (opts.port === undefined && opts.psSocket === undefined) {
    fail('criu page-server needs a port to listen on, or psSocket (an already connected socket fd)');
  }
  if (opts.psSocket !== undefined && (opts.port !== undefined || opts.address !== undefined)) {
    // CRIU ignores --address/--port next to --ps-socket ("obsolete"); refuse rather than mislead.
    fail('criu page-server takes either psSocket or address/port, not both');
  }
  const daemon = checkBool(opts.daemon, 'daemon');
  const psSocket = opts.psSocket === undefined ? undefined : checkFd(opts.psSocket, 'psSocket');
  if (psSocket !== undefined && daemon && Number(psSocket) <= 2) {
    // CRIU rejects this: daemon mode closes stdin/stdout/stderr.
    fail('psSocket must not be 0, 1 or 2 with daemon: CRIU closes the standard descriptors in daemon mode');
  }
  const out = [CRIU_BIN, 'page-server', ...dirArgs(opts)];
  if (opts.address !== undefined) out.push('--address', checkAddress(opts.address));
  if (opts.port !== undefined) out.push('--port', checkPort(opts.port));
  if (psSocket !== undefined) out.push('--ps-socket', psSocket);
  if (daemon) out.push('--daemon');
  if (opts.pidfile !== undefined) out.push('--pidfile', checkOutputFile(opts.pidfile, 'pidfile'));
  if (opts.statusFd !== undefined) out.push('--status-fd', checkFd(opts.statusFd, 'statusFd'));
  out.push(...flag(opts.lazyPages, 'lazyPages', '--lazy-pages'));
  out.push(...flag(opts.autoDedup, 'autoDedup', '--auto-dedup'));
  out.push(...prevImagesArgs(opts.prevImagesDir));
  out.push(...tlsArgs(opts.tls));
  out.push(...logArgs(opts.log));
  return out;
}

const DUMP_COMMON_KEYS = [
  'pid',
  'imagesDir',
  'workDir',
  'pageServer',
  'prevImagesDir',
  'trackMem',
  'autoDedup',
  'tls',
  'displayStats',
  'log',
] as const;

function dumpCommonArgs(opts: DumpCommonOptions): { head: string[]; memory: string[]; tail: string[] } {
  const head = ['-t', checkPid(opts.pid), ...dirArgs(opts)];
  const memory: string[] = [];
  if (opts.pageServer !== undefined) memory.push('--page-server', ...endpointArgs(opts.pageServer, 'pageServer'));
  memory.push(...prevImagesArgs(opts.prevImagesDir));
  memory.push(...flag(opts.trackMem, 'trackMem', '--track-mem'));
  memory.push(...flag(opts.autoDedup, 'autoDedup', '--auto-dedup'));
  const tail = [
    ...tlsArgs(opts.tls),
    ...flag(opts.displayStats, 'displayStats', '--display-stats'),
    ...logArgs(opts.log),
  ];
  return { head, memory, tail };
}

/** `criu dump`: freezes the tree and writes its images (pages locally, to a page-server, or lazily served). */
export function dumpArgv(opts: DumpOptions): string[] {
  needObject(opts, 'dump');
  checkKeys(
    opts,
    [
      ...DUMP_COMMON_KEYS,
      'leaveStopped',
      'leaveRunning',
      'lazyPages',
      'tcpEstablished',
      'fileLocks',
      'ghostLimitBytes',
      'linkRemap',
      'networkLock',
      'timeoutSec',
      'shellJob',
      'extUnixSk',
    ],
    'dump',
    { preDumpMode: '--pre-dump-mode applies to pre-dump only' },
  );
  const leaveStopped = checkBool(opts.leaveStopped, 'leaveStopped');
  const leaveRunning = checkBool(opts.leaveRunning, 'leaveRunning');
  if (leaveStopped && leaveRunning) {
    // CRIU would silently keep whichever comes last; the tree's fate must never be ambiguous.
    fail('leaveStopped and leaveRunning exclude each other: the tree is either left frozen or resumed');
  }
  if (opts.lazyPages !== undefined && opts.pageServer !== undefined) {
    // CRIU has one --address/--port pair: it cannot both push to a page-server and serve lazy pages.
    fail(
      'dump takes either pageServer (push pages) or lazyPages (serve pages), not both: CRIU has one --address/--port',
    );
  }
  if (opts.tls !== undefined && opts.pageServer === undefined && opts.lazyPages === undefined) {
    fail('tls only protects page traffic: give pageServer or lazyPages, or drop tls');
  }
  const { head, memory, tail } = dumpCommonArgs(opts);
  const out = [CRIU_BIN, 'dump', ...head];
  if (leaveStopped) out.push('--leave-stopped');
  if (leaveRunning) out.push('--leave-running');
  out.push(...memory);
  if (opts.lazyPages !== undefined) {
    const lazy = opts.lazyPages;
    if (typeof lazy !== 'object' || lazy === null) fail('lazyPages must be an object { address?, port }');
    out.push('--lazy-pages');
    if (lazy.address !== undefined) out.push('--address', checkAddress(lazy.address, 'lazyPages.address'));
    out.push('--port', checkPort(lazy.port, 'lazyPages.port'));
  }
  out.push(...flag(opts.tcpEstablished, 'tcpEstablished', '--tcp-established'));
  out.push(...flag(opts.fileLocks, 'fileLocks', '--file-locks'));
  if (opts.ghostLimitBytes !== undefined) {
    const g = opts.ghostLimitBytes;
    if (!Number.isSafeInteger(g) || g < 0) fail(`ghostLimitBytes must be a non-negative integer, got ${String(g)}`);
    out.push('--ghost-limit', String(g));
  }
  out.push(...flag(opts.linkRemap, 'linkRemap', '--link-remap'));
  if (opts.networkLock !== undefined) {
    if (!['iptables', 'nftables', 'skip'].includes(opts.networkLock)) {
      fail(`networkLock must be iptables, nftables or skip, got '${String(opts.networkLock)}'`);
    }
    out.push('--network-lock', opts.networkLock);
  }
  if (opts.timeoutSec !== undefined) {
    const t = opts.timeoutSec;
    if (!Number.isInteger(t) || t < 1 || t > 86_400)
      fail(`timeoutSec must be a whole number of seconds in 1..86400, got ${String(t)}`);
    out.push('--timeout', String(t));
  }
  out.push(...flag(opts.shellJob, 'shellJob', '--shell-job'));
  out.push(...flag(opts.extUnixSk, 'extUnixSk', '--ext-unix-sk'));
  out.push(...tail);
  return out;
}

/** `criu pre-dump`: copies memory while the tree keeps running (needs soft-dirty tracking in the kernel). */
export function preDumpArgv(opts: PreDumpOptions): string[] {
  needObject(opts, 'pre-dump');
  checkKeys(opts, [...DUMP_COMMON_KEYS, 'preDumpMode'], 'pre-dump', {
    // CRIU's own words ("Cannot pre-dump with --lazy-pages"), said before anything runs.
    lazyPages: 'Cannot pre-dump with --lazy-pages: lazy (post-copy) serving belongs to the final dump',
    leaveStopped: 'pre-dump always leaves the tree running: leaveStopped applies to dump only',
    leaveRunning: 'pre-dump always leaves the tree running: leaveRunning applies to dump only',
  });
  if (opts.tls !== undefined && opts.pageServer === undefined) {
    fail('tls only protects page traffic: give pageServer, or drop tls');
  }
  const { head, memory, tail } = dumpCommonArgs(opts);
  const out = [CRIU_BIN, 'pre-dump', ...head, ...memory];
  if (opts.preDumpMode !== undefined) {
    if (opts.preDumpMode !== 'splice' && opts.preDumpMode !== 'read') {
      fail(`preDumpMode must be 'splice' or 'read', got '${String(opts.preDumpMode)}'`);
    }
    out.push('--pre-dump-mode', opts.preDumpMode);
  }
  out.push(...tail);
  return out;
}

/** `criu restore`. */
export function restoreArgv(opts: RestoreOptions): string[] {
  needObject(opts, 'restore');
  checkKeys(
    opts,
    [
      'imagesDir',
      'workDir',
      'detached',
      'restoreSibling',
      'pidfile',
      'lazyPages',
      'tcpEstablished',
      'fileLocks',
      'shellJob',
      'extUnixSk',
      'leaveStopped',
      'displayStats',
      'log',
    ],
    'restore',
    {
      leaveRunning: 'restore always leaves the tree running unless leaveStopped is set; leaveRunning is a dump option',
    },
  );
  const detached = checkBool(opts.detached, 'detached');
  const sibling = checkBool(opts.restoreSibling, 'restoreSibling');
  if (sibling && !detached) {
    // CRIU: "--restore-sibling only makes sense with --restore-detached".
    fail('restoreSibling only makes sense with detached (--restore-detached)');
  }
  const out = [CRIU_BIN, 'restore', ...dirArgs(opts)];
  if (detached) out.push('--restore-detached');
  if (sibling) out.push('--restore-sibling');
  if (opts.pidfile !== undefined) out.push('--pidfile', checkOutputFile(opts.pidfile, 'pidfile'));
  out.push(...flag(opts.lazyPages, 'lazyPages', '--lazy-pages'));
  out.push(...flag(opts.tcpEstablished, 'tcpEstablished', '--tcp-established'));
  out.push(...flag(opts.fileLocks, 'fileLocks', '--file-locks'));
  out.push(...flag(opts.shellJob, 'shellJob', '--shell-job'));
  out.push(...flag(opts.extUnixSk, 'extUnixSk', '--ext-unix-sk'));
  // Long form on purpose: the short `-S` is --restore-sibling, not leave-stopped (that is `-s`).
  out.push(...flag(opts.leaveStopped, 'leaveStopped', '--leave-stopped'));
  out.push(...flag(opts.displayStats, 'displayStats', '--display-stats'));
  out.push(...logArgs(opts.log));
  return out;
}

/** `criu lazy-pages`: on the destination, fills page faults of a `restore --lazy-pages` tree. */
export function lazyPagesArgv(opts: LazyPagesOptions): string[] {
  needObject(opts, 'lazy-pages');
  checkKeys(opts, ['imagesDir', 'workDir', 'pageServer', 'daemon', 'pidfile', 'tls', 'log'], 'lazy-pages');
  if (opts.tls !== undefined && opts.pageServer === undefined) {
    fail('tls only protects page traffic: give pageServer, or drop tls');
  }
  const out = [CRIU_BIN, 'lazy-pages', ...dirArgs(opts)];
  if (opts.pageServer !== undefined) out.push('--page-server', ...endpointArgs(opts.pageServer, 'pageServer'));
  out.push(...flag(opts.daemon, 'daemon', '--daemon'));
  if (opts.pidfile !== undefined) out.push('--pidfile', checkOutputFile(opts.pidfile, 'pidfile'));
  out.push(...tlsArgs(opts.tls));
  out.push(...logArgs(opts.log));
  return out;
}

function cpuCapArgs(caps: CpuCap[] | undefined): string[] {
  if (caps === undefined) return [];
  const valid: readonly string[] = ['fpu', 'cpu', 'ins', 'all', 'none'];
  if (!Array.isArray(caps) || caps.length === 0 || caps.some((c) => !valid.includes(c))) {
    fail(`cpuCap must be a non-empty list of ${valid.join(', ')}`, { cpuCap: caps });
  }
  if (caps.includes('none') && caps.length > 1) fail("cpuCap 'none' cannot be combined with other capabilities");
  // --cpu-cap takes an optional argument: it must be glued with '=' or getopt drops it.
  return [`--cpu-cap=${caps.join(',')}`];
}

/** `criu cpuinfo dump`: writes this host's cpuinfo.img into `imagesDir` (run on the source). */
export function cpuinfoDumpArgv(opts: CpuinfoOptions): string[] {
  needObject(opts, 'cpuinfo dump');
  checkKeys(opts, ['imagesDir', 'workDir', 'cpuCap', 'log'], 'cpuinfo dump');
  return [CRIU_BIN, 'cpuinfo', 'dump', ...dirArgs(opts), ...cpuCapArgs(opts.cpuCap), ...logArgs(opts.log)];
}

/** `criu cpuinfo check`: compares `imagesDir/cpuinfo.img` with this host (run on the destination). */
export function cpuinfoCheckArgv(opts: CpuinfoOptions): string[] {
  needObject(opts, 'cpuinfo check');
  checkKeys(opts, ['imagesDir', 'workDir', 'cpuCap', 'log'], 'cpuinfo check');
  return [CRIU_BIN, 'cpuinfo', 'check', ...dirArgs(opts), ...cpuCapArgs(opts.cpuCap), ...logArgs(opts.log)];
}

/**
 * Where CRIU puts a file it writes next to its log: stats images (`stats-dump`, `stats-restore`), the log
 * and relative pidfiles land in the work dir (`-W`, or `-D` without it), never beside page-server pages.
 */
export function criuOutputPath(dirs: { imagesDir: string; workDir?: string }, file: string): string {
  checkOutputFile(file, 'file');
  if (file.startsWith('/')) return file;
  const base = checkAbsPath(dirs.workDir ?? dirs.imagesDir, dirs.workDir === undefined ? 'imagesDir' : 'workDir');
  return `${base.replace(/\/+$/, '')}/${file}`;
}
