import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { utils } from 'ssh2';
import { ConfigError, readSshPrivateKey } from './app-config.js';

const dir = mkdtempSync(join(tmpdir(), 'spotlift-key-'));
const write = (name: string, content: string | Buffer) => {
  const path = join(dir, name);
  writeFileSync(path, content);
  return path;
};

describe('the SSH private key, read at boot', () => {
  it('returns a key ssh2 can parse', () => {
    let key: Buffer;
    do key = Buffer.from(utils.generateKeyPairSync('ed25519').private);
    while (utils.parseKey(key) instanceof Error);
    expect(readSshPrivateKey(write('good', key))).toEqual(key);
  });

  it.each([
    ['a missing file', () => join(dir, 'absent'), /Cannot read SSH private key: .*ENOENT/],
    ['an empty file', () => write('empty', ''), /SSH private key .*empty cannot be used/],
    [
      'a public key in its place',
      () => write('pub', utils.generateKeyPairSync('ed25519').public),
      /it is a public key/,
    ],
    [
      'a truncated OpenSSH key',
      () =>
        write(
          'cut',
          '-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----\n',
        ),
      /cannot be used: .+/,
    ],
  ])('refuses %s with a ConfigError naming the problem', (_label, path, message) => {
    const read = () => readSshPrivateKey(path());
    expect(read).toThrow(ConfigError);
    expect(read).toThrow(message);
  });
});
