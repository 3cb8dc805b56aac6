import {
  checkArgv,
  cpuinfoCheckArgv,
  cpuinfoDumpArgv,
  criuOutputPath,
  dumpArgv,
  lazyPagesArgv,
  pageServerArgv,
  preDumpArgv,
  restoreArgv,
  versionArgv,
} from './argv.js';
import { CriuArgError } from './errors.js';

const TLS = { cacert: '/etc/spotlift/ca.pem', cert: '/etc/spotlift/node.pem', key: '/etc/spotlift/node.key' };
const TLS_ARGV = [
  '--tls',
  '--tls-cacert',
  '/etc/spotlift/ca.pem',
  '--tls-cert',
  '/etc/spotlift/node.pem',
  '--tls-key',
  '/etc/spotlift/node.key',
];

describe('argv builders: golden command lines', () => {
  const cases: [string, () => string[], string[]][] = [
    ['version', () => versionArgv(), ['criu', '--version']],
    ['check', () => checkArgv(), ['criu', 'check']],
    ['check --all', () => checkArgv({ all: true }), ['criu', 'check', '--all']],
    [
      'check --feature',
      () => checkArgv({ feature: 'mem_dirty_track' }),
      ['criu', 'check', '--feature', 'mem_dirty_track'],
    ],
    [
      'check --feature with dash',
      () => checkArgv({ feature: 'uffd-noncoop' }),
      ['criu', 'check', '--feature', 'uffd-noncoop'],
    ],
    [
      'page-server, daemon on a port',
      () =>
        pageServerArgv({
          imagesDir: '/var/lib/spotlift/m1/final',
          address: '10.77.0.3',
          port: 27000,
          daemon: true,
          pidfile: '/run/spotlift/m1-ps.pid',
          log: { file: 'page-server.log' },
        }),
      [
        'criu',
        'page-server',
        '-D',
        '/var/lib/spotlift/m1/final',
        '--address',
        '10.77.0.3',
        '--port',
        '27000',
        '--daemon',
        '--pidfile',
        '/run/spotlift/m1-ps.pid',
        '-o',
        'page-server.log',
        '-v4',
      ],
    ],
    [
      'page-server, everything',
      () =>
        pageServerArgv({
          imagesDir: '/img/2',
          workDir: '/work/2',
          port: 1,
          statusFd: 4,
          lazyPages: true,
          autoDedup: true,
          prevImagesDir: '../1',
          tls: { ...TLS, cacrl: '/etc/spotlift/crl.pem', noCnVerify: true },
          log: { file: '/var/log/ps.log', verbosity: 2 },
        }),
      [
        'criu',
        'page-server',
        '-D',
        '/img/2',
        '-W',
        '/work/2',
        '--port',
        '1',
        '--status-fd',
        '4',
        '--lazy-pages',
        '--auto-dedup',
        '--prev-images-dir',
        '../1',
        '--tls',
        '--tls-cacert',
        '/etc/spotlift/ca.pem',
        '--tls-cacrl',
        '/etc/spotlift/crl.pem',
        '--tls-cert',
        '/etc/spotlift/node.pem',
        '--tls-key',
        '/etc/spotlift/node.key',
        '--tls-no-cn-verify',
        '-o',
        '/var/log/ps.log',
        '-v2',
      ],
    ],
    [
      'page-server on an inherited socket',
      () => pageServerArgv({ imagesDir: '/img', psSocket: 5, daemon: true }),
      ['criu', 'page-server', '-D', '/img', '--ps-socket', '5', '--daemon'],
    ],
    ['dump, bare', () => dumpArgv({ pid: 4242, imagesDir: '/img' }), ['criu', 'dump', '-t', '4242', '-D', '/img']],
    [
      'dump, final stop-and-copy to a page-server over TLS',
      () =>
        dumpArgv({
          pid: 4242,
          imagesDir: '/var/lib/spotlift/m1/final',
          workDir: '/var/lib/spotlift/m1/work',
          leaveStopped: true,
          pageServer: { address: '10.77.0.3', port: 27000 },
          prevImagesDir: '../pre-2',
          trackMem: true,
          tcpEstablished: true,
          fileLocks: true,
          ghostLimitBytes: 268_435_456,
          linkRemap: true,
          networkLock: 'nftables',
          timeoutSec: 5,
          tls: TLS,
          shellJob: true,
          extUnixSk: true,
          displayStats: true,
          log: { file: 'dump.log' },
        }),
      [
        'criu',
        'dump',
        '-t',
        '4242',
        '-D',
        '/var/lib/spotlift/m1/final',
        '-W',
        '/var/lib/spotlift/m1/work',
        '--leave-stopped',
        '--page-server',
        '--address',
        '10.77.0.3',
        '--port',
        '27000',
        '--prev-images-dir',
        '../pre-2',
        '--track-mem',
        '--tcp-established',
        '--file-locks',
        '--ghost-limit',
        '268435456',
        '--link-remap',
        '--network-lock',
        'nftables',
        '--timeout',
        '5',
        '--shell-job',
        '--ext-unix-sk',
        ...TLS_ARGV,
        '--display-stats',
        '-o',
        'dump.log',
        '-v4',
      ],
    ],
    [
      'dump, post-copy source',
      () =>
        dumpArgv({
          pid: 7,
          imagesDir: '/img',
          leaveStopped: true,
          lazyPages: { address: '0.0.0.0', port: 27001 },
          autoDedup: true,
        }),
      [
        'criu',
        'dump',
        '-t',
        '7',
        '-D',
        '/img',
        '--leave-stopped',
        '--auto-dedup',
        '--lazy-pages',
        '--address',
        '0.0.0.0',
        '--port',
        '27001',
      ],
    ],
    [
      'dump, lazy pages on all addresses',
      () => dumpArgv({ pid: 7, imagesDir: '/img', leaveRunning: true, lazyPages: { port: 27001 } }),
      ['criu', 'dump', '-t', '7', '-D', '/img', '--leave-running', '--lazy-pages', '--port', '27001'],
    ],
    [
      'pre-dump to a page-server',
      () =>
        preDumpArgv({
          pid: 4242,
          imagesDir: '/img/2',
          pageServer: { address: 'node-b.internal', port: 27000 },
          prevImagesDir: '../1',
          trackMem: true,
          preDumpMode: 'read',
          tls: TLS,
          log: { file: 'pre-dump.log' },
        }),
      [
        'criu',
        'pre-dump',
        '-t',
        '4242',
        '-D',
        '/img/2',
        '--page-server',
        '--address',
        'node-b.internal',
        '--port',
        '27000',
        '--prev-images-dir',
        '../1',
        '--track-mem',
        '--pre-dump-mode',
        'read',
        ...TLS_ARGV,
        '-o',
        'pre-dump.log',
        '-v4',
      ],
    ],
    [
      'restore, detached with pidfile',
      () =>
        restoreArgv({
          imagesDir: '/img',
          workDir: '/work',
          detached: true,
          restoreSibling: true,
          pidfile: 'restored.pid',
          lazyPages: true,
          tcpEstablished: true,
          fileLocks: true,
          shellJob: true,
          extUnixSk: true,
          leaveStopped: true,
          displayStats: true,
          log: { file: 'restore.log' },
        }),
      [
        'criu',
        'restore',
        '-D',
        '/img',
        '-W',
        '/work',
        '--restore-detached',
        '--restore-sibling',
        '--pidfile',
        'restored.pid',
        '--lazy-pages',
        '--tcp-established',
        '--file-locks',
        '--shell-job',
        '--ext-unix-sk',
        '--leave-stopped',
        '--display-stats',
        '-o',
        'restore.log',
        '-v4',
      ],
    ],
    ['restore, bare', () => restoreArgv({ imagesDir: '/img' }), ['criu', 'restore', '-D', '/img']],
    [
      'lazy-pages from the source over TLS',
      () =>
        lazyPagesArgv({
          imagesDir: '/img',
          pageServer: { address: '10.77.0.2', port: 27001 },
          daemon: true,
          pidfile: '/run/lp.pid',
          tls: TLS,
          log: { file: 'lazy-pages.log' },
        }),
      [
        'criu',
        'lazy-pages',
        '-D',
        '/img',
        '--page-server',
        '--address',
        '10.77.0.2',
        '--port',
        '27001',
        '--daemon',
        '--pidfile',
        '/run/lp.pid',
        ...TLS_ARGV,
        '-o',
        'lazy-pages.log',
        '-v4',
      ],
    ],
    ['lazy-pages from local images', () => lazyPagesArgv({ imagesDir: '/img' }), ['criu', 'lazy-pages', '-D', '/img']],
    [
      'cpuinfo dump',
      () => cpuinfoDumpArgv({ imagesDir: '/img', log: { file: 'cpuinfo.log' } }),
      ['criu', 'cpuinfo', 'dump', '-D', '/img', '-o', 'cpuinfo.log', '-v4'],
    ],
    ['cpuinfo check', () => cpuinfoCheckArgv({ imagesDir: '/img' }), ['criu', 'cpuinfo', 'check', '-D', '/img']],
    [
      'cpuinfo check with capabilities (glued with =)',
      () => cpuinfoCheckArgv({ imagesDir: '/img', workDir: '/w', cpuCap: ['cpu', 'fpu'] }),
      ['criu', 'cpuinfo', 'check', '-D', '/img', '-W', '/w', '--cpu-cap=cpu,fpu'],
    ],
  ];

  it.each(cases)('%s', (_name, build, expected) => {
    expect(build()).toEqual(expected);
  });
});

