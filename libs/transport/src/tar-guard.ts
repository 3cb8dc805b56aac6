/**
 * Validates a tar stream as it passes through the orchestrator, before the bytes reach the node that unpacks
 * it at `/` as root. A source node is trusted with its own workload's files only: every member must land under
 * one of the workload's declared paths. The guard forwards the bytes unchanged (the end-to-end sha256 still
 * matches), but holds back each member's headers (GNU long names `L`/`K`, pax `x`, the ustar header) until the
 * member is judged, so a refused member never reaches the destination, not even its header.
 *
 * Why not `tar-stream`: it re-emits parsed entries, not the raw bytes with their offsets, and tolerates
 * what it does not understand. Here anything this parser cannot read exactly as GNU tar reads it is refused:
 * bad checksums (GNU tar would skip ahead looking for a header), other formats than ustar/GNU, sizes on
 * entries that carry no data, global pax headers, sparse files, anything after the end-of-archive block.
 * A real sender (GNU or busybox tar) never produces these.
 */

export class TarRefused extends Error {}

/** One member as the guard read it (for a policy that judges members itself). */
export interface TarMember {
  /** '0' file, '5' directory, '2' symlink, '1' hard link... (ustar typeflag). */
  type: string;
  /** The name as stored in the archive (what `tar -x` is given to pick it). */
  name: string;
  /** The name as tar resolves it: leading `/`, empty and `.` components dropped; never holds `..`. */
  parts: readonly string[];
  link: string;
  mode: number;
  size: number;
}

export interface TarPolicy {
  /** Absolute, normalised declared paths: every member is one of them or under one. */
  roots: readonly string[];
  /**
   * Instead of `roots`: an archive that is read or picked from, never unpacked at / (a container checkpoint's
   * export). Called for each member that passed the format checks (no device, no `..`); throws TarRefused to
   * refuse the archive. `roots` is then unused (may be empty).
   */
  judge?: (member: TarMember) => void;
  /**
   * Absolute path of the one member allowed outside the roots: the file sync's list of entries that went away
   * (NUL-separated names, each under a root). It is held back whole and forwarded only once every entry passed.
   */
  deletionList?: string;
  /** Bounds of the deletion list (default 16 MiB, 200,000 entries). */
  maxDeletionBytes?: number;
  maxDeletions?: number;
}

const BLOCK = 512;
const MAX_LONG_NAME = 64 * 1024; // GNU L / K data
const MAX_PAX = 1024 * 1024;
const DEFAULT_MAX_DELETION_BYTES = 16 * 1024 * 1024;
const DEFAULT_MAX_DELETIONS = 200_000;

/** Files ('0', NUL, '7' contiguous), hard and symbolic links, directories, fifos. */
const MEMBER_TYPES = new Set(['0', '\0', '7', '1', '2', '5', '6']);

const padded = (n: number) => Math.ceil(n / BLOCK) * BLOCK;
/** Bytes as GNU tar sees them: names are byte strings, latin1 keeps every byte as one char. */
const bytes = (b: Buffer, from: number, to: number) => {
  const s = b.subarray(from, to);
  const nul = s.indexOf(0);
  return s.subarray(0, nul < 0 ? s.length : nul).toString('latin1');
};
const shown = (s: string) => JSON.stringify(Buffer.from(s, 'latin1').toString('utf8'));

/** Octal (GNU tar allows surrounding blanks and NULs) or base-256 (first byte 0x80) numeric field. */
function numeric(b: Buffer, from: number, len: number, what: string): number {
  if (b[from] === 0x80) {
    let n = 0n;
    for (let i = from + 1; i < from + len; i++) n = (n << 8n) | BigInt(b[i]!);
    if (n > BigInt(Number.MAX_SAFE_INTEGER)) throw new TarRefused(`${what} too large`);
    return Number(n);
  }
  const text = b
    .subarray(from, from + len)
    .toString('latin1')
    .replace(/^[ \0]+|[ \0]+$/g, '');
  if (!/^[0-7]*$/.test(text)) throw new TarRefused(`${what} is not a number`);
  return text ? parseInt(text, 8) : 0;
}

function checksumOk(b: Buffer): boolean {
  const want = numeric(b, 148, 8, 'header checksum');
  let unsigned = 0;
  let signed = 0;
  for (let i = 0; i < BLOCK; i++) {
    const v = i >= 148 && i < 156 ? 0x20 : b[i]!;
    unsigned += v;
    signed += v > 127 ? v - 256 : v;
  }
  return want === unsigned || want === signed;
}

/**
 * A member name as the kernel will resolve it under `tar -C /`: leading `/` stripped (as GNU tar does), empty
 * and `.` components dropped. `..` anywhere is refused (GNU tar skips such members; busybox does not).
 */
