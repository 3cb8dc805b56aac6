/**
 * Inspecting a container checkpoint: Podman's archive read through the tar guard, only CRIU's flat images and
 * the metadata dumps unpacked on the storage node (by name), then decoded as a process checkpoint's images
 * are. The archive is built here member by member around the real forensic fixture's images; the storage
 * node is the fake operations layer. The lab run with real Podman: test/containers.e2e-spec.ts
 * "inspects a container checkpoint".
 */
import { createHash, randomBytes } from 'node:crypto';
import { Readable, Writable } from 'node:stream';
import type { CheckpointRecord } from '@spotlift/domain';
import { patternBytes } from '@spotlift/criu';
import { aNode, archive, FakeProcessOps, member } from '@spotlift/testing';
import type { RemoteProcess } from '@spotlift/transport';
import { extract } from 'tar-stream';
import { loadImages, WORKDIR } from '../../../criu/test/forensic-fixture.js';
import { CheckpointKeyError, newDataKey, opensslSeal } from './checkpoint-crypto.js';
import { containerMetadata } from './container-archive.js';
import { openContainerImages, UNPACKED_DIR } from './container-images.js';
import { SUMS_FILE } from './encrypted-container-images.js';

const DIR = '/var/lib/spotlift/checkpoints/wl-1/cp-1';
const UNPACKED = `${DIR}/${UNPACKED_DIR}`;
const images = loadImages();
const b64 = (b: Uint8Array | Buffer) => Buffer.from(b).toString('base64');
const ok = (stdout: string) => ({ code: 0, stdout, stderr: '' });
const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

const config = JSON.stringify({
  id: 'c'.repeat(64),
  name: 'heartbeat',
  rootfsImageID: 'f'.repeat(64),
  rootfsImageName: 'localhost/spotlift-heartbeat:latest',
  runtime: 'runc',
  createdTime: '2026-12-07T04:00:00.000000001Z',
  newPortMappings: [{ host_ip: '', container_port: 8080, host_port: 18080, range: 1, protocol: 'tcp' }],
  namedVolumes: [{ volumeName: 'hb-data', dest: '/data', options: [] }],
});
const spec = JSON.stringify({
  process: { args: ['/bin/sh', '/heartbeat.sh'] },
  hostname: 'heartbeat',
  mounts: [{ destination: '/data', type: 'bind', source: '/var/lib/containers/storage/volumes/hb-data/_data' }],
  annotations: { 'io.container.manager': 'libpod' },
});

/** Podman's export: the images under checkpoint/, the dumps, and what is never unpacked. */
function podmanArchive(extra: Buffer[] = []): Buffer {
  return archive(
    member({ name: 'checkpoint/', type: '5' }),
    ...Object.entries(images).map(([n, data]) => member({ name: `checkpoint/${n}`, data: Buffer.from(data) })),
    member({ name: 'config.dump', data: config }),
    member({ name: 'spec.dump', data: spec }),
    member({ name: 'rootfs-diff.tar', data: 'nested tar, stays packed' }),
    member({ name: 'volumes/', type: '5' }),
    member({ name: 'volumes/hb-data.tar', data: 'volume' }),
    ...extra,
  );
}

function remote(bytes: Buffer): RemoteProcess {
  return {
    stdin: new Writable({ write: (_c, _e, done) => done() }),
    stdout: Readable.from([bytes.subarray(0, 1000), bytes.subarray(1000)]),
    done: Promise.resolve({ code: 0, stderr: '' }),
  };
}

