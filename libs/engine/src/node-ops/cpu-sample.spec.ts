import { cpuSampleCommand, parseCpuSample } from './cpu-sample.js';

/**
 * Real output of cpuSampleCommand's script, captured on a 2-CPU lab host (kernel 6.x) while another job kept
 * both CPUs busy: pid 19107 is `yes` renamed "b (u) sy" (spaces and parentheses in its name), 999999 does not exist.
 */
const REAL = `@@
cpu  4704008 126892 536996 2040978 6204 0 22796 1888 0 0
2
P 19107 19107 (b (u) sy) R 1 19103 21199 0 -1 4194304 140 0 0 0 1 5 0 0 20 0 1 0 3741362 2990080 359 18446744073709551615 94054196547584 94054196564553 140725065907040 0 0 0 0 6 0 0 0 0 17 1 0 0 0 0 0 94054196579600 94054196580832 94054947307520 140725065915107 140725065915121 140725065915121 140725065916394 0
P 999999 
@@
cpu  4704189 126892 537030 2040978 6204 0 22797 1888 0 0
2
P 19107 19107 (b (u) sy) R 1 19103 21199 0 -1 4194304 140 0 0 0 5 19 0 0 20 0 1 0 3741362 2990080 359 18446744073709551615 94054196547584 94054196564553 140725065907040 0 0 0 0 6 0 0 0 0 17 1 0 0 0 0 0 94054196579600 94054196580832 94054947307520 140725065915107 140725065915121 140725065915121 140725065916394 0
P 999999 
`;

describe('CPU sample read from /proc', () => {
  it('reads busy CPUs from /proc/stat deltas and a process share from its utime + stime', () => {
    const s = parseCpuSample(REAL)!;
    // 216 jiffies passed (user 181, system 34, softirq 1), none idle: both CPUs busy.
    expect(s.cpuCount).toBe(2);
    expect(s.busyCpus).toBeCloseTo(2, 6);
    // utime 1 -> 5, stime 5 -> 19: 18 of 216 jiffies over 2 CPUs.
    expect(s.pids[19107]).toBeCloseTo((18 / 216) * 2, 6);
    expect(s.pids[999999]).toBeUndefined();
  });

  it.each([
    [
      'an idle share counts idle and iowait',
      'cpu  100 0 100 700 100 0 0 0 0 0',
      'cpu  150 0 150 1500 200 0 0 0 0 0',
      4,
      0.4,
    ],
    ['a fully idle node', 'cpu  100 0 100 700 0 0 0 0 0 0', 'cpu  100 0 100 1700 0 0 0 0 0 0', 8, 0],
  ] as const)('%s', (_name, first, second, cpus, busy) => {
    const text = `@@\n${first}\n${cpus}\n@@\n${second}\n${cpus}\n`;
    expect(parseCpuSample(text)!.busyCpus).toBeCloseTo(busy, 6);
  });

  it.each([
    ['empty output (the node did not answer)', ''],
    ['one reading only', '@@\ncpu  1 2 3 4 5 6 7 8 0 0\n2\n'],
    ['no time passed', '@@\ncpu  1 2 3 4 5 6 7 8 0 0\n2\n@@\ncpu  1 2 3 4 5 6 7 8 0 0\n2\n'],
    ['prose', '@@\ncat: /proc/stat: No such file\n@@\nnothing\n'],
  ])('makes no sense of %s', (_name, text) => {
    expect(parseCpuSample(text)).toBeUndefined();
  });

  it('a process whose counters went back (pid reused) is left out', () => {
    const text =
      '@@\ncpu  0 0 0 0 0 0 0 0\n1\nP 7 7 (x) S 1 1 1 0 -1 0 0 0 0 0 50 50 0\n' +
      '@@\ncpu  100 0 0 0 0 0 0 0\n1\nP 7 7 (x) S 1 1 1 0 -1 0 0 0 0 0 1 1 0\n';
    expect(parseCpuSample(text)!.pids).toEqual({});
  });

  it('the command reads only the pids it is given, as numbers', () => {
    expect(cpuSampleCommand([12, -1, 1.5, 34], 1)).toBe(
      `s() { echo @@; head -n 1 /proc/stat; grep -c '^cpu[0-9]' /proc/stat; for p in 12 34; do echo "P $p $(cat /proc/$p/stat 2>/dev/null)"; done; }; s; sleep 1; s`,
    );
  });
});