describe('argv builders: rejected input', () => {
  const base = { pid: 100, imagesDir: '/img' };
  const cases: [string, () => unknown, RegExp][] = [
    ['pid 0', () => dumpArgv({ ...base, pid: 0 }), /pid must be a positive integer/],
    ['negative pid', () => dumpArgv({ ...base, pid: -1 }), /pid must be a positive integer/],
    ['fractional pid', () => preDumpArgv({ ...base, pid: 1.5 }), /pid must be a positive integer/],
    ['pid above PID_MAX_LIMIT', () => dumpArgv({ ...base, pid: 4_194_305 }), /no larger than 4194304/],
    ['NaN pid', () => dumpArgv({ ...base, pid: Number.NaN }), /pid must be a positive integer/],
    ['pid as string', () => dumpArgv({ ...base, pid: '100' as unknown as number }), /pid must be a positive integer/],
    [
      'port 0 (CRIU rejects it)',
      () => pageServerArgv({ imagesDir: '/img', port: 0 }),
      /port must be an integer in 1\.\.65535 \(CRIU rejects 0\)/,
    ],
    [
      'port 65536',
      () => dumpArgv({ ...base, pageServer: { address: '10.0.0.1', port: 65536 } }),
      /pageServer\.port must be an integer in 1\.\.65535/,
    ],
    ['lazy port 0', () => dumpArgv({ ...base, lazyPages: { port: 0 } }), /lazyPages\.port/],
    ['relative images dir', () => dumpArgv({ ...base, imagesDir: 'img' }), /imagesDir must be an absolute path/],
    [
      'relative work dir',
      () => restoreArgv({ imagesDir: '/img', workDir: 'work' }),
      /workDir must be an absolute path/,
    ],
    ['empty images dir', () => restoreArgv({ imagesDir: '' }), /imagesDir must be a non-empty string/],
    ['newline in a path', () => restoreArgv({ imagesDir: '/img\n--tcp-close' }), /control characters/],
    ['NUL in a path', () => restoreArgv({ imagesDir: '/img\0' }), /control characters/],
    [
      'relative TLS key',
      () => pageServerArgv({ imagesDir: '/img', port: 1, tls: { cert: '/c.pem', key: 'k.pem' } }),
      /tls\.key must be an absolute path/,
    ],
    [
      'TLS cert without key',
      () => pageServerArgv({ imagesDir: '/img', port: 1, tls: { cert: '/c.pem' } }),
      /tls\.cert and tls\.key go together/,
    ],
    [
      'unknown TLS option',
      () => pageServerArgv({ imagesDir: '/img', port: 1, tls: { ca: '/x' } as never }),
      /criu TLS has no option 'ca'/,
    ],
    [
      'log file starting with -',
      () => restoreArgv({ imagesDir: '/img', log: { file: '-v4' } }),
      /log\.file must not start with '-'/,
    ],
    [
      'pidfile starting with -',
      () => restoreArgv({ imagesDir: '/img', pidfile: '--daemon' }),
      /pidfile must not start with '-'/,
    ],
    [
      'prev images dir starting with -',
      () => preDumpArgv({ ...base, prevImagesDir: '-x' }),
      /prevImagesDir must not start with '-'/,
    ],
    [
      'verbosity 5',
      () => restoreArgv({ imagesDir: '/img', log: { file: 'r.log', verbosity: 5 as 4 } }),
      /log\.verbosity must be 0\.\.4/,
    ],
    [
      'address starting with -',
      () => dumpArgv({ ...base, pageServer: { address: '-h', port: 1 } }),
      /pageServer\.address must not start with '-'/,
    ],
    [
      'address with a space',
      () => dumpArgv({ ...base, pageServer: { address: '10.0.0.1 x', port: 1 } }),
      /must be an IP address or host name/,
    ],
    [
      'IPv6 in brackets',
      () => dumpArgv({ ...base, pageServer: { address: '[::1]', port: 1 } }),
      /must be an IP address or host name/,
    ],
    [
      'leave-stopped with leave-running',
      () => dumpArgv({ ...base, leaveStopped: true, leaveRunning: true }),
      /leaveStopped and leaveRunning exclude each other/,
    ],
    [
      'dump to a page-server and serving lazy pages',
      () => dumpArgv({ ...base, pageServer: { address: 'a', port: 1 }, lazyPages: { port: 2 } }),
      /either pageServer .* or lazyPages/,
    ],
    ['TLS without remote pages on dump', () => dumpArgv({ ...base, tls: TLS }), /tls only protects page traffic/],
    [
      'TLS without remote pages on pre-dump',
      () => preDumpArgv({ ...base, tls: TLS }),
      /tls only protects page traffic/,
    ],
    [
      'TLS without page-server on lazy-pages',
      () => lazyPagesArgv({ imagesDir: '/img', tls: TLS }),
      /tls only protects page traffic/,
    ],
    [
      'pre-dump with lazy pages (CRIU: Cannot pre-dump with --lazy-pages)',
      () => preDumpArgv({ ...base, lazyPages: true } as never),
      /Cannot pre-dump with --lazy-pages/,
    ],
    [
      'pre-dump with leave-stopped',
      () => preDumpArgv({ ...base, leaveStopped: true } as never),
      /pre-dump always leaves the tree running/,
    ],
    [
      'pre-dump-mode on dump',
      () => dumpArgv({ ...base, preDumpMode: 'read' } as never),
      /--pre-dump-mode applies to pre-dump only/,
    ],
    [
      'bad pre-dump mode',
      () => preDumpArgv({ ...base, preDumpMode: 'copy' as 'read' }),
      /preDumpMode must be 'splice' or 'read'/,
    ],
    [
      'misspelt option',
      () => dumpArgv({ ...base, leaveStoped: true } as never),
      /criu dump has no option 'leaveStoped'/,
    ],
    [
      'restore-sibling without detached (CRIU rejects it)',
      () => restoreArgv({ imagesDir: '/img', restoreSibling: true }),
      /restoreSibling only makes sense with detached/,
    ],
    [
      'restore with leaveRunning',
      () => restoreArgv({ imagesDir: '/img', leaveRunning: true } as never),
      /leaveRunning is a dump option/,
    ],
    [
      'page-server without port or socket',
      () => pageServerArgv({ imagesDir: '/img' }),
      /needs a port to listen on, or psSocket/,
    ],
    [
      'page-server socket and port',
      () => pageServerArgv({ imagesDir: '/img', psSocket: 5, port: 1 }),
      /either psSocket or address\/port/,
    ],
    [
      'page-server daemon on stdout socket (CRIU rejects it)',
      () => pageServerArgv({ imagesDir: '/img', psSocket: 1, daemon: true }),
      /CRIU closes the standard descriptors/,
    ],
    [
      'negative status fd',
      () => pageServerArgv({ imagesDir: '/img', port: 1, statusFd: -1 }),
      /statusFd must be a file descriptor number/,
    ],
    [
      'negative ps socket',
      () => pageServerArgv({ imagesDir: '/img', psSocket: -1, daemon: true }),
      /psSocket must be a file descriptor number/,
    ],
    [
      'boolean flag given as string',
      () => dumpArgv({ ...base, trackMem: 'yes' as unknown as boolean }),
      /trackMem must be true or false/,
    ],
    [
      'negative ghost limit',
      () => dumpArgv({ ...base, ghostLimitBytes: -1 }),
      /ghostLimitBytes must be a non-negative integer/,
    ],
    ['zero timeout', () => dumpArgv({ ...base, timeoutSec: 0 }), /timeoutSec must be a whole number of seconds/],
    [
      'bad network lock',
      () => dumpArgv({ ...base, networkLock: 'ebpf' as 'skip' }),
      /networkLock must be iptables, nftables or skip/,
    ],
    ['check with feature and all', () => checkArgv({ feature: 'uffd', all: true }), /either --feature or --all/],
    ['check feature with spaces', () => checkArgv({ feature: 'uffd noncoop' }), /must be a CRIU feature name/],
    ['check feature starting with -', () => checkArgv({ feature: '--all' }), /feature must not start with '-'/],
    ['cpu caps empty', () => cpuinfoCheckArgv({ imagesDir: '/img', cpuCap: [] }), /cpuCap must be a non-empty list/],
    [
      'cpu caps unknown',
      () => cpuinfoCheckArgv({ imagesDir: '/img', cpuCap: ['sse' as 'cpu'] }),
      /cpuCap must be a non-empty list/,
    ],
    [
      'cpu caps none with others',
      () => cpuinfoCheckArgv({ imagesDir: '/img', cpuCap: ['none', 'fpu'] }),
      /'none' cannot be combined/,
    ],
    ['options not an object', () => restoreArgv(null as never), /criu restore needs an options object/],
  ];

  it.each(cases)('%s', (_name, build, message) => {
    let caught: unknown;
    try {
      build();
    } catch (err) {
      caught = err;
    }
    expect(caught).toBeInstanceOf(CriuArgError);
    expect((caught as CriuArgError).code).toBe('criu_bad_argument');
    expect((caught as Error).message).toMatch(message);
  });

  it('ignores options explicitly set to undefined', () => {
    expect(dumpArgv({ ...base, leaveStopped: undefined, pageServer: undefined })).toEqual([
      'criu',
      'dump',
      '-t',
      '100',
      '-D',
      '/img',
    ]);
  });
});

describe('criuOutputPath', () => {
  it('puts stats and relative logs in the work dir when there is one', () => {
    expect(criuOutputPath({ imagesDir: '/img', workDir: '/work/' }, 'stats-dump')).toBe('/work/stats-dump');
  });
  it('falls back to the images dir', () => {
    expect(criuOutputPath({ imagesDir: '/img' }, 'restore.log')).toBe('/img/restore.log');
  });
  it('keeps absolute files as they are', () => {
    expect(criuOutputPath({ imagesDir: '/img' }, '/run/x.pid')).toBe('/run/x.pid');
  });
  it('rejects a relative base', () => {
    expect(() => criuOutputPath({ imagesDir: 'img' }, 'stats-dump')).toThrow(CriuArgError);
  });
});
