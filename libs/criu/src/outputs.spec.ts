import { readFileSync, readdirSync } from 'node:fs';
import { CriuOutputError } from './errors.js';
import { classifyCriuFailure, criuErrorLines, parseCriuCheck, parseFeatureCheck, type CriuFailure } from './outputs.js';

const fixtures = new URL('../test/fixtures/', import.meta.url);
const read = (name: string): string => readFileSync(new URL(name, fixtures), 'utf8');
const manifest = JSON.parse(read('manifest.json')) as { files: Record<string, { exitCode: number }> };
/** The exit code CRIU really returned when the fixture was captured. */
const exitCodeOf = (name: string): number => {
  const entry = manifest.files[name];
  if (!entry) throw new Error(`${name} is not in manifest.json`);
  return entry.exitCode;
};

describe('parseCriuCheck', () => {
  it('`criu check` on this lab: Looks good.', () => {
    expect(parseCriuCheck(read('outputs/check.txt'), exitCodeOf('outputs/check.txt'))).toEqual({
      ok: true,
      status: 'good',
      warnings: [],
      errors: [],
    });
  });

  it('`criu check --all` on this lab: good, but soft-dirty is missing (exit 1)', () => {
    expect(exitCodeOf('outputs/check-all.txt')).toBe(1);
    expect(parseCriuCheck(read('outputs/check-all.txt'), 1)).toEqual({
      ok: false,
      status: 'good_but_features_missing',
      warnings: ['Dirty tracking is OFF. Memory snapshot will not work.'],
      errors: [],
    });
  });

  it('a failing check (the vDSO error of Debian 12 CRIU 3.17 on kernel 6.18, see LAB.md)', () => {
    const out =
      'Error (criu/vdso.c:627): vdso: Unexpected rt vDSO area bounds\nError (criu/cr-check.c:1652): Failed to check vdso\n';
    expect(parseCriuCheck(out, 1)).toEqual({
      ok: false,
      status: 'failed',
      warnings: [],
      errors: ['vdso: Unexpected rt vDSO area bounds', 'Failed to check vdso'],
    });
  });

  it('does not believe "Looks good." with a non-zero exit code', () => {
    expect(parseCriuCheck('Looks good.\n', 1)).toMatchObject({ ok: false, status: 'failed' });
  });

  it('does not count the harmless RLIMIT_NOFILE error', () => {
    const out =
      "Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\nLooks good.\n";
    expect(parseCriuCheck(out, 0)).toMatchObject({ ok: true, errors: [] });
  });

  it('empty output is a failure', () => {
    expect(parseCriuCheck('', 0)).toMatchObject({ ok: false, status: 'failed' });
  });

  it('rejects non-text', () => {
    expect(() => parseCriuCheck(undefined as unknown as string, 0)).toThrow(CriuOutputError);
  });
});

describe('parseFeatureCheck on real outputs', () => {
  it.each([
    ['uffd-noncoop', { feature: 'uffd-noncoop', supported: true, known: true }],
    [
      'mem_dirty_track',
      {
        feature: 'mem_dirty_track',
        supported: false,
        known: true,
        reason: 'Dirty tracking is OFF. Memory snapshot will not work.',
      },
    ],
    [
      'no_such_feature',
      { feature: 'no_such_feature', supported: false, known: false, reason: 'Unknown feature no_such_feature' },
    ],
  ])('%s', (feature, expected) => {
    const file = `outputs/feature-${feature}.txt`;
    expect(parseFeatureCheck(feature, read(file), exitCodeOf(file))).toEqual(expected);
  });

  it.each([
    ['feature-lazy_parent_pages.txt', { supported: true, known: true }],
    // stock CRIU does not know the patched build's feature: that is how a node without it shows
    [
      'feature-lazy_parent_pages-stock.txt',
      { supported: false, known: false, reason: 'Unknown feature lazy_parent_pages' },
    ],
  ])('lazy_parent_pages (scripts/lab/criu patch) from %s', (name, expected) => {
    const file = `outputs/${name}`;
    expect(parseFeatureCheck('lazy_parent_pages', read(file), exitCodeOf(file))).toEqual({
      feature: 'lazy_parent_pages',
      ...expected,
    });
  });

  it('"is supported" with a failing exit code is not supported', () => {
    expect(parseFeatureCheck('uffd', 'uffd is supported\n', 1)).toMatchObject({
      supported: false,
      reason: 'exit code 1, no explanation printed',
    });
  });

  it('another feature being supported does not count', () => {
    expect(parseFeatureCheck('uffd', 'uffd-noncoop is supported\n', 0)).toMatchObject({ supported: false });
  });
});

