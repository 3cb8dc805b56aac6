/**
 * POSIX shell quoting for commands sent over SSH (exec always goes through the remote user's shell). Words
 * made only of safe characters stay bare for readable logs; everything else is single-quoted, with each `'`
 * written as `'\''`. NUL cannot travel through a shell at all and throws.
 */
const BARE = /^[A-Za-z0-9_./:=@%+,-]+$/;

/** Quotes one word. */
export function shq(word: string | number): string {
  const s = String(word);
  if (s.includes('\0')) throw new Error(`a shell word cannot hold a NUL byte: ${JSON.stringify(s)}`);
  return BARE.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/**
 * Quotes each word of an argv and joins them into one command line. A first word with `=` is quoted too:
 * bare, the shell would take `A=b` for a variable assignment instead of the command to run.
 */
export function shellJoin(argv: readonly (string | number)[]): string {
  if (argv.length === 0) throw new Error('shellJoin needs a non-empty argv');
  return argv.map((w, i) => (i === 0 && String(w).includes('=') ? `'${String(w)}'` : shq(w))).join(' ');
}
