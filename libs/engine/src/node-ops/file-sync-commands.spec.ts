import {
  checkDeclaredPath,
  onSharedStorage,
  outermostPaths,
  diskShortfalls,
  parseFreeSpace,
  parseInspect,
  ROUND_SUMMARY,
  sendRound,
} from './file-sync-commands.js';

describe('checkDeclaredPath', () => {
  it.each([
    ['/srv/data', undefined],
    ['/srv/data/app', undefined],
    ['/var/lib/app/db-1.sqlite', undefined],
    ['/var/tmp/app', undefined],
    ['/home/u/@work+x=1,y~z', undefined],
    ['/opt/app', undefined],
    ['/tmp/app', undefined],
    ['/data/app', undefined],
    ['/library/x', undefined], // starts like /lib, is not
    ['/etcetera/x', undefined],
    ['/var/lib/spotlifted/x', undefined],
  ])('accepts %s', (path, problem) => expect(checkDeclaredPath(path)).toBe(problem));

  it.each([
    ['srv/data', /not an absolute path/],
    ['/', /not an absolute path/],
    ['/srv/data/', /not an absolute path/],
    ['/srv//data', /not an absolute path/],
    ['/srv/data/../etc', /has \. or \.\./],
    ['/srv/./data', /has \. or \.\./],
    ['/srv/da ta', /not an absolute path/],
    ['/srv/$(reboot)', /not an absolute path/],
    ["/srv/it's", /not an absolute path/],
    ['/srv/new\nline', /not an absolute path/],
    ['/proc/self/fd', /kernel file system/],
    ['/sys', /kernel file system/],
    ['/dev/shm/x', /kernel file system/],
    ['/run/app.sock', /kernel file system/],
    // system trees and everything in them
    ['/etc', /is in \/etc /],
    ['/etc/ssh', /is in \/etc /],
    ['/usr/local/app', /is in \/usr /],
    ['/bin', /is in \/bin /],
    ['/sbin/x', /is in \/sbin /],
    ['/lib', /\/lib\*/],
    ['/lib64/x', /\/lib\*/],
    ['/libx32', /\/lib\*/],
    ['/boot/grub', /is in \/boot /],
    ['/root', /is in \/root /],
    ['/root/.ssh', /is in \/root /],
    ['/var/lib/spotlift', /is in \/var\/lib\/spotlift /],
    ['/var/lib/spotlift/images/x', /is in \/var\/lib\/spotlift /],
    ['/var/lib/spotlift/home', /is in \/var\/lib\/spotlift /],
    ['/var/spool/cron/crontabs', /is in \/var\/spool\/cron /],
    // what would hold one
    ['/var', /holds \/var\/lib\/spotlift/],
    ['/var/lib', /holds \/var\/lib\/spotlift/],
    ['/var/spool', /holds \/var\/spool\/cron/],
    // too close to /
    ['/home', /too close to \//],
    ['/home/alice', /too close to \/ .*two levels below \/home or \/var/],
    ['/var/log', /too close to \//],
    ['/var/tmp', /too close to \//],
    ['/opt', /too close to \//],
    ['/srv', /too close to \//],
    ['/tmp', /too close to \//],
    ['/data', /too close to \//],
    // login keys anywhere
    ['/home/alice/.ssh', /login keys/],
    ['/srv/app/.ssh/authorized_keys', /login keys/],
  ])('refuses %j', (path, why) => expect(checkDeclaredPath(path)).toMatch(why));

  it.each([
    ['/srv/spotlift/images', /is in \/srv\/spotlift\/images /],
    ['/srv/spotlift/images/mig-1', /is in \/srv\/spotlift\/images /],
    ['/srv/spotlift', /holds \/srv\/spotlift\/images/],
    ['/home/ops/app', /is in \/home\/ops /],
  ])('refuses %j under a configured root or the SSH login home', (path, why) =>
    expect(checkDeclaredPath(path, ['/srv/spotlift/images/', '/home/ops'])).toMatch(why),
  );

  it('does not mistake a name that starts like a kernel file system for one', () => {
    expect(checkDeclaredPath('/process/data')).toBeUndefined();
    expect(checkDeclaredPath('/runner/x')).toBeUndefined();
  });
});

describe('outermostPaths', () => {
  it.each([
    [['/a/b', '/a'], ['/a']],
    [['/a', '/a'], ['/a']],
    [
      ['/ab', '/a'],
      ['/a', '/ab'],
    ],
    [
      ['/srv/x/y', '/srv/x', '/srv/z'],
      ['/srv/x', '/srv/z'],
    ],
    [[], []],
  ])('%j -> %j', (given, expected) => expect(outermostPaths(given)).toEqual(expected));
});

describe('onSharedStorage', () => {
  const nfs = (paths: string[]) => ({ group: 'nfs-1', paths });
  it.each([
    ['/mnt/nfs/app', nfs(['/mnt/nfs']), nfs(['/mnt/nfs']), true],
    ['/mnt/nfs', nfs(['/mnt/nfs/']), nfs(['/mnt/nfs']), true],
    ['/mnt/nfsx/app', nfs(['/mnt/nfs']), nfs(['/mnt/nfs']), false], // a prefix of the name, not a parent
    ['/mnt/nfs/app', nfs(['/mnt/nfs']), { group: 'nfs-2', paths: ['/mnt/nfs'] }, false],
    ['/mnt/nfs/app', nfs(['/mnt/nfs']), nfs(['/srv']), false], // mounted elsewhere on the destination
    ['/mnt/nfs/app', nfs(['/mnt/nfs']), undefined, false],
    ['/mnt/nfs/app', undefined, undefined, false],
  ])('%s between %j and %j: %s', (path, a, b, shared) => expect(onSharedStorage(path, a, b)).toBe(shared));
});

describe('sendRound', () => {
  it('quotes the declared paths and fails a frozen round on any tar warning, a running one only on errors', () => {
    const running = sendRound('/var/lib/spotlift/images/m1/src', ['/srv/data', '/opt/my app'], { final: false });
    expect(running).toContain("find srv/data 'opt/my app' -print0 > /var/lib/spotlift/images/m1/src/file-sync/found");
    expect(running.trim().split('\n').pop()).toBe('[ $rc -le 1 ]');
    const final = sendRound('/var/lib/spotlift/images/m1/src', ['/srv/data'], { final: true });
    expect(final.trim().split('\n').pop()).toBe('[ $rc -eq 0 ]');
  });

  it('announces its counts in a line the engine reads', () => {
    expect(
      ROUND_SUMMARY.exec('tar: x: file changed as we read it\nSPOTLIFT_FILES sent=12 deleted=3\n')?.slice(1),
    ).toEqual(['12', '3']);
  });
});

describe('parseInspect', () => {
  it('lists missing paths and the size of each present one (names with blanks kept whole)', () => {
    const { missing, kib } = parseInspect('MISSING\t/srv/a\nSIZE\t2048\t/srv/b c\nSIZE\t\t/srv/d\n');
    expect(missing).toEqual(['/srv/a']);
    expect([...kib]).toEqual([
      ['/srv/b c', 2048],
      ['/srv/d', 0], // du printed nothing: counted as empty
    ]);
  });
});

describe('parseFreeSpace and diskShortfalls', () => {
  const space = parseFreeSpace(
    'FREE\t1000\t/srv\t0\t/srv/a\nFREE\t1000\t/srv\t300\t/srv/b\nFREE\t50\t/var\t0\t/var/lib/x y\nnoise\n',
  );
  it('reads each path with its file system, free and held KiB', () => {
    expect(space).toEqual([
      { availKib: 1000, mount: '/srv', heldKib: 0, path: '/srv/a' },
      { availKib: 1000, mount: '/srv', heldKib: 300, path: '/srv/b' },
      { availKib: 50, mount: '/var', heldKib: 0, path: '/var/lib/x y' },
    ]);
  });
  it.each([
    [
      'everything fits',
      [
        ['/srv/a', 600],
        ['/srv/b', 600],
        ['/var/lib/x y', 50],
      ],
      [],
    ],
    // paths on one file system add up: 700 + (900 - 300 held) > 1000
    [
      'one file system short',
      [
        ['/srv/a', 700],
        ['/srv/b', 900],
        ['/var/lib/x y', 10],
      ],
      [{ mount: '/srv', paths: ['/srv/a', '/srv/b'], needKib: 1300, availKib: 1000 }],
    ],
    [
      'a copy smaller than what is held needs nothing',
      [
        ['/srv/a', 0],
        ['/srv/b', 100],
        ['/var/lib/x y', 51],
      ],
      [{ mount: '/var', paths: ['/var/lib/x y'], needKib: 51, availKib: 50 }],
    ],
  ])('%s', (_, sizes, want) => {
    expect(diskShortfalls(new Map(sizes as [string, number][]), space)).toEqual(want);
  });
});