/** The storage node: holds `tar`; after an unpack, answers for the unpacked directory from what was picked. */
function storage(tar: Buffer, opts: { sha256?: string; unpackedBefore?: string } = {}) {
  const ops = new FakeProcessOps();
  const unpacked: Record<string, Uint8Array> = {};
  if (opts.unpackedBefore) {
    Object.assign(unpacked, {
      'config.dump': Buffer.from(config),
      'archive.sha256': Buffer.from(`${opts.unpackedBefore}\n`),
    });
  }
  const dirFiles = (dir: string): Record<string, Uint8Array> =>
    dir === DIR
      ? { 'checkpoint.tar': tar, 'image.tar': Buffer.from('img'), SHA256SUMS: Buffer.from('') }
      : dir === UNPACKED
        ? Object.fromEntries(Object.entries(unpacked).filter(([n]) => !n.includes('/')))
        : Object.fromEntries(
            Object.entries(unpacked)
              .filter(([n]) => n.startsWith('checkpoint/'))
              .map(([n, b]) => [n.slice('checkpoint/'.length), b]),
          );
  ops
    .on('listImageFiles', (_n, dir) => {
      const files = dirFiles(dir);
      if (dir !== DIR && !Object.keys(unpacked).length) return { code: 2, stdout: '', stderr: 'No such file' };
      return ok(
        Object.entries(files)
          .map(([n, b]) => `FILE ${b.length} ${n}\n`)
          .join(''),
      );
    })
    .on('readImageFiles', (_n, dir, names) => ok(names.map((n) => `IMG ${n} ${b64(dirFiles(dir)[n]!)}`).join('\n')))
    .on('readImageRange', (_n, dir, name, offset, length) =>
      ok(b64(dirFiles(dir)[name]!.subarray(offset, offset + length))),
    )
    .on('sendImageFile', () => remote(tar))
    .on('extractArchiveMembers', (_n, _dir, _archive, _into, names) => {
      for (const n of names) {
        const key = n.replace(/^\.\//, '');
        unpacked[key] = key.startsWith('checkpoint/')
          ? images[key.slice('checkpoint/'.length)]!
          : Buffer.from(key === 'config.dump' ? config : spec);
      }
      unpacked['archive.sha256'] = Buffer.from(`${opts.sha256 ?? sha(tar)}\n`);
      return ok('');
    });
  const cp = { id: 'cp-1', imageDir: DIR, sha256: opts.sha256 ?? sha(tar) } as CheckpointRecord;
  return { ops, open: () => openContainerImages(ops.asNodeOps(), aNode('node-c'), cp) };
}

describe('openContainerImages', () => {
  it('unpacks only the images and the dumps, then inspects them as a process checkpoint', async () => {
    const tar = podmanArchive();
    const { ops, open } = storage(tar);
    const opened = await open();
    const [dir, archiveArg, into, names] = ops.argsOf('extractArchiveMembers', 'node-c')[0]!;
    expect([dir, archiveArg, into]).toEqual([DIR, { name: 'checkpoint.tar', sha256: sha(tar) }, UNPACKED_DIR]);
    expect(names).toEqual([...Object.keys(images).map((n) => `checkpoint/${n}`), 'config.dump', 'spec.dump']);
    expect(opened).toMatchObject({ unpacked: true, archiveBytes: tar.length });
    const { inspection } = await opened.images.inspect();
    expect(inspection.processes[0]!.cmdline?.[0]).toBe(`${WORKDIR}/workload`);
    expect(opened.metadata).toMatchObject({
      name: 'heartbeat',
      image: { name: 'localhost/spotlift-heartbeat:latest', id: 'f'.repeat(64) },
      runtime: 'runc',
      engine: 'libpod',
      ports: [{ hostPort: 18080, containerPort: 8080, protocol: 'tcp', range: 1 }],
      volumes: [{ name: 'hb-data', dest: '/data' }],
      command: ['/bin/sh', '/heartbeat.sh'],
      problems: [],
    });
  });

  it('reuses an earlier unpack of the same archive without reading it again', async () => {
    const tar = podmanArchive();
    const { ops, open } = storage(tar, { unpackedBefore: sha(tar) });
    expect((await open()).unpacked).toBe(false);
    expect(ops.argsOf('sendImageFile', 'node-c')).toEqual([]);
    expect(ops.argsOf('extractArchiveMembers', 'node-c')).toEqual([]);
  });

  it('unpacks again when the earlier unpack was of another archive', async () => {
    const tar = podmanArchive();
    const { ops, open } = storage(tar, { unpackedBefore: 'e'.repeat(64) });
    expect((await open()).unpacked).toBe(true);
    expect(ops.argsOf('extractArchiveMembers', 'node-c')).toHaveLength(1);
  });

  it.each([
    ['a symlink', member({ name: 'checkpoint/evil', type: '2', link: '/etc' }), /is not a regular file \(type '2'\)/],
    ['a hard link', member({ name: 'checkpoint/h.img', type: '1', link: 'etc/shadow' }), /not a regular file/],
    ['a nested directory', member({ name: 'checkpoint/sub/x.img', data: 'x' }), /nested under checkpoint/],
    ['a setuid file', member({ name: 'checkpoint/x.img', data: 'x', mode: 0o4755 }), /setuid/],
    ['a second inventory', member({ name: 'checkpoint/inventory.img', data: 'x' }), /appears twice/],
    ['a climb out', member({ name: 'checkpoint/../../etc/cron.d/x', data: 'x' }), /'\.\.'/],
    ['a device anywhere', member({ name: 'dev/sda', type: '3' }), /device node/],
    ['an oversized config.dump', member({ name: 'config.dump', data: 'x'.repeat((1 << 20) + 1) }), /over 1048576/],
  ])('refuses an archive with %s and unpacks nothing', async (_what, bad, why) => {
    const tar = podmanArchive([bad]);
    const { ops, open } = storage(tar);
    await expect(open()).rejects.toThrow(why);
    expect(ops.argsOf('extractArchiveMembers', 'node-c')).toEqual([]);
  });

  it('refuses an archive that no longer matches the sum recorded when it was stored', async () => {
    const { ops, open } = storage(podmanArchive(), { sha256: '0'.repeat(64) });
    await expect(open()).rejects.toThrow(/no longer matches the sha256 recorded/);
    expect(ops.argsOf('extractArchiveMembers', 'node-c')).toEqual([]);
  });

  it('refuses an archive with no CRIU images', async () => {
    const tar = archive(member({ name: 'config.dump', data: config }));
    const { ops, open } = storage(tar);
    await expect(open()).rejects.toThrow(/no checkpoint\/inventory\.img/);
    expect(ops.argsOf('extractArchiveMembers', 'node-c')).toEqual([]);
  });
});

/**
 * An encrypted one: the storage node holds the archive as ciphertext and no key; the orchestrator unpacks it and
 * writes the picked members back encrypted (receiveArchiveMembers: a tar it builds, which this fake node unpacks
 * only when its sums came last, as the real command does).
 */
describe('openContainerImages of an encrypted container checkpoint', () => {
  const master = randomBytes(32);
  const { dataKey, encryption } = newDataKey(master);
  const NEEDLE = 'SPOTLIFT-FORENSIC-NEEDLE-4711';

  function encryptedStorage(tar: Buffer, opts: { tamper?: (stored: Buffer) => Buffer; chunk?: number } = {}) {
    const seal = opensslSeal(dataKey);
    const good = Buffer.concat([seal.header, seal.update(tar)]);
    const sha256 = sha(good);
    const stored = opts.tamper ? opts.tamper(good) : good;
    const ops = new FakeProcessOps();
    const unpacked: Record<string, Buffer> = {};
    /** Every byte the orchestrator wrote to the storage node. */
    const received: Buffer[] = [];
    const dirFiles = (dir: string): Record<string, Uint8Array> =>
      dir === DIR
        ? { 'checkpoint.tar': stored, 'image.tar': Buffer.from('img'), SHA256SUMS: Buffer.from('') }
        : Object.fromEntries(
            Object.entries(unpacked)
              .filter(([n]) => (dir === UNPACKED ? !n.includes('/') : n.startsWith('checkpoint/')))
              .map(([n, b]) => [n.replace(/^checkpoint\//, ''), b]),
          );
    ops
      .on('listImageFiles', (_n, dir) =>
        dir !== DIR && !Object.keys(unpacked).length
          ? { code: 2, stdout: '', stderr: 'No such file' }
          : ok(
              Object.entries(dirFiles(dir))
                .map(([n, b]) => `FILE ${b.length} ${n}\n`)
                .join(''),
            ),
      )
      .on('readImageFiles', (_n, dir, names) => ok(names.map((n) => `IMG ${n} ${b64(dirFiles(dir)[n]!)}`).join('\n')))
      .on('readImageRange', (_n, dir, name, offset, length) =>
        ok(b64(dirFiles(dir)[name]!.subarray(offset, offset + length))),
      )
      .on('sendImageFile', () =>
        opts.chunk
          ? {
              ...remote(stored),
              stdout: Readable.from(
                Array.from({ length: Math.ceil(stored.length / opts.chunk) }, (_, i) =>
                  stored.subarray(i * opts.chunk!, (i + 1) * opts.chunk!),
                ),
              ),
            }
          : remote(stored),
      )
      .on('receiveArchiveMembers', (_n, _dir, _part, _into, sums) => {
        const chunks: Buffer[] = [];
        let ended = false;
        let end!: (r: { code: number; stderr: string }) => void;
        const done = new Promise<{ code: number; stderr: string }>((r) => (end = r));
        const stdin = new Writable({
          highWaterMark: 16384,
          write: (c: Buffer, _e, cb) => (chunks.push(c), received.push(c), setTimeout(cb, 1)),
          final: (cb) => {
            ended = true;
            cb();
            void untar(Buffer.concat(chunks)).then(
              (files) => {
                if (!files[sums]) return end({ code: 5, stderr: '' });
                for (const k of Object.keys(unpacked)) delete unpacked[k];
                Object.assign(unpacked, files);
                end({ code: 0, stderr: '' });
              },
              () => end({ code: 4, stderr: 'tar: unexpected EOF' }),
            );
          },
        });
        stdin.on('close', () => ended || end({ code: 1, stderr: 'hung up' }));
        return { stdin, stdout: Readable.from([]), done };
      });
    const cp = {
      id: 'cp-1',
      imageDir: DIR,
      sha256,
      encryption: { ...encryption, sums: `${sha256}  checkpoint.tar` },
    } as CheckpointRecord;
    return {
      ops,
      unpacked,
      received,
      open: (key: Uint8Array = master) => openContainerImages(ops.asNodeOps(), aNode('node-c'), cp, key),
    };
  }

  it('unpacks in the orchestrator, stores the members encrypted, then inspects and searches them', async () => {
    const tar = podmanArchive();
    const { ops, unpacked, received, open } = encryptedStorage(tar);
    const opened = await open();
    expect(opened).toMatchObject({ unpacked: true, archiveBytes: tar.length });
    expect(opened.metadata).toMatchObject({ name: 'heartbeat', command: ['/bin/sh', '/heartbeat.sh'], problems: [] });
    const { inspection } = await opened.images.inspect();
    expect(inspection.processes[0]!.cmdline?.[0]).toBe(`${WORKDIR}/workload`);
    const found = await opened.images.search(patternBytes(NEEDLE, 'utf8'), {
      maxHits: 10,
      context: 4,
      expired: () => false,
    });
    expect(found.hits.filter((h) => h.mapping.endsWith('[heap]')).map((h) => h.pid)).toEqual([1, 2]);
    // the picked members only (less stats-dump: a file kept in clear, not needed to inspect), nothing run on the
    // node to unpack the ciphertext archive itself
    expect(Object.keys(unpacked).sort()).toEqual(
      [
        ...Object.keys(images)
          .filter((n) => n !== 'stats-dump')
          .map((n) => `checkpoint/${n}`),
        'config.dump',
        'spec.dump',
        SUMS_FILE,
      ].sort(),
    );
    expect(ops.argsOf('extractArchiveMembers')).toEqual([]);
    // the storage node got ciphertext only: every member in openssl's format, no plaintext anywhere in the stream
    for (const [n, b] of Object.entries(unpacked)) {
      if (n !== SUMS_FILE) expect([n, b.subarray(0, 8).toString('latin1')]).toEqual([n, 'Salted__']);
    }
    const wire = Buffer.concat(received);
    expect(wire.includes(NEEDLE)).toBe(false);
    expect(wire.includes('heartbeat.sh')).toBe(false);
    expect(wire.includes(Buffer.from(images['core-1.img']!).subarray(0, 64))).toBe(false);
  });

  it('reuses an earlier unpack while its sums open with the key and name the same archive', async () => {
    const { ops, unpacked, open } = encryptedStorage(podmanArchive());
    await open();
    expect((await open()).unpacked).toBe(false);
    expect(ops.argsOf('sendImageFile', 'node-c')).toHaveLength(1);
    // sums the node changed (no key: no mac) are not taken: it unpacks again
    unpacked[SUMS_FILE] = Buffer.from(unpacked[SUMS_FILE]!.toString('utf8').replace(/^([0-9a-f])/m, 'f'));
    expect((await open()).unpacked).toBe(true);
  });

  it('a stored member the node changed afterwards is an image error, not another plaintext', async () => {
    const { unpacked, open } = encryptedStorage(podmanArchive());
    await open();
    const core = unpacked['checkpoint/core-1.img']!;
    core.writeUInt8(core[core.length - 1]! ^ 1, core.length - 1);
    await expect((await open()).images.inspect()).rejects.toThrow(/differs from the checksums recorded/);
  });

  it('refuses a hostile member as a plain one is refused, and leaves nothing unpacked', async () => {
    const { unpacked, open } = encryptedStorage(
      podmanArchive([member({ name: 'checkpoint/evil', type: '2', link: '/etc' })]),
    );
    await expect(open()).rejects.toThrow(/is not unpacked: member "checkpoint\/evil" is not a regular file/);
    expect(unpacked).toEqual({});
  });

  it('refuses an archive whose ciphertext no longer matches the sum recorded at the take', async () => {
    const tar = podmanArchive();
    // CTR: one ciphertext byte flipped flips the same plaintext byte, here inside a member the guard lets pass
    const at = 16 + tar.indexOf('nested tar');
    const { unpacked, open } = encryptedStorage(tar, {
      tamper: (b) => Buffer.concat([b.subarray(0, at), Buffer.from([b[at]! ^ 1]), b.subarray(at + 1)]),
    });
    await expect(open()).rejects.toThrow(/differs from the checksums recorded/);
    expect(unpacked).toEqual({});
  });

  it('streams a large member through at the pace the storage node takes it', async () => {
    const pages = randomBytes(4 << 20);
    const big = member({ name: 'checkpoint/pages-9.img', data: pages });
    const { unpacked, open } = encryptedStorage(podmanArchive([big]), { chunk: 65536 });
    expect((await open()).unpacked).toBe(true);
    expect(unpacked['checkpoint/pages-9.img']!.length).toBe(pages.length + 16);
  });

  it('another key: a CheckpointKeyError before anything runs on the storage node', async () => {
    const { ops, open } = encryptedStorage(podmanArchive());
    await expect(open(randomBytes(32))).rejects.toThrow(CheckpointKeyError);
    expect(ops.calls).toEqual([]);
  });
});

/** The files of a tar as the storage node's tar -x leaves them (names as given). */
async function untar(bytes: Buffer): Promise<Record<string, Buffer>> {
  const out: Record<string, Buffer> = {};
  const ex = extract();
  const reading = (async () => {
    for await (const entry of ex) {
      const parts: Buffer[] = [];
      for await (const c of entry as AsyncIterable<Buffer>) parts.push(c);
      if (entry.header.type === 'file') out[entry.header.name] = Buffer.concat(parts);
    }
  })();
  ex.end(bytes);
  await reading;
  return out;
}

describe('containerMetadata', () => {
  it('leaves out what has another shape and says so, never throws', () => {
    const m = containerMetadata(JSON.stringify({ name: 7, newPortMappings: [{ host_port: 'x' }] }), 'not json');
    expect(m).toMatchObject({ image: {}, ports: [], volumes: [], command: [], mounts: [] });
    expect(m.name).toBeUndefined();
    expect(m.problems).toEqual([expect.stringMatching(/^spec\.dump is not JSON/), 'config.dump has no id']);
  });
});
