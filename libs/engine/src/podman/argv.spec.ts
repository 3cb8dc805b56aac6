/**
 * Golden table of the Podman argvs the engine will run: each row the exact command line, so a flag that goes
 * missing (or appears) shows here. The flags were run for real in the lab (test/podman-lab.e2e-spec.ts).
 */
import {
  PodmanArgError,
  podmanCheckpointArgv,
  podmanImageExistsArgv,
  podmanImageLoadArgv,
  podmanImageSaveArgv,
  podmanInspectArgv,
  podmanRestoreArgv,
  podmanRestoreLocalArgv,
  podmanRmArgv,
} from './index.js';

const ID = 'b2cf46b220c33e6235ff380f7bc27c522df6913fe924797ebd4981e74cf15f06';

describe('podman argv builders: golden command lines', () => {
  it.each<[string, () => string[], string]>([
    [
      'stop-and-copy checkpoint into a FIFO: plain tar, TCP, locks, stats',
      () => podmanCheckpointArgv({ container: 'web-1', export: '/run/spotlift/m1/ckpt.fifo' }),
      'podman container checkpoint --export /run/spotlift/m1/ckpt.fifo --compress none --tcp-established --file-locks --print-stats -- web-1',
    ],
    [
      'pre-copy round',
      () => podmanCheckpointArgv({ container: ID, export: '/srv/pre.tar', preCheckpoint: true }),
      `podman container checkpoint --export /srv/pre.tar --compress none --tcp-established --file-locks --print-stats --pre-checkpoint -- ${ID}`,
    ],
    [
      'final round after a pre-copy, zstd, volumes moved another way',
      () =>
        podmanCheckpointArgv({
          container: 'db',
          export: '/srv/final.tar.zst',
          withPrevious: true,
          compress: 'zstd',
          ignoreVolumes: true,
          tcpEstablished: false,
          fileLocks: false,
        }),
      'podman container checkpoint --export /srv/final.tar.zst --compress zstd --print-stats --with-previous --ignore-volumes -- db',
    ],
    [
      'checkpoint to storage: leave it running, keep logs, no stats',
      () =>
        podmanCheckpointArgv({
          container: 'db',
          export: '/srv/c.tar',
          leaveRunning: true,
          keep: true,
          printStats: false,
        }),
      'podman container checkpoint --export /srv/c.tar --compress none --tcp-established --file-locks --leave-running --keep -- db',
    ],
    [
      'restore from an imported archive',
      () => podmanRestoreArgv({ import: '/srv/data/m1/ckpt.tar' }),
      'podman container restore --import /srv/data/m1/ckpt.tar --tcp-established --file-locks --print-stats',
    ],
    [
      'restore after a pre-copy, renamed, ports remapped',
      () =>
        podmanRestoreArgv({
          import: '/srv/final.tar',
          importPrevious: '/srv/pre.tar',
          name: 'web-1.moved',
          publish: ['18080:8080', '127.0.0.1:9000:9000/udp'],
          ignoreStaticIp: true,
          ignoreStaticMac: true,
          ignoreVolumes: true,
        }),
      'podman container restore --import /srv/final.tar --import-previous /srv/pre.tar --name web-1.moved --publish 18080:8080 --publish 127.0.0.1:9000:9000/udp --tcp-established --file-locks --print-stats --ignore-volumes --ignore-static-ip --ignore-static-mac',
    ],
    [
      'rollback: restore the source from the checkpoint it kept',
      () => podmanRestoreLocalArgv({ container: 'web-1' }),
      'podman container restore --tcp-established --file-locks --print-stats -- web-1',
    ],
    ['inspect', () => podmanInspectArgv('web-1'), 'podman container inspect -- web-1'],
    [
      'rm after the commit point: forced, idempotent',
      () => podmanRmArgv({ container: 'web-1', force: true, ignoreMissing: true, stopTimeoutS: 0 }),
      'podman container rm --force --ignore --time 0 -- web-1',
    ],
    [
      'rm with anonymous volumes',
      () => podmanRmArgv({ container: 'x', volumes: true }),
      'podman container rm --volumes -- x',
    ],
    [
      'image exists',
      () => podmanImageExistsArgv('localhost/spotlift-heartbeat:lab'),
      'podman image exists -- localhost/spotlift-heartbeat:lab',
    ],
    [
      'image save to stdout',
      () => podmanImageSaveArgv({ image: 'registry.example:5000/app/web@sha256:0123abcd' }),
      'podman image save --format docker-archive -- registry.example:5000/app/web@sha256:0123abcd',
    ],
    [
      'image save to a file, OCI',
      () => podmanImageSaveArgv({ image: 'e30cc397c71e', output: '/srv/img.tar', format: 'oci-archive' }),
      'podman image save --format oci-archive --output /srv/img.tar -- e30cc397c71e',
    ],
    ['image load from stdin', () => podmanImageLoadArgv(), 'podman image load'],
    [
      'image load from a file',
      () => podmanImageLoadArgv({ input: '/srv/img.tar' }),
      'podman image load --input /srv/img.tar',
    ],
  ])('%s', (_what, build, expected) => {
    expect(build().join(' ')).toBe(expected);
  });
});