export function memberComponents(name: string, what = 'member'): string[] {
  if (!name) throw new TarRefused(`${what} has an empty name`);
  const parts = name.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.includes('..')) throw new TarRefused(`${what} ${shown(name)} has '..' in it`);
  return parts;
}

const under = (parts: readonly string[], root: readonly string[]) =>
  parts.length >= root.length && root.every((c, i) => parts[i] === c);

/** pax extended header records: `LEN key=value\n`, LEN counting the whole record. */
function paxRecords(data: Buffer): Map<string, string> {
  const out = new Map<string, string>();
  let pos = 0;
  while (pos < data.length) {
    if (data[pos] === 0) {
      if (data.subarray(pos).every((c) => c === 0)) break; // padding
      throw new TarRefused('malformed pax header');
    }
    const space = data.indexOf(0x20, pos);
    const len = Number(data.subarray(pos, space).toString('latin1'));
    if (space < 0 || !Number.isInteger(len) || len <= space - pos + 1 || pos + len > data.length)
      throw new TarRefused('malformed pax header');
    const record = data.subarray(space + 1, pos + len);
    if (record[record.length - 1] !== 0x0a) throw new TarRefused('malformed pax header');
    const eq = record.indexOf(0x3d);
    if (eq <= 0) throw new TarRefused('malformed pax header');
    const key = record.subarray(0, eq).toString('latin1');
    const value = record.subarray(eq + 1, record.length - 1);
    if (value.includes(0)) throw new TarRefused(`pax ${key} holds a NUL byte`);
    // These change what and how much follows; GNU tar and this parser could disagree on them.
    if (key.startsWith('GNU.sparse') || key === 'GNU.dumpdir' || key.startsWith('GNU.volume'))
      throw new TarRefused(`pax header ${key} is not accepted`);
    out.set(key, value.toString('latin1'));
    pos += len;
  }
  return out;
}

type State =
  | { kind: 'header' }
  | { kind: 'meta'; type: 'L' | 'K' | 'x'; size: number }
  | { kind: 'data'; left: number }
  | { kind: 'list'; size: number; name: string }
  | { kind: 'end' };

/**
 * Feed it the stream chunk by chunk: write() returns what may be forwarded now (possibly nothing, while a
 * header is held back). On the first member it refuses it still returns what came before that member, and
 * sets `refused`; from then on write() and end() throw it. end() also throws unless the archive ended
 * properly. Held-back headers of a refused member are never returned.
 */
export class TarGuard {
  private readonly roots: string[][];
  private readonly rootsShown: string;
  private readonly deletionList?: string[];
  private readonly maxDeletionBytes: number;
  private readonly maxDeletions: number;
  private readonly custom?: (member: TarMember) => void;
  /** Symbolic links this archive created: no later member or link may pass through one. */
  private readonly symlinks = new Set<string>();
  private state: State = { kind: 'header' };
  private pending: Buffer = Buffer.alloc(0);
  /** Chunks waiting until the block being read is complete (all of `pending` then, in order). */
  private gathering: Buffer[] = [];
  private gathered = 0;
  /** Header blocks (and meta data) of the member being read, held back until it is judged. */
  private held: Buffer[] = [];
  private longName?: string;
  private longLink?: string;
  private pax?: Map<string, string>;
  private count = 0;
  /** Why the stream was refused, once it was. */
  refused?: TarRefused;

  constructor(policy: TarPolicy) {
    if (policy.judge) this.custom = policy.judge;
    else if (!policy.roots.length) throw new Error('a tar guard needs at least one declared path');
    this.roots = policy.roots.map((r) => memberComponents(r, 'declared path'));
    if (this.roots.some((r) => !r.length)) throw new Error('/ cannot be a declared path');
    this.rootsShown = policy.roots.join(', ');
    if (policy.deletionList) {
      this.deletionList = memberComponents(policy.deletionList, 'deletion list');
      if (this.underRoot(this.deletionList))
        throw new Error(`the deletion list ${policy.deletionList} lies under a declared path`);
    }
    this.maxDeletionBytes = policy.maxDeletionBytes ?? DEFAULT_MAX_DELETION_BYTES;
    this.maxDeletions = policy.maxDeletions ?? DEFAULT_MAX_DELETIONS;
  }

  /** Members passed so far. */
  get members(): number {
    return this.count;
  }

  write(chunk: Buffer): Buffer[] {
    if (this.refused) throw this.refused;
    const out: Buffer[] = [];
    try {
      this.parse(chunk, out);
    } catch (error) {
      if (!(error instanceof TarRefused)) throw error;
      this.refused = error;
    }
    return out;
  }

