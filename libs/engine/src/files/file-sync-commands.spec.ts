import {
  checkDeclaredPath,
  onSharedStorage,
  outermostPaths,
  parseInspect,
  ROUND_SUMMARY,
  sendRound,
} from './file-sync-commands.js';

describe('checkDeclaredPath', () => {
  it.each([
    ['/srv/data', undefined],
    ['/var/lib/app/db-1.sqlite', undefined],
    ['/home/u/@work+x=1,y~z', undefined],
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
  ])('refuses %j', (path, why) => expect(checkDeclaredPath(path)).toMatch(why));

  it('does not mistake a name that starts like a kernel file system for one', () => {
    expect(checkDeclaredPath('/process/data')).toBeUndefined();
    expect(checkDeclaredPath('/runner')).toBeUndefined();
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
  it('lists missing paths and the total size', () => {
    expect(parseInspect('MISSING /srv/a\nMISSING /srv/b c\nKIB 2048\n')).toEqual({
      missing: ['/srv/a', '/srv/b c'],
      kib: 2048,
    });
  });
  it('reads a size of 0 when du printed nothing (every path missing)', () => {
    expect(parseInspect('MISSING /x\nKIB \n')).toEqual({ missing: ['/x'], kib: 0 });
  });
});