describe('podman argv builders: refused before anything runs', () => {
  it.each<[string, () => unknown, RegExp]>([
    [
      'a container name that is an option',
      () => podmanInspectArgv('--all'),
      /container must be a Podman container name/,
    ],
    ['a container name with a space', () => podmanRmArgv({ container: 'a b' }), /container must be/],
    ['an empty container name', () => podmanCheckpointArgv({ container: '', export: '/x' }), /container must be/],
    ['a too long name', () => podmanInspectArgv('a'.repeat(254)), /at most 253/],
    [
      'a relative export path',
      () => podmanCheckpointArgv({ container: 'c', export: 'ckpt.tar' }),
      /export must be an absolute path/,
    ],
    [
      'a newline in a path',
      () => podmanRestoreArgv({ import: '/srv/a\n--name x' }),
      /import must be an absolute path without control characters/,
    ],
    [
      'pre-checkpoint and with-previous together',
      () => podmanCheckpointArgv({ container: 'c', export: '/x', preCheckpoint: true, withPrevious: true }),
      /exclude each other/,
    ],
    [
      'pre-checkpoint and leave-running together',
      () => podmanCheckpointArgv({ container: 'c', export: '/x', preCheckpoint: true, leaveRunning: true }),
      /already leaves the container running/,
    ],
    [
      'an unknown compression',
      () => podmanCheckpointArgv({ container: 'c', export: '/x', compress: 'xz' as 'none' }),
      /compress must be none, gzip or zstd/,
    ],
    [
      'a publish spec that is an option',
      () => podmanRestoreArgv({ import: '/x', publish: ['--net=host'] }),
      /publish must look like/,
    ],
    ['a restore name that is an option', () => podmanRestoreArgv({ import: '/x', name: '-n' }), /name must be/],
    ['a local restore of an option', () => podmanRestoreLocalArgv({ container: '--all' }), /container must be/],
    [
      'an image that is an option',
      () => podmanImageSaveArgv({ image: '-o/etc/passwd' }),
      /image must be an image reference/,
    ],
    ['an image with a space', () => podmanImageExistsArgv('a b'), /image must be/],
    ['a relative load input', () => podmanImageLoadArgv({ input: 'img.tar' }), /input must be an absolute path/],
    [
      'an unknown save format',
      () => podmanImageSaveArgv({ image: 'a', format: 'dir' as 'oci-archive' }),
      /format must be/,
    ],
    [
      'a negative stop timeout',
      () => podmanRmArgv({ container: 'c', stopTimeoutS: -1 }),
      /stopTimeoutS must be an integer/,
    ],
  ])('%s', (_what, build, message) => {
    let thrown: unknown;
    try {
      build();
    } catch (err) {
      thrown = err;
    }
    expect(thrown).toBeInstanceOf(PodmanArgError);
    expect((thrown as PodmanArgError).code).toBe('podman_bad_argument');
    expect((thrown as Error).message).toMatch(message);
  });
});
