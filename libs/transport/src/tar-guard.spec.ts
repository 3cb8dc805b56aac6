import { createHash } from 'node:crypto';
import { archive, gnuLong, header, member, pax } from '@spotlift/testing';
import { TarGuard, type TarPolicy, TarRefused } from './tar-guard.js';

const ROOT = '/srv/data/app';
const LIST = '/var/lib/spotlift/images/mig-1/file-sync/deleted';
const policy: TarPolicy = { roots: [ROOT, '/srv/data/db.sqlite'], deletionList: LIST };

/** Feeds `bytes` in chunks of `step` (1 = byte by byte); returns what was forwarded and the verdict. */
/** Forwarded bytes, shown short: how many, and a hash of them. */
const seen = (b: Buffer) => `${b.length} B ${createHash('sha1').update(b).digest('hex').slice(0, 12)}`;

function run(bytes: Buffer, step = 4096, p: TarPolicy = policy): { out: string; error?: string } {
  const guard = new TarGuard(p);
  const out: Buffer[] = [];
  try {
    for (let i = 0; i < bytes.length && !guard.refused; i += step)
      out.push(...guard.write(bytes.subarray(i, i + step)));
    guard.end();
    return { out: seen(Buffer.concat(out)) };
  } catch (error) {
    if (!(error instanceof TarRefused)) throw error;
    return { out: seen(Buffer.concat(out)), error: error.message };
  }
}

const file = (name: string, data = 'x', extra: object = {}) => member({ name, data, ...extra });
const dir = (name: string) => member({ name, type: '5' });
const symlink = (name: string, link: string) => member({ name, type: '2', link });
const hardlink = (name: string, link: string) => member({ name, type: '1', link });
const list = (...entries: string[]) => file(LIST.slice(1), entries.map((e) => `${e}\0`).join(''));

describe('TarGuard: honest archives pass unchanged', () => {
  const good: [string, Buffer][] = [
    ['files and directories under a declared path', archive(dir('srv/data/app/'), file('srv/data/app/a'))],
    ['a declared file', archive(file('srv/data/db.sqlite', 'db'))],
    ['absolute names (GNU tar strips the /)', archive(file('/srv/data/app/a'))],
    ['./ and // in names', archive(file('./srv//data/app/./a'))],
    ['a symlink inside, relative', archive(symlink('srv/data/app/cur', 'releases/v2'))],
    ['a symlink inside through ..', archive(symlink('srv/data/app/x/y', '../../app/z'))],
    ['a symlink to another declared path', archive(symlink('srv/data/app/db', '/srv/data/db.sqlite'))],
    ['a hard link inside', archive(file('srv/data/app/a'), hardlink('srv/data/app/b', 'srv/data/app/a'))],
    ['a fifo', archive(member({ name: 'srv/data/app/pipe', type: '6' }))],
    ['a setgid directory', archive(member({ name: 'srv/data/app/shared/', type: '5', mode: 0o2775 }))],
    ['a GNU long name inside', archive(gnuLong('L', `srv/data/app/${'n'.repeat(200)}`), file('././@LongLink'))],
    ['a pax path inside', archive(pax({ path: `srv/data/app/${'p'.repeat(200)}` }), file('PaxHeaders/a'))],
    ['a pax size honoured', archive(pax({ size: '600' }), file('srv/data/app/big', 'b'.repeat(600), { size: 0 }))],
    ['POSIX ustar with a prefix', archive(file('a', 'x', { magic: 'posix', prefix: 'srv/data/app/deep' }))],
    ['the deletion list', archive(file('srv/data/app/a'), list('srv/data/app/gone', 'srv/data/app/old/x'))],
    ['an empty deletion list', archive(list())],
    [
      'a file that replaces an earlier symlink',
      archive(symlink('srv/data/app/x', 'y'), dir('srv/data/app/x/'), file('srv/data/app/x/f')),
    ],
  ];

  it.each(good)('%s', (_what, bytes) => {
    for (const step of [1, 7, 512, 100_000]) expect(run(bytes, step)).toEqual({ out: seen(bytes) });
  });

  it('forwards trailing zero blocks (GNU tar fills its 10 KiB record with them)', () => {
    const bytes = Buffer.concat([archive(file('srv/data/app/a')), Buffer.alloc(8192)]);
    expect(run(bytes)).toEqual({ out: seen(bytes) });
  });
});