type Expected = Pick<CriuFailure, 'kind' | 'retryable' | 'crashed'> & {
  tasksLeft?: CriuFailure['tasksLeft'];
  line: RegExp;
  summary: RegExp;
};

// Every failure log captured from real CRIU 4.2.1 runs, with what spotlift must make of it.
const realLogs: Record<string, Expected> = {
  'dump-pid-gone.log': {
    kind: 'pid_gone',
    retryable: false,
    crashed: false,
    line: /Unable to interrupt task: \d+ \(No such process\)/,
    summary: /The process to dump \(pid \d+\) does not exist/,
  },
  ...Object.fromEntries(
    ['dump-seize-strace.log', 'dump-seize-gdb.log', 'dump-seize-concurrent-dump.log'].map((file) => [
      file,
      {
        kind: 'tree_held',
        retryable: false,
        crashed: false,
        line: /Unable to interrupt task: \d+ \(Operation not permitted\)/,
        summary: /held by another tracer .* this command froze nothing and must not resume it/,
      } satisfies Expected,
    ]),
  ),
  'pre-dump-no-soft-dirty.log': {
    kind: 'unsupported_feature',
    retryable: false,
    crashed: true,
    line: /BUG at criu\/mem\.c:46/,
    summary: /no soft-dirty memory tracking \(CONFIG_MEM_SOFT_DIRTY\)/,
  },
  'pre-dump-track-mem-unavailable.log': {
    kind: 'unsupported_feature',
    retryable: false,
    crashed: false,
    line: /Tracking memory is not available/,
    summary: /no soft-dirty memory tracking/,
  },
  'dump-page-server-refused.log': {
    kind: 'page_server_connection',
    retryable: true,
    crashed: false,
    tasksLeft: 'running',
    line: /Can't connect to server 127\.0\.0\.1:27619/,
    summary: /No page-server was listening at 127\.0\.0\.1:27619/,
  },
  'dump-unprivileged.txt': {
    kind: 'permission',
    retryable: false,
    crashed: false,
    line: /CAP_SYS_ADMIN or the CAP_CHECKPOINT_RESTORE/,
    summary: /CRIU lacks the privileges it needs/,
  },
  'dump-tls-name-mismatch.log': {
    kind: 'tls',
    retryable: false,
    crashed: true,
    line: /tls: Invalid certificate/,
    summary: /The name in the certificate does not match the expected\..*subjectAltName/,
  },
  'restore-empty-dir.log': {
    kind: 'images_missing',
    retryable: false,
    crashed: false,
    line: /Unexpected EOF on \(empty-image\)/,
    summary: /inventory\.img is missing/,
  },
  'restore-pid-collision.log': {
    kind: 'pid_collision',
    retryable: false,
    crashed: false,
    line: /Can't fork for \d+: File exists/,
    summary: /Restore needs pid \d+ and it is already taken/,
  },
  'restore-address-in-use.log': {
    kind: 'address_in_use',
    retryable: false,
    crashed: false,
    line: /inet: Can't bind inet socket \(id 11\): Address already in use/,
    summary: /holds that address/,
  },
  'dump-lazy-pages-tee-eperm.log': {
    kind: 'lazy_pages_failed',
    retryable: false,
    crashed: false,
    // A failed lazy dump resumes the source even with --leave-stopped.
    tasksLeft: 'running',
    line: /page-pipe: tee: 65536: Operation not permitted/,
    summary: /fs\.pipe-max-size/,
  },
  'lazy-pages-daemon-source-failed.log': {
    kind: 'lazy_pages_failed',
    retryable: false,
    crashed: false,
    line: /Remote side closed connection/,
    summary: /lazy-pages daemon lost the source's page server/,
  },
  'restore-lazy-pages-failed.log': {
    kind: 'lazy_pages_failed',
    retryable: false,
    crashed: false,
    line: /uffd: Failed sending restore finished indication: Broken pipe/,
    summary: /Post-copy \(lazy pages\) failed/,
  },
  'restore-file-missing.log': {
    kind: 'missing_file',
    retryable: false,
    crashed: false,
    line: /Can't open file srv\/data\/fx\/journal\.log on restore: No such file/,
    summary: /^\/srv\/data\/fx\/journal\.log is missing on the destination\. .*declare the path/,
  },
  'cpuinfo-check-xfeatures.log': {
    kind: 'cpu_incompatible',
    retryable: false,
    crashed: false,
    line: /CPU xfeatures has unsupported bits \(0x7a\)/,
    summary: /destination CPU lacks features/,
  },
  'cpuinfo-check-capabilities.log': {
    kind: 'cpu_incompatible',
    retryable: false,
    crashed: false,
    line: /CPU capabilities do not match run time/,
    summary: /destination CPU lacks features/,
  },
};

