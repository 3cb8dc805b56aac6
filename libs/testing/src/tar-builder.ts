/**
 * Builds tar archives byte by byte for tests, including ones no honest tar writes (names outside a tree, bad
 * checksums, data after the end): each block is laid out as POSIX ustar or GNU tar specify.
 */
export interface Entry {
  name: string;
  type?: string; // '0' file, '1' hard link, '2' symlink, '3' char, '4' block, '5' dir, '6' fifo, ...
  data?: Buffer | string;
  /** The size field, when it should differ from the data's length. */
  size?: number;
  link?: string;
  mode?: number;
  /** POSIX ustar ('ustar\0' '00', with prefix) or GNU ('ustar  \0'), or anything else. */
  magic?: 'posix' | 'gnu' | 'v7';
  prefix?: string;
  badChecksum?: boolean;
}

const octal = (n: number, len: number) => n.toString(8).padStart(len - 1, '0') + '\0';

export function header(e: Entry, size: number): Buffer {
  const b = Buffer.alloc(512);
  b.write(e.name, 0, 100, 'latin1');
  b.write(octal(e.mode ?? (e.type === '5' ? 0o755 : 0o644), 8), 100, 'latin1');
  b.write(octal(0, 8), 108, 'latin1');
  b.write(octal(0, 8), 116, 'latin1');
  b.write(octal(e.size ?? size, 12), 124, 'latin1');
  b.write(octal(1_700_000_000, 12), 136, 'latin1');
  b.write(e.type ?? '0', 156, 'latin1');
  if (e.link) b.write(e.link, 157, 100, 'latin1');
  const magic = e.magic ?? 'gnu';
  if (magic === 'posix') b.write('ustar\u000000', 257, 'latin1');
  if (magic === 'gnu') b.write('ustar  \u0000', 257, 'latin1');
  if (e.prefix) b.write(e.prefix, 345, 155, 'latin1');
  b.fill(0x20, 148, 156);
  let sum = 0;
  for (const c of b) sum += c;
  b.write(octal(sum + (e.badChecksum ? 1 : 0), 7), 148, 'latin1');
  return b;
}

const pad = (data: Buffer) => Buffer.concat([data, Buffer.alloc((512 - (data.length % 512)) % 512)]);

/** One member: its header and its data, padded to blocks. */
export function member(e: Entry): Buffer {
  const data = typeof e.data === 'string' ? Buffer.from(e.data, 'latin1') : (e.data ?? Buffer.alloc(0));
  return Buffer.concat([header(e, data.length), pad(data)]);
}

/** A GNU long name ('L') or long link ('K') header before the member that uses it. */
export function gnuLong(type: 'L' | 'K', value: string): Buffer {
  return member({ name: '././@LongLink', type, data: `${value}\0` });
}

/** A pax extended header ('x'; 'g' for a global one) with these records. */
export function pax(records: Record<string, string>, type: 'x' | 'g' = 'x'): Buffer {
  const body = Object.entries(records)
    .map(([k, v]) => {
      const rest = ` ${k}=${v}\n`;
      let len = rest.length + 1;
      while (String(len).length + rest.length !== len) len = String(len).length + rest.length;
      return `${len}${rest}`;
    })
    .join('');
  return member({ name: 'PaxHeaders/x', type, data: body, magic: 'posix' });
}

/** The end of an archive as GNU tar writes it: two zero blocks (and more zeros to fill its record). */
export const END = Buffer.alloc(1024);

export function archive(...parts: Buffer[]): Buffer {
  return Buffer.concat([...parts, END]);
}