describe('TarGuard: hostile archives are refused at the first bad member, whose header is never forwarded', () => {
  const before = Buffer.concat([dir('srv/data/app/'), file('srv/data/app/ok')]);
  const bad: [string, Buffer, RegExp][] = [
    ['../../etc/passwd', file('../../etc/passwd'), /'\.\.'/],
    ['srv/data/app/../../etc/passwd', file('srv/data/app/../../etc/passwd'), /'\.\.'/],
    ['/etc/shadow', file('/etc/shadow'), /"\/etc\/shadow" is outside the declared paths/],
    ['etc/passwd', file('etc/passwd'), /outside the declared paths \(\/srv\/data\/app, \/srv\/data\/db.sqlite\)/],
    ['the parent of a declared path', dir('srv/data/'), /outside/],
    ['a sibling that shares a prefix', file('srv/data/app2/x'), /outside/],
    ['/ itself', dir('./'), /outside/],
    ['a symlink to /etc', symlink('srv/data/app/x', '/etc'), /symbolic link to "\/etc", outside/],
    ['a relative symlink out', symlink('srv/data/app/x', '../../../etc'), /outside/],
    ['a symlink above /', symlink('srv/data/app/x', '../../../../../etc'), /above \//],
    ['a symlink to the declared path parent', symlink('srv/data/app/x', '..'), /outside/],
    ['a hard link to /etc/shadow', hardlink('srv/data/app/h', 'etc/shadow'), /hard link to "etc\/shadow", outside/],
    ['a hard link to /etc/shadow, absolute', hardlink('srv/data/app/h', '/etc/shadow'), /outside/],
    ['a hard link with ..', hardlink('srv/data/app/h', 'srv/data/app/../../../etc/shadow'), /'\.\.'/],
    [
      'a pax path outside',
      Buffer.concat([pax({ path: 'etc/cron.d/evil' }), file('srv/data/app/decoy')]),
      /"etc\/cron.d\/evil" is outside/,
    ],
    ['a pax linkpath outside', Buffer.concat([pax({ linkpath: '/etc' }), symlink('srv/data/app/x', 'ok')]), /outside/],
    [
      'a GNU long name outside',
      Buffer.concat([gnuLong('L', `etc/${'x'.repeat(150)}`), file('srv/data/app/decoy')]),
      /outside/,
    ],
    [
      'a GNU long link outside',
      Buffer.concat([gnuLong('K', '/root/.ssh'), symlink('srv/data/app/k', 'ok')]),
      /outside/,
    ],
    ['a POSIX prefix outside', file('passwd', 'x', { magic: 'posix', prefix: 'etc' }), /"etc\/passwd" is outside/],
    ['a char device', member({ name: 'srv/data/app/mem', type: '3' }), /device node/],
    ['a block device', member({ name: 'srv/data/app/sda', type: '4' }), /device node/],
    ['a setuid file', file('srv/data/app/sh', 'ELF', { mode: 0o4755 }), /setuid/],
    ['a setgid file', file('srv/data/app/sh', 'ELF', { mode: 0o2755 }), /setuid/],
    ['a global pax header', Buffer.concat([pax({ path: 'etc/x' }, 'g'), file('srv/data/app/a')]), /type 'g'/],
    ['a sparse file', member({ name: 'srv/data/app/s', type: 'S' }), /type 'S'/],
    ['a pax sparse map', Buffer.concat([pax({ 'GNU.sparse.map': '0,1' }), file('srv/data/app/a')]), /GNU.sparse/],
    ['a bad checksum', file('srv/data/app/a', 'x', { badChecksum: true }), /bad checksum/],
    ['a V7 header', file('srv/data/app/a', 'x', { magic: 'v7' }), /not ustar or GNU/],
    [
      'a directory hiding data',
      member({ name: 'srv/data/app/d/', type: '5', data: header({ name: 'etc/passwd' }, 1) }),
      /carries data/,
    ],
    ['a symlink hiding data', member({ name: 'srv/data/app/l', type: '2', link: 'a', data: 'x' }), /link with a size/],
    ['a file named like a directory', file('srv/data/app/d/', 'x'), /ends in \//],
    [
      'a long name and a pax path at once',
      Buffer.concat([gnuLong('L', 'srv/data/app/a'), pax({ path: 'srv/data/app/b' }), file('c')]),
      /both/,
    ],
    ['two long names', Buffer.concat([gnuLong('L', 'srv/data/app/a'), gnuLong('L', 'etc/b'), file('c')]), /two 'L'/],
  ];

  it.each(bad)('%s', (_what, hostile, why) => {
    const bytes = archive(before, hostile, file('srv/data/app/after'));
    for (const step of [1, 512, 100_000]) {
      const r = run(bytes, step);
      expect(r.error).toMatch(why);
      expect(r.out).toBe(seen(before));
    }
  });

  it('a symlink inside, then a member through it (onto /etc on a destination whose copy points there)', () => {
    const r = run(archive(symlink('srv/data/app/x', 'sub'), file('srv/data/app/x/passwd')));
    expect(r.error).toMatch(/passes through the symbolic link "srv\/data\/app\/x"/);
    expect(r.out).toBe(seen(symlink('srv/data/app/x', 'sub')));
  });

  it('a symlink to /etc, then a member through it: refused at the symlink already', () => {
    const r = run(archive(symlink('srv/data/app/x', '/etc'), file('srv/data/app/x/passwd')));
    expect(r.error).toMatch(/symbolic link to "\/etc"/);
    expect(r.out).toBe(seen(Buffer.alloc(0)));
  });

  it('a hard link through a symlink of the archive', () => {
    const r = run(archive(symlink('srv/data/app/x', 'sub'), hardlink('srv/data/app/h', 'srv/data/app/x/f')));
    expect(r.error).toMatch(/passes through the symbolic link/);
  });

  it('a symlink whose target passes through a symlink of the archive', () => {
    const r = run(archive(symlink('srv/data/app/x', 'sub'), symlink('srv/data/app/y', 'x/../../../etc')));
    expect(r.error).toMatch(/through a symbolic link of this archive/);
  });

  it('data after the end-of-archive block', () => {
    const bytes = Buffer.concat([archive(file('srv/data/app/a')), file('etc/passwd')]);
    const r = run(bytes);
    expect(r.error).toMatch(/after the end-of-archive/);
    expect(r.out).toBe(seen(Buffer.concat([file('srv/data/app/a'), Buffer.alloc(512)])));
  });

  it('an archive that stops inside a member, or before its end block', () => {
    const whole = file('srv/data/app/a', 'y'.repeat(2000));
    expect(run(whole.subarray(0, 1000)).error).toMatch(/inside a member/);
    expect(run(whole).error).toMatch(/without its end-of-archive block/);
  });

  it('a header held back is not forwarded even when the stream stops right after it', () => {
    const r = run(Buffer.concat([file('srv/data/app/a'), gnuLong('L', 'srv/data/app/b')]));
    expect(r.error).toMatch(/inside a member/);
    expect(r.out).toBe(seen(file('srv/data/app/a')));
  });
});

describe('TarGuard: the deletion list', () => {
  const bad: [string, Buffer, RegExp][] = [
    ['/etc/passwd', list('srv/data/app/ok', '/etc/passwd'), /deletion of "\/etc\/passwd" is outside/],
    ['srv/data/app/../../etc', list('srv/data/app/../../etc'), /'\.\.'/],
    ['an empty entry', file(LIST.slice(1), 'srv/data/app/a\0\0'), /empty name/],
    ['not NUL-terminated', file(LIST.slice(1), 'srv/data/app/a'), /NUL-terminated/],
    ['a symlink at its name', symlink(LIST.slice(1), 'x'), /not a file/],
  ];

  it.each(bad)('%s: nothing of the list is forwarded', (_what, hostile, why) => {
    const r = run(archive(file('srv/data/app/a'), hostile));
    expect(r.error).toMatch(why);
    expect(r.out).toBe(seen(file('srv/data/app/a')));
  });

  it('is bounded in entries and bytes', () => {
    const p = { ...policy, maxDeletions: 2, maxDeletionBytes: 64 };
    expect(run(archive(list('srv/data/app/a', 'srv/data/app/b')), 4096, p).error).toBeUndefined();
    expect(run(archive(list('srv/data/app/a', 'srv/data/app/b', 'srv/data/app/c')), 4096, p).error).toMatch(
      /over 2 entries/,
    );
    expect(run(archive(list(`srv/data/app/${'l'.repeat(60)}`)), 4096, p).error).toMatch(/over 64 bytes/);
  });

  it('is an ordinary outside member where no deletion list is expected (a checkpoint)', () => {
    expect(run(archive(list('srv/data/app/a')), 4096, { roots: [ROOT] }).error).toMatch(/outside/);
  });

  it('refuses a policy whose deletion list lies under a declared path', () => {
    expect(() => new TarGuard({ roots: ['/var/lib'], deletionList: LIST })).toThrow(/under a declared path/);
  });
});

describe('TarGuard with a member judge (an archive read, not unpacked at /)', () => {
  it('shows the judge every member the format checks passed, without roots; its refusal stops the stream there', () => {
    const names: string[] = [];
    const judge = (m: { name: string; type: string; parts: readonly string[] }) => {
      names.push(`${m.type}:${m.parts.join('/')}`);
      if (m.type === '2') throw new TarRefused(`${m.name} is a link`);
    };
    const ok = archive(dir('checkpoint/'), file('./checkpoint/core-1.img'), file('config.dump'));
    expect(run(ok, 512, { roots: [], judge })).toEqual({ out: seen(ok) });
    expect(names).toEqual(['5:checkpoint', '0:checkpoint/core-1.img', '0:config.dump']);
    names.length = 0;
    const head = file('config.dump');
    const bad = run(archive(head, symlink('checkpoint/x', '/etc'), file('after')), 512, { roots: [], judge });
    expect(bad).toEqual({ out: seen(head), error: 'checkpoint/x is a link' });
    // The format checks come first: a device is refused before the judge sees it.
    expect(run(archive(member({ name: 'dev/x', type: '3' })), 512, { roots: [], judge }).error).toMatch(/device/);
    expect(names).toEqual(['0:config.dump', '2:checkpoint/x']);
  });
});
