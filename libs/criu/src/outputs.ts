/**
 * Reading what CRIU prints: `criu check` verdicts, `criu check --feature X` answers, and the logs of
 * failed commands, mapped to a failure class the engine can act on. The patterns come from real CRIU
 * 4.2.1 logs (test/fixtures/README.md); a few alternatives, for cases this lab cannot produce or older
 * CRIU wordings, are marked "not seen here" and are covered by synthetic tests only.
 */
import { CriuOutputError } from './errors.js';

// ---------------------------------------------------------------------------------------------------
// Log lines

/** Lines CRIU marks as errors, e.g. `(00.036166)      1: Error (criu/sk-inet.c:1059): inet: ...`. */
const ERROR_RE = /\bError \([^)]*\):|\bBUG at\b/;
const WARN_RE = /\bWarn\s+\([^)]*\):/;
/**
 * Error lines that say nothing about why a command failed. RLIMIT_NOFILE: CRIU tries to raise its own
 * fd limit and logs an error when it lacks CAP_SYS_RESOURCE, then carries on (seen on every run here).
 */
const HARMLESS_RE = /Can't setup RLIMIT_NOFILE/;

function lines(text: string): string[] {
  return text
    .split(/\r?\n/)
    .map((l) => l.trimEnd())
    .filter((l) => l.trim().length > 0);
}

/** Strips CRIU's `(00.012345)` timestamp, a restorer's `  1: ` pid prefix and the `Error (file:line): ` tag. */
function message(line: string): string {
  return line
    .replace(/^\s*\(\d+\.\d+\)\s*/, '')
    .replace(/^\d+:\s+/, '')
    .replace(/^(?:Error|Warn)\s+\([^)]*\):\s*/, '')
    .trim();
}

/** The error lines of a CRIU log or output, in order, without the ones known to be harmless. */
export function criuErrorLines(logText: string): string[] {
  return lines(logText).filter((l) => ERROR_RE.test(l) && !HARMLESS_RE.test(l));
}

// ---------------------------------------------------------------------------------------------------
// criu check

/** Verdict of `criu check` (optionally `--all`/`--extra`). */
export type CriuCheckStatus = 'good' | 'good_but_features_missing' | 'failed';

/** What `criu check` said. */
export interface CriuCheckResult {
  /** True only for "Looks good." with exit code 0. */
  ok: boolean;
  status: CriuCheckStatus;
  /** `Warn (...)` lines, without timestamps and tags, e.g. "Dirty tracking is OFF. Memory snapshot will not work.". */
  warnings: string[];
  /** `Error (...)` lines, same form. */
  errors: string[];
}

/**
 * Parses `criu check` output (stdout and stderr together) and its exit code. `criu check --all` on a
 * kernel without some extra feature says "Looks good but some kernel features are missing" and exits 1:
 * basic dump and restore work, some features do not.
 */
export function parseCriuCheck(output: string, exitCode: number): CriuCheckResult {
  if (typeof output !== 'string') throw new CriuOutputError('criu check output must be text');
  const all = lines(output);
  const warnings = all.filter((l) => WARN_RE.test(l)).map(message);
  const errors = criuErrorLines(output).map(message);
  let status: CriuCheckStatus = 'failed';
  if (all.some((l) => /^Looks good but\b/.test(l.trim()))) status = 'good_but_features_missing';
  else if (exitCode === 0 && errors.length === 0 && all.some((l) => l.trim() === 'Looks good.')) status = 'good';
  return { ok: status === 'good', status, warnings, errors };
}

/** The answer to `criu check --feature NAME`. */
export interface CriuFeatureCheck {
  feature: string;
  supported: boolean;
  /** False when this CRIU does not know the feature name at all ("Unknown feature"). */
  known: boolean;
  /** Why not, in CRIU's words, e.g. "Dirty tracking is OFF. Memory snapshot will not work.". */
  reason?: string;
}

