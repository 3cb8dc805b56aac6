import { procStatLine } from '@spotlift/testing';
import { parseImageDirs, parseProcessFacts } from './sweep-commands.js';

describe('sweep command parsers (a node prints what they read)', () => {
  it('reads directories, markers, restored pids and the CRIU processes working in each', () => {
    const marker = Buffer.from('{"v":1}').toString('base64');
    const out = [
      'DIR mig-1 1796000000',
      `MARK mig-1 src ${marker}`,
      'RESTORED mig-1 5150',
      'DIR mig-2 1796000100',
      'CRIU 777 criu restore -D /img/mig-2/dst -d',
      'CRIU 778 criu dump -D /img/mig-20/src',
    ].join('\n');
    expect(parseImageDirs(out, '/img')).toEqual([
      { name: 'mig-1', mtimeMs: 1796000000000, markers: { src: '{"v":1}' }, restoredPid: 5150, criuPids: [] },
      { name: 'mig-2', mtimeMs: 1796000100000, markers: {}, criuPids: [777] },
    ]);
  });

  it.each([
    ['the parent directory', 'DIR .. 1'],
    ['the directory itself', 'DIR . 1'],
    ['a hidden name', 'DIR .ssh 1'],
    ['a path', 'DIR a/../../b 1'],
    ['a marker side that is not src or dst', 'MARK x etc e30='],
  ])('ignores %s', (_what, line) => {
    const dirs = parseImageDirs(line, '/img');
    expect(dirs.every((d) => /^[A-Za-z0-9_-]/.test(d.name) && !d.name.includes('/'))).toBe(true);
    expect(dirs.some((d) => Object.keys(d.markers).length > 0)).toBe(false);
  });

  it('reads process facts and lock states, ignoring anything else', () => {
    const stat = (pid: number, comm: string, state: string, startTime: string) =>
      Buffer.from(procStatLine({ pid, comm, state, ppid: 1, flags: 0, startTime })).toString('base64');
    const f = parseProcessFacts(
      [
        'BOOT 0f1e2d3c-aaaa-bbbb-cccc-000000000000',
        `PROC 4242 ${stat(4242, 'app', 'T', '9876')} 4026531836 123456`,
        // a name that looks like more fields and lines cannot change what is read
        `PROC 4343 ${stat(4343, 'x) R 1 2\nPROC 4242 R 1', 'S', '5555')} 4026531836 42`,
        // a stat line of another pid than the one asked for is not this process
        `PROC 4444 ${stat(17, 'other', 'R', '1')} 4026531836 1`,
        'PROC 4545  4026531836 1',
        'PROC 1 ; rm -rf /',
        "LOCK '/run/spotlift/locks/a.lock' held",
        'LOCK /run/spotlift/locks/b.lock maybe',
      ].join('\n'),
    );
    expect(f.bootId).toBe('0f1e2d3c-aaaa-bbbb-cccc-000000000000');
    expect([...f.procs.values()]).toEqual([
      { pid: 4242, state: 'T', startTime: '9876', pidNs: '4026531836', cmdline: '123456' },
      { pid: 4343, state: 'S', startTime: '5555', pidNs: '4026531836', cmdline: '42' },
    ]);
    expect([...f.locks.entries()]).toEqual([['/run/spotlift/locks/a.lock', 'held']]);
  });
});