  private parse(chunk: Buffer, out: Buffer[]): void {
    // A block or a held-back deletion list gathers over many chunks: copy them together once it is complete.
    const s = this.state;
    const need = s.kind === 'header' ? BLOCK : s.kind === 'meta' || s.kind === 'list' ? padded(s.size) : 0;
    if (this.gathered + chunk.length < need) {
      this.gathering.push(chunk);
      this.gathered += chunk.length;
      return;
    }
    this.pending = this.gathering.length ? Buffer.concat([...this.gathering, chunk]) : chunk;
    this.gathering = [];
    this.gathered = 0;
    for (;;) {
      const s = this.state;
      if (s.kind === 'data') {
        if (!this.pending.length) break;
        const n = Math.min(s.left, this.pending.length);
        out.push(this.pending.subarray(0, n));
        this.pending = this.pending.subarray(n);
        s.left -= n;
        if (!s.left) this.state = { kind: 'header' };
        continue;
      }
      if (s.kind === 'end') {
        if (!this.pending.every((c) => c === 0)) throw new TarRefused('data after the end-of-archive block');
        out.push(this.pending);
        this.pending = Buffer.alloc(0);
        break;
      }
      const need = s.kind === 'header' ? BLOCK : padded(s.size);
      if (this.pending.length < need) {
        this.gathering = [this.pending];
        this.gathered = this.pending.length;
        this.pending = Buffer.alloc(0);
        break;
      }
      const block = this.pending.subarray(0, need);
      this.pending = this.pending.subarray(need);
      if (s.kind === 'header') out.push(...this.header(block));
      else if (s.kind === 'meta') this.meta(s.type, block.subarray(0, s.size), block);
      else {
        this.checkDeletionList(block.subarray(0, s.size), s.name);
        out.push(...this.held, block);
        this.held = [];
        this.state = { kind: 'header' };
      }
    }
  }

  end(): void {
    if (this.refused) throw this.refused;
    if (this.state.kind !== 'end')
      throw new TarRefused(
        this.state.kind === 'header' && !this.held.length && !this.gathered
          ? 'the archive ended without its end-of-archive block'
          : 'the archive ended inside a member',
      );
  }

  private header(block: Buffer): Buffer[] {
    if (block.every((c) => c === 0)) {
      if (this.held.length) throw new TarRefused('a long-name or pax header with no member after it');
      this.state = { kind: 'end' };
      return [block];
    }
    if (!checksumOk(block)) throw new TarRefused(`the header after member ${this.count} has a bad checksum`);
    const magic = block.subarray(257, 265).toString('latin1');
    const posix = magic === 'ustar\u000000';
    if (!posix && magic !== 'ustar  \u0000')
      throw new TarRefused(`the header after member ${this.count} is not ustar or GNU tar`);
    const type = String.fromCharCode(block[156]!);
    const size = numeric(block, 124, 12, 'size');
    if (type === 'L' || type === 'K' || type === 'x') {
      const already = type === 'L' ? this.longName : type === 'K' ? this.longLink : this.pax;
      if (already !== undefined) throw new TarRefused(`two '${type}' headers for one member`);
      if (size > (type === 'x' ? MAX_PAX : MAX_LONG_NAME)) throw new TarRefused(`'${type}' header too large`);
      this.held.push(block);
      this.state = size ? { kind: 'meta', type, size } : { kind: 'header' };
      if (!size) this.meta(type, Buffer.alloc(0), Buffer.alloc(0));
      return [];
    }
    const prefix = posix ? bytes(block, 345, 500) : '';
    const plain = bytes(block, 0, 100);
    if (this.longName !== undefined && this.pax?.has('path'))
      throw new TarRefused('a member with both a GNU long name and a pax path');
    const name = this.pax?.get('path') ?? this.longName ?? (prefix ? `${prefix}/${plain}` : plain);
    const link = this.pax?.get('linkpath') ?? this.longLink ?? bytes(block, 157, 257);
    const paxSize = this.pax?.get('size');
    if (paxSize !== undefined && !/^\d+$/.test(paxSize)) throw new TarRefused('pax size is not a number');
    const dataSize = paxSize !== undefined ? Number(paxSize) : size;
    const mode = numeric(block, 100, 8, 'mode');
    this.longName = this.longLink = this.pax = undefined;
    const held = [...this.held, block];
    this.held = [];
    const listed = this.judge(type, name, link, mode, dataSize);
    this.count++;
    if (listed) {
      // the deletion list: held back with its content until every entry passed
      this.held = held;
      this.state = { kind: 'list', size: dataSize, name };
      if (!dataSize) {
        this.checkDeletionList(Buffer.alloc(0), name);
        this.held = [];
        this.state = { kind: 'header' };
        return held;
      }
      return [];
    }
    this.state = dataSize ? { kind: 'data', left: padded(dataSize) } : { kind: 'header' };
    return held;
  }