/**
 * Parses `criu check --feature NAME` (stdout and stderr together). Supported means exit code 0 and
 * "NAME is supported"; anything else is not. A supported `uffd-noncoop` does not prove post-copy works:
 * the lazy dump can still fail on fs.pipe-max-size (see classifyCriuFailure).
 */
export function parseFeatureCheck(feature: string, output: string, exitCode: number): CriuFeatureCheck {
  if (typeof output !== 'string') throw new CriuOutputError('criu check --feature output must be text');
  const all = lines(output);
  const known = !all.some((l) => /Unknown feature/.test(l));
  const supported = known && exitCode === 0 && all.some((l) => l.trim() === `${feature} is supported`);
  const result: CriuFeatureCheck = { feature, supported, known };
  if (!supported) {
    const why = all.find((l) => ERROR_RE.test(l) || WARN_RE.test(l)) ?? all.find((l) => /not supported/i.test(l));
    result.reason = why === undefined ? `exit code ${exitCode}, no explanation printed` : message(why);
  }
  return result;
}

// ---------------------------------------------------------------------------------------------------
// Failure classification

/** What went wrong, as far as the log tells. */
export type CriuFailureKind =
  | 'pid_gone'
  | 'tree_held'
  | 'permission'
  | 'unsupported_feature'
  | 'address_in_use'
  | 'pid_collision'
  | 'page_server_connection'
  | 'tls'
  | 'lazy_pages_failed'
  | 'cpu_incompatible'
  | 'images_missing'
  | 'missing_file'
  | 'unknown';

/** The state CRIU says it left the dumped tree in ("Unfreezing tasks into N"). */
export type CriuTasksLeft = 'running' | 'killed' | 'stopped';

/** A classified CRIU failure. */
export interface CriuFailure {
  kind: CriuFailureKind;
  /** One or two sentences for a person: what happened and what to do. */
  summary: string;
  /** The log lines that decided the class (at most 5), as they appear in the log. */
  lines: string[];
  /** True when running the same command again later may succeed without changing anything. */
  retryable: boolean;
  /** CRIU died from a signal (exit code >= 128, e.g. 134 = SIGABRT from a BUG or a crash). */
  crashed: boolean;
  exitCode?: number;
  /**
   * What CRIU logged it did with the dumped tree before exiting. A hint only: with no such line (a crash,
   * a restore) it is absent, and the engine must still check the process on the node.
   */
  tasksLeft?: CriuTasksLeft;
}

interface Ctx {
  all: string[];
  text: string;
}

interface Rule {
  kind: CriuFailureKind;
  match: RegExp;
  retryable: boolean;
  summary: (hits: string[], ctx: Ctx) => string;
  /** Overrides the kind from the whole log, e.g. a page-server error inside the lazy-pages daemon. */
  refine?: (ctx: Ctx) => CriuFailureKind;
}

const num = (re: RegExp, hits: string[]): string | undefined => {
  for (const h of hits) {
    const m = re.exec(h);
    if (m?.[1]) return m[1];
  }
  return undefined;
};

const LAZY_CONTEXT = /\buffd:|lazy-pages\.socket|Lazy pages transfer|Starting lazy pages server/;

