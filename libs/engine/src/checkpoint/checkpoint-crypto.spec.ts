import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { OPENSSL_ENC } from '../node-ops/process/image-store-commands.js';
import {
  CheckpointKeyError,
  OpensslCtr,
  isEncryptedFile,
  masterKeyId,
  newDataKey,
  openDataKey,
  opensslSeal,
  parseMasterKey,
  parseSums,
} from './checkpoint-crypto.js';

/**
 * Golden: written on this host by `printf '%s\n' "$PASS" | openssl enc -e -aes-256-ctr -pbkdf2 -iter 10000
 * -md sha256 -pass stdin` (OpenSSL 3.0.19), PASS = "ab" x 32, the same command the nodes run.
 */
const PASS = 'ab'.repeat(32);
const PLAIN = 'spotlift golden plaintext: pages of a workload, 0123456789abcdef!';
const GOLDEN = Buffer.from(
  '53616c7465645f5fe3e6783bbb60902fd2e8c70a8e3893889e7897895df1e40d104e76285587d3df37f92317de34c3b7edb2a4bfa106da8ec0a5549c7747476339b177c09e09cebf4f2fa37fba0de82990',
  'hex',
);

describe('checkpoint encryption (orchestrator side)', () => {
  it("decrypts openssl's output whole and from any offset (CTR counter arithmetic)", () => {
    const ctr = new OpensslCtr(PASS);
    expect(Buffer.from(ctr.decryptFile('pages-1.img', GOLDEN)).toString()).toBe(PLAIN);
    const header = GOLDEN.subarray(0, 16);
    for (const [offset, length] of [
      [0, 5],
      [15, 2],
      [16, 16],
      [17, 40],
      [47, 18],
    ] as const) {
      const part = GOLDEN.subarray(16 + offset, 16 + offset + length);
      expect(Buffer.from(ctr.decryptAt('pages-1.img', header, offset, part)).toString()).toBe(
        PLAIN.slice(offset, offset + length),
      );
    }
  });

  it("seals a stream chunk by chunk as openssl enc would: this host's openssl decrypts it (as the restoring node does)", () => {
    const plain = Buffer.concat([Buffer.from(PLAIN), randomBytes(70_000)]);
    const seal = opensslSeal(PASS);
    const sealed = Buffer.concat([
      seal.header,
      ...[0, 7, 4096, 50_000].map((at, i, all) => seal.update(plain.subarray(at, all[i + 1]))),
    ]);
    expect(sealed.subarray(0, 8).toString('latin1')).toBe('Salted__');
    const dir = mkdtempSync(join(tmpdir(), 'seal-'));
    try {
      writeFileSync(join(dir, 'files.tar'), sealed);
      const out = execFileSync(
        'openssl',
        ['enc', '-d', ...OPENSSL_ENC.split(' '), '-pass', 'stdin', '-in', join(dir, 'files.tar')],
        { input: `${PASS}\n` },
      );
      expect(out.equals(plain)).toBe(true);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
    expect(Buffer.from(new OpensslCtr(PASS).decryptFile('files.tar', sealed)).equals(plain)).toBe(true);
    // a fresh salt each time: the same data key never repeats a counter
    expect(opensslSeal(PASS).header.equals(seal.header)).toBe(false);
  });

  it('another data key gives other bytes (CTR cannot tell: the wrapped key and the sums do)', () => {
    const other = new OpensslCtr('cd'.repeat(32));
    expect(Buffer.from(other.decryptFile('pages-1.img', GOLDEN)).toString()).not.toBe(PLAIN);
  });

  it('refuses a file without the salt header', () => {
    expect(() => new OpensslCtr(PASS).decryptFile('core-1.img', Buffer.alloc(40))).toThrow(/no openssl salt header/);
  });

  it('wraps a fresh data key per checkpoint and opens it only with the same master key', () => {
    const master = randomBytes(32);
    const a = newDataKey(master);
    const b = newDataKey(master);
    expect(a.dataKey).toMatch(/^[0-9a-f]{64}$/);
    expect(a.dataKey).not.toBe(b.dataKey);
    expect(a.encryption).toMatchObject({ scheme: 'openssl-aes-256-ctr-pbkdf2', keyId: masterKeyId(master) });
    // The record holds no data key in clear.
    expect(JSON.stringify(a.encryption)).not.toContain(a.dataKey);
    expect(openDataKey(master, a.encryption, 'checkpoint c1')).toBe(a.dataKey);
  });

  it('a wrong, missing or changed key is a CheckpointKeyError naming why', () => {
    const master = randomBytes(32);
    const { encryption } = newDataKey(master);
    expect(() => openDataKey(undefined, encryption, 'checkpoint c1')).toThrow(/no checkpoint key configured/);
    expect(() => openDataKey(randomBytes(32), encryption, 'checkpoint c1')).toThrow(
      new RegExp(`encrypted under checkpoint key ${encryption.keyId}`),
    );
    const raw = Buffer.from(encryption.wrappedKey, 'base64');
    raw[raw.length - 1]! ^= 1;
    const changed = { ...encryption, wrappedKey: raw.toString('base64') };
    expect(() => openDataKey(master, changed, 'checkpoint c1')).toThrow(CheckpointKeyError);
    expect(() => openDataKey(master, changed, 'checkpoint c1')).toThrow(/does not open/);
  });

  it('reads a master key as 64 hex digits or base64 of 32 bytes, nothing else', () => {
    const key = randomBytes(32);
    expect(parseMasterKey(key.toString('hex') + '\n')).toEqual(key);
    expect(parseMasterKey(key.toString('base64'))).toEqual(key);
    expect(() => parseMasterKey('secret')).toThrow(/32 bytes/);
    expect(() => parseMasterKey(randomBytes(16).toString('hex'))).toThrow(/32 bytes/);
  });

  it('keeps only CPU features and dump statistics in clear', () => {
    const enc = newDataKey(randomBytes(32)).encryption;
    expect(['cpuinfo.img', 'stats-dump', 'dump.log'].map((n) => isEncryptedFile(n, enc))).toEqual([
      false,
      false,
      false,
    ]);
    expect(['pages-1.img', 'core-7.img', 'pstree.img'].every((n) => isEncryptedFile(n, enc))).toBe(true);
    expect(isEncryptedFile('pages-1.img', undefined)).toBe(false);
  });

  it('parses sha256sum lines', () => {
    const h = 'a'.repeat(64);
    expect([...parseSums(`${h}  pages-1.img\n${h} *core-1.img\nnoise\n`)]).toEqual([
      ['pages-1.img', h],
      ['core-1.img', h],
    ]);
  });

  it("keeps only plain names in the images directory: a source cannot point the restoring node's check elsewhere", () => {
    const h = 'b'.repeat(64);
    const tried = ['../../etc/shadow', '/etc/passwd', 'sub/pages-1.img', '..', '.hidden', '.'];
    const text = [...tried.map((n) => `${h}  ${n}`), `${h}  pages-2.img`].join('\n');
    expect([...parseSums(text)]).toEqual([['pages-2.img', h]]);
  });
});
