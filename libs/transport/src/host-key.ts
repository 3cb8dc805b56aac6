import { createHash } from 'node:crypto';

/**
 * Host key pinning. A pin is either a public key line (`ssh-ed25519 AAAA...`, as in known_hosts without the
 * host field) or an OpenSSH fingerprint (`SHA256:base64-without-padding`). Anything else is refused.
 */
export function hostKeyFingerprint(key: Buffer): string {
  return 'SHA256:' + createHash('sha256').update(key).digest('base64').replace(/=+$/, '');
}

export function parsePinnedHostKey(pin: string): { fingerprint: string } {
  const trimmed = pin.trim();
  if (trimmed.startsWith('SHA256:')) return { fingerprint: trimmed };
  const parts = trimmed.split(/\s+/);
  const blob = parts.length >= 2 ? parts[1] : undefined;
  if (!blob || !/^[A-Za-z0-9+/]+=*$/.test(blob)) {
    throw new Error(`pinned host key '${pin.slice(0, 40)}' is neither 'TYPE BASE64' nor 'SHA256:...'`);
  }
  return { fingerprint: hostKeyFingerprint(Buffer.from(blob, 'base64')) };
}

export function hostKeyMatches(pin: string, presented: Buffer): boolean {
  return parsePinnedHostKey(pin).fingerprint === hostKeyFingerprint(presented);
}
