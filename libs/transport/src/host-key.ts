import { createHash } from 'node:crypto';

/**
 * Host key pinning. A pin is either a public key line (`ssh-ed25519 AAAA...`, as in known_hosts without the
 * host field) or an OpenSSH fingerprint (`SHA256:` and the 43 characters of unpadded base64 of a SHA-256).
 * Anything else is refused: a pin that could match more than one key pins nothing.
 */
export function hostKeyFingerprint(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
}

const FINGERPRINT = /^SHA256:[A-Za-z0-9+/]{43}$/;

/** The key type named inside an SSH public key blob (its first length-prefixed field); undefined if malformed. */
function blobType(blob: Buffer): string | undefined {
  if (blob.length < 4) return undefined;
  const length = blob.readUInt32BE(0);
  if (length === 0 || 4 + length > blob.length) return undefined;
  return blob.subarray(4, 4 + length).toString('latin1');
}

export function parsePinnedHostKey(pin: string): { fingerprint: string } {
  const trimmed = pin.trim();
  if (trimmed.startsWith('SHA256:')) {
    if (!FINGERPRINT.test(trimmed)) throw new Error(`pinned fingerprint '${trimmed.slice(0, 60)}' is malformed`);
    return { fingerprint: trimmed };
  }
  const [type, blob] = trimmed.split(/\s+/);
  if (!type || !blob || !/^[A-Za-z0-9+/]+=*$/.test(blob)) {
    throw new Error(`pinned host key '${pin.slice(0, 40)}' is neither 'TYPE BASE64' nor 'SHA256:...'`);
  }
  const key = Buffer.from(blob, 'base64');
  // The blob names its own type: a line whose two disagree was pasted wrong, and is refused.
  if (blobType(key) !== type) throw new Error(`pinned host key says '${type}' but holds a different key`);
  return { fingerprint: hostKeyFingerprint(key) };
}

export function hostKeyMatches(pin: string, presented: Buffer): boolean {
  return parsePinnedHostKey(pin).fingerprint === hostKeyFingerprint(presented);
}