describe('classifyCriuFailure on real CRIU 4.2.1 logs', () => {
  it('covers every captured log', () => {
    expect(readdirSync(new URL('logs/', fixtures)).sort()).toEqual(Object.keys(realLogs).sort());
  });

  it.each(Object.entries(realLogs))('%s', (file, expected) => {
    const exitCode = exitCodeOf(`logs/${file}`);
    const failure = classifyCriuFailure(read(`logs/${file}`), exitCode);
    expect(failure.kind).toBe(expected.kind);
    expect(failure.retryable).toBe(expected.retryable);
    expect(failure.crashed).toBe(expected.crashed);
    expect(failure.exitCode).toBe(exitCode);
    expect(failure.tasksLeft).toBe(expected.tasksLeft);
    expect(failure.lines.length).toBeGreaterThan(0);
    expect(failure.lines.length).toBeLessThanOrEqual(5);
    expect(failure.lines.some((l) => expected.line.test(l))).toBe(true);
    expect(failure.lines.join('\n')).not.toMatch(/RLIMIT_NOFILE/);
    expect(failure.summary).toMatch(expected.summary);
  });

  it('a dump refused because another tracer holds the tree also logs "Unable to detach ... No such process"; it is not pid_gone', () => {
    for (const file of ['dump-seize-strace.log', 'dump-seize-gdb.log', 'dump-seize-concurrent-dump.log']) {
      const log = read(`logs/${file}`);
      expect(log).toMatch(/Unable to detach from \d+: No such process/);
      expect(log).toMatch(/Unfreezing tasks into 1/);
      const failure = classifyCriuFailure(log, 1);
      expect(failure.kind).toBe('tree_held');
      expect(failure.summary).not.toMatch(/Nothing was frozen; check whether the workload/);
    }
  });

  it('says "nothing was frozen" for pid_gone only with proof that the seize itself found no process', () => {
    const detachOnly = '(00.046367) Error (compel/src/lib/infect.c:417): Unable to detach from 4242: No such process\n';
    const f = classifyCriuFailure(detachOnly, 1);
    expect(f.kind).toBe('pid_gone');
    expect(f.summary).not.toMatch(/Nothing was frozen/);
    expect(f.summary).toMatch(/does not say whether it was frozen/);
    expect(classifyCriuFailure(read('logs/dump-pid-gone.log'), 1).summary).toMatch(/Nothing was frozen/);
  });

  it('the refused page-server log also holds a "No such process" line; it is not read as pid_gone', () => {
    const log = read('logs/dump-page-server-refused.log');
    expect(log).toMatch(/Unable to detach from \d+: No such process/);
    expect(classifyCriuFailure(log, 1).kind).toBe('page_server_connection');
  });
});

