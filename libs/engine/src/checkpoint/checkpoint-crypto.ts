import {
  type Decipher,
  createCipheriv,
  createDecipheriv,
  createHash,
  createHmac,
  pbkdf2Sync,
  randomBytes,
  timingSafeEqual,
} from 'node:crypto';
import { DomainError, type CheckpointEncryption } from '@spotlift/domain';
import { CLEAR_FILES, OPENSSL_ENC } from '../node-ops/process/image-store-commands.js';

/**
 * Encryption at rest of stored checkpoints, the orchestrator's half. The nodes encrypt and decrypt with
 * `openssl enc` (image-store-commands.ts) under a random per-checkpoint data key; the orchestrator keeps that
 * key only wrapped by its master key (AES-256-GCM, authenticated: a wrong master key or a changed wrapped key
 * fails here, before any node is given anything) and decrypts here what inspection and search read.
 *
 * Why openssl's CTR mode: every node has openssl, CTR lets inspection decrypt any page range without reading
 * the file from its start, and the per-file salt gives each file its own key and counter. CTR does not
 * authenticate: integrity comes from the sha256 list of the ciphertext the source wrote, kept in the record
 * (the storage node cannot change it), checked before a restore decrypts and on every metadata image read.
 */

export const ENCRYPTION_SCHEME = 'openssl-aes-256-ctr-pbkdf2' as const;
/** OPENSSL_ENC's `-iter`; sha256 and AES-256-CTR as there. */
const ITERATIONS = Number(/-iter (\d+)/.exec(OPENSSL_ENC)![1]);
/** `Salted__` and the 8-byte salt that openssl writes before the ciphertext. */
export const OPENSSL_HEADER_BYTES = 16;

export const isEncryptedFile = (name: string, encryption: CheckpointEncryption | undefined): boolean =>
  encryption !== undefined && !CLEAR_FILES.includes(name) && !name.endsWith('.log');

/** The orchestrator cannot open a checkpoint's data key (no key, another key, a changed record). */
export class CheckpointKeyError extends DomainError {
  constructor(message: string) {
    super('checkpoint_key', message);
  }
}

/** A master key from its configured text: 64 hex digits or the base64 of 32 bytes. */
export function parseMasterKey(text: string): Buffer {
  const t = text.trim();
  const key = /^[0-9a-fA-F]{64}$/.test(t) ? Buffer.from(t, 'hex') : Buffer.from(t, 'base64');
  if (key.length !== 32 || (!/^[0-9a-fA-F]{64}$/.test(t) && key.toString('base64') !== t)) {
    throw new Error('a checkpoint key is 32 bytes: 64 hex digits or their base64 (e.g. `openssl rand -hex 32`)');
  }
  return key;
}

export const masterKeyId = (master: Uint8Array): string =>
  createHash('sha256').update(master).digest('hex').slice(0, 16);

/** A fresh data key (64 hex digits: openssl's password) and its record, wrapped by `master`. */
export function newDataKey(master: Uint8Array): { dataKey: string; encryption: CheckpointEncryption } {
  const dataKey = randomBytes(32).toString('hex');
  const iv = randomBytes(12);
  const cipher = createCipheriv('aes-256-gcm', master, iv);
  const wrapped = Buffer.concat([cipher.update(dataKey, 'utf8'), cipher.final()]);
  return {
    dataKey,
    encryption: {
      scheme: ENCRYPTION_SCHEME,
      keyId: masterKeyId(master),
      wrappedKey: Buffer.concat([iv, cipher.getAuthTag(), wrapped]).toString('base64'),
    },
  };
}

/** The data key, or a CheckpointKeyError saying why it cannot be had. */
export function openDataKey(master: Uint8Array | undefined, enc: CheckpointEncryption, what: string): string {
  if (!master) {
    throw new CheckpointKeyError(`${what} is encrypted and this orchestrator has no checkpoint key configured`);
  }
  const id = masterKeyId(master);
  if (id !== enc.keyId) {
    throw new CheckpointKeyError(
      `${what} is encrypted under checkpoint key ${enc.keyId}; this orchestrator holds key ${id}`,
    );
  }
  const raw = Buffer.from(enc.wrappedKey, 'base64');
  try {
    const decipher = createDecipheriv('aes-256-gcm', master, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    const key = Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    if (!/^[0-9a-f]{64}$/.test(key)) throw new Error('not a data key');
    return key;
  } catch {
    throw new CheckpointKeyError(`${what}: its wrapped data key does not open with checkpoint key ${id}`);
  }
}

/**
 * A stream encrypted here as `openssl enc -e` (OPENSSL_ENC) encrypts a file: openssl's salt header first, then
 * AES-256-CTR under the key and counter derived from `dataKey` and the salt. The restoring node's openssl
 * decrypts it like the images its source encrypted (a checkpoint's declared-files tar, which the orchestrator
 * relays through its tar guard and encrypts on the way to the storage node).
 */
export function opensslSeal(dataKey: string): { header: Buffer; update(chunk: Buffer): Buffer } {
  const salt = randomBytes(8);
  const derived = pbkdf2Sync(dataKey, salt, ITERATIONS, 48, 'sha256');
  const cipher = createCipheriv('aes-256-ctr', derived.subarray(0, 32), derived.subarray(32, 48));
  return { header: Buffer.concat([Buffer.from('Salted__', 'latin1'), salt]), update: (c) => cipher.update(c) };
}

/**
 * `sha256sum` lines -> name -> hex digest. The source node prints them and the restoring node checks files by
 * these names, so only plain names in the images directory count (no `/`, none starting with `.`): a source
 * cannot make another node read a path outside it.
 */
export function parseSums(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const m of text.matchAll(/^([0-9a-f]{64}) [ *]?([^/\s.][^/\s]*)$/gm)) out.set(m[2]!, m[1]!);
  return out;
}

