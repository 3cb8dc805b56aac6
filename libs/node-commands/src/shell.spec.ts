import { shellJoin, shq } from './shell.js';

describe('shellJoin / shq', () => {
  const cases: [string[], string][] = [
    [['criu', 'dump', '-t', '42', '-D', '/var/lib/x'], 'criu dump -t 42 -D /var/lib/x'],
    [['criu', 'check', '--feature', 'uffd-noncoop'], 'criu check --feature uffd-noncoop'],
    [['echo', 'a b'], "echo 'a b'"],
    [['echo', "it's"], "echo 'it'\\''s'"],
    [['echo', ''], "echo ''"],
    [['echo', '$(reboot)', '`id`', 'a;b', 'x|y', '*', '~', '#c'], "echo '$(reboot)' '`id`' 'a;b' 'x|y' '*' '~' '#c'"],
    [['criu', '--cpu-cap=cpu'], 'criu --cpu-cap=cpu'],
    [['A=b', 'cmd'], "'A=b' cmd"],
    // A first word with `=` is quoted as a whole, and its own quotes escaped like anywhere else.
    [["A='b", 'cmd'], "'A='\\''b' cmd"],
    [["x=$(id)'; reboot; '", 'y'], "'x=$(id)'\\''; reboot; '\\''' y"],
    [['echo', "'"], "echo ''\\'''"],
    [['echo', 'line1\nline2'], "echo 'line1\nline2'"],
  ];
  it.each(cases)('%j', (argv, expected) => {
    expect(shellJoin(argv)).toBe(expected);
  });

  it('round-trips through a POSIX shell word splitter', () => {
    // A minimal sh word parser for the two forms shellJoin emits (bare words, '...' with '\'' escapes).
    const split = (line: string): string[] => {
      const words: string[] = [];
      let cur = '';
      let inWord = false;
      for (let i = 0; i < line.length; i++) {
        const c = line[i]!;
        if (c === "'") {
          const end = line.indexOf("'", i + 1);
          cur += line.slice(i + 1, end);
          i = end;
          inWord = true;
        } else if (c === '\\') {
          cur += line[++i];
          inWord = true;
        } else if (c === ' ') {
          if (inWord) words.push(cur);
          cur = '';
          inWord = false;
        } else {
          cur += c;
          inWord = true;
        }
      }
      if (inWord) words.push(cur);
      return words;
    };
    const argv = ['criu', "a'b", '', "''", ' lead', 'tail ', '--x=y', 'ünï', '$HOME', '\\'];
    expect(split(shellJoin(argv))).toEqual(argv);
    const assignmentLike = ["a'b=c", "it's=x"];
    expect(split(shellJoin(assignmentLike))).toEqual(assignmentLike);
  });

  it('quotes words with = only in first position (an assignment there), and numbers stay bare', () => {
    expect(shellJoin(['A=b', 'x=y'])).toBe("'A=b' x=y");
    expect(shq(42)).toBe('42');
  });

  it('refuses NUL bytes and empty argv', () => {
    expect(() => shellJoin(['echo', 'a\0b'])).toThrow(/NUL byte/);
    expect(() => shq('a\0b')).toThrow(/NUL byte/);
    expect(() => shellJoin([])).toThrow(/non-empty/);
  });
});