describe('classifyCriuFailure edge cases', () => {
  it('a log with only the harmless RLIMIT error is unknown', () => {
    const log =
      "(00.0001) Error (criu/util.c:1534): rlimit: Can't setup RLIMIT_NOFILE for self: Operation not permitted\n";
    expect(classifyCriuFailure(log, 1)).toEqual({
      kind: 'unknown',
      summary: 'CRIU failed (exit code 1) and logged no error line; read the full log.',
      lines: [],
      retryable: false,
      crashed: false,
      exitCode: 1,
    });
  });

  it('an unknown error keeps the last error lines', () => {
    const log = [
      '(00.1) Error (criu/mount.c:1): mnt: Mount 123 ./etc/hosts (master_id: 0 shared_id: 0) has unreachable sharing',
      '(00.2) Error (criu/cr-dump.c:1975): Dumping FAILED.',
    ].join('\n');
    const failure = classifyCriuFailure(log, 1);
    expect(failure.kind).toBe('unknown');
    expect(failure.lines).toHaveLength(2);
    expect(failure.summary).toBe(
      'CRIU failed (exit code 1): Dumping FAILED.. No known cause matched; read the full log.',
    );
  });

  it('a crash without a known cause says so', () => {
    expect(classifyCriuFailure('double free or corruption (!prev)\n', 134)).toMatchObject({
      kind: 'unknown',
      crashed: true,
      summary: /CRIU crashed \(exit code 134\)/,
    });
  });

  it('works without an exit code', () => {
    const failure = classifyCriuFailure("(00.1) Can't connect to server 10.0.0.3:27000\n");
    expect(failure).toMatchObject({ kind: 'page_server_connection', crashed: false });
    expect(failure).not.toHaveProperty('exitCode');
  });

  it('a missing image directory (stderr of a real CRIU 4.2.1 run; the log never opened)', () => {
    const out = [
      "Error (criu/image.c:726): Can't open dir /var/lib/spotlift/m1: No such file or directory",
      "Error (criu/crtools.c:259): Couldn't open image dir /var/lib/spotlift/m1",
    ].join('\n');
    expect(classifyCriuFailure(out, 1)).toMatchObject({
      kind: 'images_missing',
      summary: /check the -D directory exists/,
    });
  });

  it('reads the older pid mismatch message as a collision', () => {
    expect(
      classifyCriuFailure('(00.1) Error (criu/cr-restore.c:1): Pid 1234 do not match expected 4321\n', 1).kind,
    ).toBe('pid_collision');
  });

  it('reports a stopped tree when CRIU says so', () => {
    const log =
      "(00.1) Error (criu/x.c:1): Can't send PSI 1 to server: Connection reset by peer\n(00.2) Unfreezing tasks into 3\n";
    expect(classifyCriuFailure(log, 1)).toMatchObject({ kind: 'page_server_connection', tasksLeft: 'stopped' });
  });

  it('classifies an empty log as unknown', () => {
    expect(classifyCriuFailure('', 1).kind).toBe('unknown');
  });

  it('rejects non-text', () => {
    expect(() => classifyCriuFailure(Buffer.from('x') as unknown as string, 1)).toThrow(CriuOutputError);
  });
});

describe('criuErrorLines', () => {
  it('keeps error and BUG lines, drops harmless ones', () => {
    expect(criuErrorLines(read('logs/pre-dump-no-soft-dirty.log'))).toEqual([
      expect.stringMatching(/Error \(criu\/mem\.c:46\): BUG at criu\/mem\.c:46$/),
    ]);
    expect(criuErrorLines(read('logs/restore-empty-dir.log'))).toEqual([
      expect.stringMatching(/Unexpected EOF on \(empty-image\)$/),
    ]);
  });
});
