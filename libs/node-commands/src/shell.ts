/**
 * POSIX shell quoting for commands sent over SSH (exec always goes through the remote user's shell). Words
 * made only of safe characters stay bare for readable logs; everything else is single-quoted, with each `'`
 * written as `'\''`. NUL cannot travel through a shell at all and throws.
 */
const BARE = /^[A-Za-z0-9_./:=@%+,-]+$/;

/** Single-quotes a word whatever it holds, each `'` written as `'\''`. */
function quoted(s: string): string {
  if (s.includes('\0')) throw new Error(`a shell word cannot hold a NUL byte: ${JSON.stringify(s)}`);
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Quotes one word. */
export function shq(word: string | number): string {
  const s = String(word);
  return BARE.test(s) ? s : quoted(s);
}

/**
 * Quotes each word of an argv and joins them into one command line. A first word with `=` is quoted too:
 * bare, the shell would take `A=b` for a variable assignment instead of the command to run.
 */
export function shellJoin(argv: readonly (string | number)[]): string {
  if (argv.length === 0) throw new Error('shellJoin needs a non-empty argv');
  return argv.map((w, i) => (i === 0 && String(w).includes('=') ? quoted(String(w)) : shq(w))).join(' ');
}
