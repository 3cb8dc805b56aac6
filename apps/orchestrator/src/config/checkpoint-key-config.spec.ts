import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ConfigError, readCheckpointKey } from './app-config.js';

describe('the checkpoint master key (SPOTLIFT_CHECKPOINT_KEY_FILE / SPOTLIFT_CHECKPOINT_KEY)', () => {
  const dir = mkdtempSync(join(tmpdir(), 'cpkey-'));
  const key = randomBytes(32);
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('reads a file only its owner can read, or the inline value; neither: encryption off', () => {
    const file = join(dir, 'ok.key');
    writeFileSync(file, `${key.toString('hex')}\n`, { mode: 0o600 });
    expect(readCheckpointKey(file, undefined)).toEqual(key);
    expect(readCheckpointKey(undefined, key.toString('base64'))).toEqual(key);
    expect(readCheckpointKey(undefined, undefined)).toBeUndefined();
  });

  it('refuses a file others can read, a missing file, a short key, and both set', () => {
    const open = join(dir, 'open.key');
    writeFileSync(open, key.toString('hex'), { mode: 0o644 });
    expect(() => readCheckpointKey(open, undefined)).toThrow(/readable or writable by others .*chmod 600/);
    expect(() => readCheckpointKey(join(dir, 'none.key'), undefined)).toThrow(ConfigError);
    expect(() => readCheckpointKey(undefined, 'abcd')).toThrow(/Checkpoint key: a checkpoint key is 32 bytes/);
    expect(() => readCheckpointKey(open, 'abcd')).toThrow(/not both/);
  });
});