export const sha256Hex = (bytes: Uint8Array): string => createHash('sha256').update(bytes).digest('hex');

/**
 * Lines a storage node keeps for the orchestrator (an encrypted container checkpoint's unpacked sums), with an
 * HMAC-SHA256 under the checkpoint's data key as the last line: the node, which has no key, cannot change them
 * unseen, and another checkpoint's (another data key) never opens here.
 */
export function macLines(dataKey: string, text: string): string {
  return `${text}\nmac ${mac(dataKey, text)}\n`;
}

/** The text macLines sealed, or undefined when its mac is missing or does not match. */
export function openMacLines(dataKey: string, sealed: string): string | undefined {
  const m = /^([\s\S]*)\nmac ([0-9a-f]{64})\n?$/.exec(sealed);
  if (!m) return undefined;
  const want = Buffer.from(mac(dataKey, m[1]!), 'hex');
  return timingSafeEqual(want, Buffer.from(m[2]!, 'hex')) ? m[1] : undefined;
}

const mac = (dataKey: string, text: string): string =>
  createHmac('sha256', `spotlift unpacked sums\0${dataKey}`).update(text).digest('hex');

/** Decrypts files `openssl enc` (OPENSSL_ENC) wrote with `dataKey`, whole or at any plaintext offset. */
export class OpensslCtr {
  private readonly keys = new Map<string, Buffer>();

  constructor(private readonly dataKey: string) {}

  /** A whole encrypted file (header included) -> plaintext. */
  decryptFile(name: string, file: Uint8Array): Uint8Array {
    if (file.length < OPENSSL_HEADER_BYTES) throw new Error(`${name} is too short to be encrypted`);
    return this.decryptAt(name, file.subarray(0, OPENSSL_HEADER_BYTES), 0, file.subarray(OPENSSL_HEADER_BYTES));
  }

  /** `ciphertext` found at plaintext `offset` (file offset minus the header) of the file whose header is given. */
  decryptAt(name: string, header: Uint8Array, offset: number, ciphertext: Uint8Array): Uint8Array {
    const derived = this.derive(name, header);
    const iv = Buffer.from(derived.subarray(32, 48));
    // CTR: the counter is the IV (one 128-bit big-endian number) plus the block index.
    let carry = BigInt(Math.floor(offset / 16));
    for (let i = 15; i >= 0 && carry > 0n; i--) {
      const sum = BigInt(iv[i]!) + (carry & 0xffn);
      iv[i] = Number(sum & 0xffn);
      carry = (carry >> 8n) + (sum >> 8n);
    }
    const decipher = createDecipheriv('aes-256-ctr', derived.subarray(0, 32), iv);
    const skip = offset % 16;
    const out = decipher.update(Buffer.concat([Buffer.alloc(skip), ciphertext]));
    return new Uint8Array(out.subarray(skip));
  }

  /** The file's whole ciphertext after `header`, chunk by chunk, from its start (an export streams it). */
  decipher(name: string, header: Uint8Array): Decipher {
    const derived = this.derive(name, header);
    return createDecipheriv('aes-256-ctr', derived.subarray(0, 32), derived.subarray(32, 48));
  }

  private derive(name: string, header: Uint8Array): Buffer {
    if (Buffer.from(header.subarray(0, 8)).toString('latin1') !== 'Salted__') {
      throw new Error(`${name} is not an encrypted image (no openssl salt header)`);
    }
    const salt = Buffer.from(header.subarray(8, 16));
    const id = salt.toString('hex');
    let key = this.keys.get(id);
    if (!key) {
      key = pbkdf2Sync(this.dataKey, salt, ITERATIONS, 48, 'sha256');
      this.keys.set(id, key);
    }
    return key;
  }
}
