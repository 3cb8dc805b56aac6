/** POSIX single-quote escaping for one word of a remote shell command. */
export function shq(word: string | number): string {
  const s = String(word);
  return /^[A-Za-z0-9_./:=@%+,-]+$/.test(s) ? s : `'${s.replace(/'/g, `'\\''`)}'`;
}

/** Quotes each word of an argv and joins them into one shell command. */
export function shellJoin(argv: readonly (string | number)[]): string {
  return argv.map(shq).join(' ');
}