  private meta(type: 'L' | 'K' | 'x', data: Buffer, raw: Buffer): void {
    if (raw.length) this.held.push(raw);
    if (type === 'x') this.pax = paxRecords(data);
    else {
      const nul = data.indexOf(0);
      const value = data.subarray(0, nul < 0 ? data.length : nul).toString('latin1');
      if (type === 'L') this.longName = value;
      else this.longLink = value;
    }
    this.state = { kind: 'header' };
  }

  /** Throws unless the member may be unpacked; true for the deletion list. */
  private judge(type: string, name: string, link: string, mode: number, size: number): boolean {
    const what = `member ${shown(name)}`;
    if (type === '3' || type === '4') throw new TarRefused(`${what} is a device node`);
    if (!MEMBER_TYPES.has(type)) throw new TarRefused(`${what} has type '${type}', which is not accepted`);
    const parts = memberComponents(name);
    if (this.custom) {
      this.custom({ type, name, parts, link, mode, size });
      return false;
    }
    const key = parts.join('/');
    if (this.deletionList && key === this.deletionList.join('/')) {
      if (type !== '0' && type !== '\0') throw new TarRefused(`the deletion list ${shown(name)} is not a file`);
      if (size > this.maxDeletionBytes)
        throw new TarRefused(`the deletion list is over ${this.maxDeletionBytes} bytes`);
      return true;
    }
    if (!this.underRoot(parts)) throw new TarRefused(`${what} is outside the declared paths (${this.rootsShown})`);
    this.notThroughSymlink(parts, what);
    if (name.endsWith('/') && type !== '5') throw new TarRefused(`${what} ends in / but is not a directory`);
    switch (type) {
      case '0':
      case '\0':
      case '7':
        if (mode & 0o6000) throw new TarRefused(`${what} is a setuid/setgid file`);
        this.symlinks.delete(key);
        return false;
      case '5':
      case '6':
        break;
      case '1': {
        const target = memberComponents(link, `hard link ${what} to`);
        if (!this.underRoot(target))
          throw new TarRefused(`${what} is a hard link to ${shown(link)}, outside the declared paths`);
        this.notThroughSymlink(target, `hard link ${what} to ${shown(link)}`);
        break;
      }
      case '2':
        this.checkSymlink(parts, link, what);
        if (size) throw new TarRefused(`${what} is a link with a size`);
        this.symlinks.add(key);
        return false;
    }
    if (size) throw new TarRefused(`${what} carries data it should not have (type '${type}')`);
    this.symlinks.delete(key);
    return false;
  }

  /** Resolves the link's target from its directory, lexically, refusing to leave / or pass a symlink. */
  private checkSymlink(parts: readonly string[], target: string, what: string): void {
    if (!target) throw new TarRefused(`${what} is a symbolic link with no target`);
    const at = target.startsWith('/') ? [] : parts.slice(0, -1);
    const comps = target.split('/').filter((c) => c !== '' && c !== '.');
    comps.forEach((c, i) => {
      if (c === '..') {
        if (!at.length) throw new TarRefused(`${what} links to ${shown(target)}, above /`);
        at.pop();
        return;
      }
      at.push(c);
      if (i < comps.length - 1 && this.symlinks.has(at.join('/')))
        throw new TarRefused(`${what} links to ${shown(target)} through a symbolic link of this archive`);
    });
    if (!this.underRoot(at))
      throw new TarRefused(`${what} is a symbolic link to ${shown(target)}, outside the declared paths`);
  }

  private notThroughSymlink(parts: readonly string[], what: string): void {
    for (let i = 1; i < parts.length; i++) {
      const dir = parts.slice(0, i).join('/');
      if (this.symlinks.has(dir)) throw new TarRefused(`${what} passes through the symbolic link ${shown(dir)}`);
    }
  }

  private underRoot(parts: readonly string[]): boolean {
    return this.roots.some((r) => under(parts, r));
  }

  private checkDeletionList(data: Buffer, name: string): void {
    if (!data.length) return;
    if (data[data.length - 1] !== 0) throw new TarRefused(`the deletion list ${shown(name)} is not NUL-terminated`);
    const entries = data.subarray(0, -1).toString('latin1').split('\0');
    if (entries.length > this.maxDeletions)
      throw new TarRefused(`the deletion list has over ${this.maxDeletions} entries`);
    for (const e of entries) {
      const parts = memberComponents(e, 'deletion');
      if (!this.underRoot(parts))
        throw new TarRefused(`deletion of ${shown(e)} is outside the declared paths (${this.rootsShown})`);
      this.notThroughSymlink(parts, `deletion of ${shown(e)}`);
    }
  }
}