// First matching rule wins, so specific causes come before the symptoms they drag along: a refused
// page-server connection also logs "Unable to detach from PID: No such process", which on its own
// would read as a vanished process.
const RULES: Rule[] = [
  {
    // Seen (libs/criu/test/fixtures/logs/dump-seize-*.log): a second `criu dump` while another dump holds the
    // tree, and a dump of a process under strace or gdb: compel's PTRACE_INTERRUPT gets EPERM because the
    // seize never happened, and CRIU then fails to "detach" with ESRCH. That last line must not be read as a
    // vanished process: the process is there, stopped or running as the *other* tracer left it, and this
    // command froze nothing (so must resume nothing). Not seen here: EBUSY, "already traced".
    kind: 'tree_held',
    match:
      /Unable to interrupt task: \d+ \((?:Operation not permitted|Device or resource busy)\)|Can't seize task.*(?:Operation not permitted|Device or resource busy)|already (?:being )?traced/,
    retryable: false,
    summary: (hits) => {
      const pid = num(/(?:task:? )(\d+)/, hits);
      return `The process to dump${pid ? ` (pid ${pid})` : ''} is held by another tracer (another CRIU dump, strace, gdb) or may not be traced: CRIU could not seize it, so this command froze nothing and must not resume it. Whoever holds it decides its fate; look for another migration of the same process.`;
    },
  },
  {
    kind: 'lazy_pages_failed',
    match: /page-pipe: tee: .*Operation not permitted/,
    retryable: false,
    summary: () =>
      'Post-copy failed on the source: CRIU could not size its page pipe above fs.pipe-max-size, which needs CAP_SYS_RESOURCE. ' +
      'Raise the limit on the source node (sysctl fs.pipe-max-size=268435456) or use a strategy without lazy pages; CRIU resumed the source tree.',
  },
  {
    kind: 'tls',
    // Error lines only: CRIU also logs "tls: TLS handshake completed" on the way to a failed verification.
    match: /\bError \([^)]*\): tls: /,
    retryable: false,
    summary: (hits) => {
      const texts = hits.map(message);
      const why =
        texts.find((m) => /NOT trusted|does not match|expired|revoked|handshake failed/i.test(m)) ?? texts[0] ?? '';
      const san = /name in the certificate does not match/i.test(why)
        ? ' The peer certificate needs a subjectAltName for the --address used (an IP SAN for an IP address); a CN alone is not enough.'
        : ' Check that both sides use certificates from the same CA and that they are valid now.';
      return `TLS between CRIU and the page-server failed: ${why}.${san}`;
    },
  },
  {
    // Seen: the CAP_* message of a non-root run. Not seen here: "must be run as root" (older CRIU), EPERM on seize.
    kind: 'permission',
    match:
      /needs to have the CAP_SYS_ADMIN or the CAP_CHECKPOINT_RESTORE|Effective capability \d+ missing|must be run as root|(?:Error \(|seize|ptrace|attach).*(?:Operation not permitted|Permission denied)/,
    retryable: false,
    summary: (hits) =>
      `CRIU lacks the privileges it needs (${message(hits[0] ?? '')}). Run it as root, or give the binary CAP_CHECKPOINT_RESTORE (setcap cap_checkpoint_restore+eip criu) and use --unprivileged.`,
  },
  {
    // Seen: BUG at criu/mem.c:46, "Tracking memory is not available", "Dirty tracking is OFF", "Unknown feature".
    // Not seen here (this kernel has userfaultfd, this CRIU has GnuTLS): the uffd and TLS alternatives.
    kind: 'unsupported_feature',
    match:
      /BUG at criu\/mem\.c|Dirty tracking is OFF|Tracking memory is not available|Unknown feature|built without TLS support|uffd.*(?:not supported|Function not implemented)|userfaultfd.*(?:not supported|Function not implemented)/,
    retryable: false,
    summary: (hits) => {
      const text = hits.join('\n');
      if (/BUG at criu\/mem\.c|Dirty tracking|Tracking memory/.test(text)) {
        return 'This kernel has no soft-dirty memory tracking (CONFIG_MEM_SOFT_DIRTY), so pre-dump and --track-mem cannot work; use stop-and-copy or post-copy on this node. The tree keeps running.';
      }
      if (/Unknown feature/.test(text))
        return `This CRIU does not know the feature asked for: ${message(hits[0] ?? '')}.`;
      if (/TLS/.test(text))
        return 'This CRIU was built without GnuTLS: use the ssh transport or a CRIU built with TLS.';
      return `The kernel lacks userfaultfd support needed for lazy pages: ${message(hits[0] ?? '')}. Use a strategy without post-copy.`;
    },
  },
  {
    // Seen: "CPU xfeatures has unsupported bits", "CPU capabilities do not match run time" (edited cpuinfo.img).
    kind: 'cpu_incompatible',
    match: /\bcpu: .*(?:unsupported|do not match|mismatch|missing|not supported)|CPU .*(?:do not match|not supported)/i,
    retryable: false,
    summary: (hits) =>
      `The destination CPU lacks features the dumped tree may use (${message(hits[0] ?? '')}); a restore there could die with SIGILL. Pick a destination with the same or a newer CPU generation.`,
  },
  {
    kind: 'lazy_pages_failed',
    match: /Lazy pages transfer FAILED|(?:Error \(|BUG).*\buffd:|lazy-pages\.socket.*(?:fail|refused|No such file)/,
    retryable: false,
    summary: (hits) =>
      `Post-copy (lazy pages) failed: ${message(hits[0] ?? '')}. The restored tree is killed when pages cannot arrive; look at the source's dump log for the cause (often fs.pipe-max-size).`,
  },
  {
    kind: 'page_server_connection',
    match:
      /Can't connect to server|Connection refused|Connection reset by peer|Remote side closed connection|page server doesn't answer|Can't send PSI|page-xfer: .*Broken pipe/,
    retryable: true,
    refine: (ctx) => (LAZY_CONTEXT.test(ctx.text) ? 'lazy_pages_failed' : 'page_server_connection'),
    summary: (hits, ctx) => {
      const where = num(/Can't connect to server (\S+)/, hits);
      if (LAZY_CONTEXT.test(ctx.text)) {
        return `The lazy-pages daemon lost the source's page server (${message(hits[0] ?? '')}); post-copy cannot finish, so the restored tree dies. Check the source's dump log.`;
      }
      return where
        ? `No page-server was listening at ${where}: start 'criu page-server' on the destination first (with --daemon it returns once listening). CRIU resumed the tree; trying again is safe.`
        : `The connection to the page-server broke (${message(hits[0] ?? '')}); check that the destination page-server still runs and the network between the nodes.`;
    },
  },
  {
    // Seen: "Can't open file srv/data/fx/journal.log on restore: No such file or directory" (a file the tree
    // held open is not on the destination). Not seen here: "File ... has bad size" (a stale copy there).
    kind: 'missing_file',
    match:
      /Can't open file .* on restore: No such file|Can't open file .*: No such file or directory|File .* has bad size/,
    retryable: false,
    summary: (hits) => {
      const path = num(/Can't open file (\S+)/, hits) ?? num(/File (\S+) has bad size/, hits);
      const file = path ? `/${path.replace(/^\/+/, '')}` : 'a file the workload has open';
      const how = hits.some((h) => /has bad size/.test(h)) ? "differs from the source's copy" : 'is missing';
      return `${file} ${how} on the destination. Nodes do not share files: declare the path (or its directory) in the workload's \`paths\` so spotlift copies it before and during the freeze, or put it on storage both nodes share (node \`sharedStorage\`).`;
    },
  },
  {
    kind: 'address_in_use',
    match: /Address already in use/,
    retryable: false,
    summary: (hits) =>
      `Restore could not bind a socket the tree owns (${message(hits[0] ?? '')}): something on the destination, often the frozen source itself when both share a network namespace, holds that address. Restore into a separate network namespace or node.`,
  },
  {
    // Seen: "Can't fork for N: File exists" (clone3 set_tid). Not seen here: "Pid N do not match expected M"
    // (CRIU on kernels without clone3, going through ns_last_pid).
    kind: 'pid_collision',
    match: /Can't fork for \d+: File exists|Pid \d+ do not match expected \d+|set_tid.*File exists/,
    retryable: false,
    summary: (hits) => {
      const pid = num(/(?:fork for|Pid) (\d+)/, hits);
      return `Restore needs pid ${pid ?? '(see log)'} and it is already taken on this node. Run workloads as the init of their own pid namespace (unshare -p -f) so the restored tree gets fresh host pids.`;
    },
  },
  {
    // Seen: empty -D ("Unexpected EOF on (empty-image)"), a missing -D ("Can't open dir ...", "Couldn't open
    // image dir ..."; printed on stderr before the log opens).
    kind: 'images_missing',
    match:
      /Unexpected EOF on \(empty-image\)|Couldn't open image dir|Can't open dir .*No such file|No such file or directory.*\.img/,
    retryable: false,
    summary: (hits, ctx) => {
      const noInventory = ctx.all.some((l) => /No inventory\.img image/.test(l));
      return noInventory
        ? 'The image directory holds no CRIU images (inventory.img is missing): the dump did not finish or the images were not copied to this node.'
        : `CRIU could not open its images (${message(hits[0] ?? '')}): check the -D directory exists on this node and holds the complete dump.`;
    },
  },
  {
    // Seen: "Unable to interrupt task: N (No such process)" and "Failed to open /proc/N/comm". Not seen here:
    // "Can't seize task" (a task that exits during the seize).
    kind: 'pid_gone',
    match:
      /Unable to interrupt task: \d+ \(No such process\)|Can't seize task|seize.*No such process|Failed to open \/proc\/\d+\/comm|Unable to detach from \d+: No such process/,
    retryable: false,
    summary: (hits) => {
      const pid = num(/(?:task:? |proc\/|from )(\d+)/, hits);
      const which = pid ? ` (pid ${pid})` : '';
      // Proof that the seize never happened: the interrupt itself found no process. A detach failure alone
      // proves nothing about what was frozen (the engine then asks the node).
      const seizeFailed = hits.some((h) =>
        /Unable to interrupt task: \d+ \(No such process\)|Failed to open \/proc\/\d+\/comm/.test(h),
      );
      return seizeFailed
        ? `The process to dump${which} does not exist: it exited before CRIU could seize it. Nothing was frozen; check whether the workload is still there.`
        : `CRIU lost the process to dump${which} (it vanished while CRIU held it); the log does not say whether it was frozen, so the node is asked.`;
    },
  },
];

function tasksLeft(all: string[]): CriuTasksLeft | undefined {
  // compel task states: 1 alive, 2 dead, 3 stopped. The last such line is the one that counted.
  for (let i = all.length - 1; i >= 0; i--) {
    const m = /Unfreezing tasks into (\d+)/.exec(all[i] ?? '');
    if (m) return ({ '1': 'running', '2': 'killed', '3': 'stopped' } as const)[m[1] as '1' | '2' | '3'];
  }
  return undefined;
}

/**
 * Classifies a failed CRIU command from its log (the `-o` file, or stdout+stderr when CRIU stopped before
 * opening it) and exit code. Pure: the log is only read.
 */
export function classifyCriuFailure(logText: string, exitCode?: number): CriuFailure {
  if (typeof logText !== 'string') throw new CriuOutputError('classifyCriuFailure needs the log as text');
  const all = lines(logText);
  const ctx: Ctx = { all, text: logText };
  const crashed = exitCode !== undefined && exitCode >= 128;
  const base = { crashed, ...(exitCode === undefined ? {} : { exitCode }) };
  const left = tasksLeft(all);
  const withLeft = left === undefined ? {} : { tasksLeft: left };
  for (const rule of RULES) {
    const hits = all.filter((l) => rule.match.test(l) && !HARMLESS_RE.test(l));
    if (hits.length === 0) continue;
    const kind = rule.refine ? rule.refine(ctx) : rule.kind;
    return {
      kind,
      summary: rule.summary(hits, ctx),
      lines: hits.slice(0, 5),
      retryable: kind === rule.kind && rule.retryable,
      ...base,
      // CRIU still logs "Unfreezing tasks into 1" for a pid it never seized (gone, or another tracer's):
      // "running" would mislead.
      ...(kind === 'pid_gone' || kind === 'tree_held' ? {} : withLeft),
    };
  }
  const errors = criuErrorLines(logText);
  const last = errors.at(-1);
  const how = crashed
    ? `CRIU crashed (exit code ${exitCode})`
    : `CRIU failed${exitCode === undefined ? '' : ` (exit code ${exitCode})`}`;
  return {
    kind: 'unknown',
    summary: last
      ? `${how}: ${message(last)}. No known cause matched; read the full log.`
      : `${how} and logged no error line; read the full log.`,
    lines: errors.slice(-3),
    retryable: false,
    ...base,
    ...withLeft,
  };
}
