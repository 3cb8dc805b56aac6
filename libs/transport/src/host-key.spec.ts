import { utils } from 'ssh2';
import { hostKeyFingerprint, hostKeyMatches, parsePinnedHostKey } from './host-key.js';

/** Two real host keys, as sshd would present them (the wire blob) and as known_hosts writes them. */
function hostKey(type: 'ed25519' | 'ecdsa'): { blob: Buffer; line: string } {
  const pub = (
    type === 'ecdsa' ? utils.generateKeyPairSync('ecdsa', { bits: 256 }) : utils.generateKeyPairSync('ed25519')
  ).public;
  const [name, base64] = pub.trim().split(/\s+/) as [string, string];
  return { blob: Buffer.from(base64, 'base64'), line: `${name} ${base64}` };
}
const a = hostKey('ed25519');
const b = hostKey('ed25519');
const c = hostKey('ecdsa');

describe('hostKeyMatches', () => {
  const cases: [string, () => string, Buffer, boolean][] = [
    ['its own key line', () => a.line, a.blob, true],
    ['its own key line with a comment and blanks', () => `  ${a.line} root@node-a \n`, a.blob, true],
    ['its own fingerprint', () => hostKeyFingerprint(a.blob), a.blob, true],
    ['another key of the same type', () => a.line, b.blob, false],
    ["another key's fingerprint", () => hostKeyFingerprint(b.blob), a.blob, false],
    ['a key of another type', () => a.line, c.blob, false],
    ['the ecdsa key itself', () => c.line, c.blob, true],
  ];
  it.each(cases)('pin = %s', (_label, pin, presented, expected) => {
    expect(hostKeyMatches(pin(), presented)).toBe(expected);
  });

  it('never accepts every key: each pin matches exactly one of three keys', () => {
    const keys = [a, b, c];
    for (const pin of keys.flatMap((k) => [k.line, hostKeyFingerprint(k.blob)])) {
      expect(keys.filter((k) => hostKeyMatches(pin, k.blob))).toHaveLength(1);
    }
  });
});

describe('parsePinnedHostKey refuses pins that pin nothing', () => {
  const bad: [string, string][] = [
    ['empty', ''],
    ['a bare SHA256: prefix', 'SHA256:'],
    ['a short fingerprint', 'SHA256:abc'],
    ['a fingerprint with padding', `${hostKeyFingerprint(a.blob)}=`],
    ['a fingerprint with trailing junk', `${hostKeyFingerprint(a.blob)} *`],
    ['MD5', 'MD5:12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0'],
    ['a type without a key', 'ssh-ed25519'],
    ['a wildcard', '*'],
    ['a key that is not base64', 'ssh-ed25519 not!base64'],
    ['a type that disagrees with the key', `ssh-rsa ${a.line.split(' ')[1]}`],
    ['a truncated key blob', 'ssh-ed25519 AAAA'],
  ];
  it.each(bad)('%s', (_label, pin) => {
    expect(() => parsePinnedHostKey(pin)).toThrow();
    expect(() => hostKeyMatches(pin, a.blob)).toThrow();
  });
});
