/**
 * The destination-side key commands of the node-to-node tunnel, run by a real /bin/sh against a real
 * authorized_keys file in a temp dir: the line sshd will read (checked by ssh-keygen), removal of exactly
 * that line by an atomic rename with the file's mode kept, and no line lost when many migrations add and
 * remove keys at once. The tunnel itself (keys, OpenSSH -L, real CRIU through it): test/transports.e2e-spec.ts.
 */
import { execFileSync, spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { authorizeTunnelKeyCommand, revokeTunnelKeyCommand, tunnelCommand } from '@spotlift/node-commands';

const ORCHESTRATOR_KEY =
  'ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBTQnxtEqyTXwlycunQpUvZvFmT1i/iyaGiR026JtSTN orchestrator';
let dir: string;
let file: string;

function sh(command: string): Promise<{ code: number | null; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn('/bin/sh', ['-c', command], { env: { ...process.env, HOME: dir } });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    child.on('close', (code) => resolve({ code, stderr }));
  });
}

/** A fresh ed25519 public key from ssh-keygen, as the source node would make it. */
function newPublicKey(name: string): string {
  execFileSync('ssh-keygen', ['-q', '-t', 'ed25519', '-N', '', '-C', name, '-f', join(dir, name)]);
  return readFileSync(join(dir, `${name}.pub`), 'utf8').trim();
}

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'spotlift-tunnel-keys-'));
  file = join(dir, 'authorized_keys');
  writeFileSync(file, `${ORCHESTRATOR_KEY}\n`, { mode: 0o640 });
});

afterEach(() => rmSync(dir, { recursive: true, force: true }));

describe('one-time tunnel keys in authorized_keys', () => {
  it('adds a key restricted to forwarding to one loopback port, with an expiry; ssh-keygen reads the line', async () => {
    const key = newPublicKey('k1');
    expect(await sh(authorizeTunnelKeyCommand(file, key, 'spotlift-tunnel-0a1b', 41234))).toMatchObject({ code: 0 });
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines[0]).toBe(ORCHESTRATOR_KEY);
    expect(lines[1]).toMatch(
      /^restrict,port-forwarding,permitopen="127\.0\.0\.1:41234",command="\/bin\/false",expiry-time="\d{12}" ssh-ed25519 \S+ spotlift-tunnel-0a1b$/,
    );
    expect(lines[1]).toContain(key.split(' ')[1]);
    // Ten minutes ahead, in local time (sshd reads expiry-time without a zone).
    const exp = /expiry-time="(\d{4})(\d{2})(\d{2})(\d{2})(\d{2})"/.exec(lines[1]!)!.slice(1).map(Number);
    const at = new Date(exp[0]!, exp[1]! - 1, exp[2], exp[3], exp[4]).getTime();
    expect(at - Date.now()).toBeGreaterThan(8 * 60_000);
    expect(at - Date.now()).toBeLessThan(11 * 60_000);
    // sshd's own parser (shared with ssh-keygen) accepts the options.
    expect(execFileSync('ssh-keygen', ['-l', '-f', file], { encoding: 'utf8' })).toMatch(/spotlift-tunnel-0a1b/);
  });

  it('a relative path is under the login $HOME; a missing file is refused, not created', async () => {
    const key = newPublicKey('k2');
    expect(await sh(authorizeTunnelKeyCommand('authorized_keys', key, 'spotlift-tunnel-22', 1))).toMatchObject({
      code: 0,
    });
    expect(readFileSync(file, 'utf8')).toMatch(/spotlift-tunnel-22/);
    const missing = await sh(authorizeTunnelKeyCommand('.ssh/authorized_keys', key, 'spotlift-tunnel-23', 1));
    expect(missing.code).not.toBe(0);
    expect(missing.stderr).toMatch(/no authorized_keys file at .*\.ssh\/authorized_keys/);
  });

  it('revoking removes only the marked line, keeps the mode, and is a no-op the second time', async () => {
    const key = newPublicKey('k3');
    await sh(authorizeTunnelKeyCommand(file, key, 'spotlift-tunnel-aa', 5000));
    await sh(authorizeTunnelKeyCommand(file, key, 'spotlift-tunnel-bb', 5001));
    expect(await sh(revokeTunnelKeyCommand(file, 'spotlift-tunnel-aa'))).toMatchObject({ code: 0 });
    const lines = readFileSync(file, 'utf8').trim().split('\n');
    expect(lines).toHaveLength(2);
    expect(lines[0]).toBe(ORCHESTRATOR_KEY);
    expect(lines[1]).toMatch(/spotlift-tunnel-bb$/);
    expect(statSync(file).mode & 0o777).toBe(0o640);
    expect(await sh(revokeTunnelKeyCommand(file, 'spotlift-tunnel-aa'))).toMatchObject({ code: 0 });
    expect(await sh(revokeTunnelKeyCommand(file, 'spotlift-tunnel-bb'))).toMatchObject({ code: 0 });
    expect(readFileSync(file, 'utf8')).toBe(`${ORCHESTRATOR_KEY}\n`);
  });

  it('twelve migrations adding and removing keys at once lose no line (flock around each edit)', async () => {
    const key = newPublicKey('k4');
    const markers = Array.from({ length: 12 }, (_, i) => `spotlift-tunnel-${(i + 16).toString(16)}`);
    await Promise.all(markers.map((m, i) => sh(authorizeTunnelKeyCommand(file, key, m, 6000 + i))));
    expect(readFileSync(file, 'utf8').trim().split('\n')).toHaveLength(13);
    // Half go away while the other half are added again under new markers.
    await Promise.all([
      ...markers.slice(0, 6).map((m) => sh(revokeTunnelKeyCommand(file, m))),
      ...markers.slice(6).map((m, i) => sh(authorizeTunnelKeyCommand(file, key, `${m}0`, 7000 + i))),
    ]);
    const text = readFileSync(file, 'utf8');
    expect(text.startsWith(`${ORCHESTRATOR_KEY}\n`)).toBe(true);
    for (const m of markers.slice(0, 6)) expect(text).not.toMatch(new RegExp(`${m}$`, 'm'));
    for (const m of markers.slice(6)) {
      expect(text).toMatch(new RegExp(`${m}$`, 'm'));
      expect(text).toMatch(new RegExp(`${m}0$`, 'm'));
    }
  });

  it('refuses what is not a public key or a tunnel marker (nothing else can be removed)', () => {
    expect(() => authorizeTunnelKeyCommand(file, 'ssh-ed25519 AAAA"; rm -rf /', 'spotlift-tunnel-1', 1)).toThrow(
      /not a public key/,
    );
    expect(() => revokeTunnelKeyCommand(file, 'ssh-ed25519')).toThrow(/bad tunnel key marker/);
  });

  it('the tunnel command is valid POSIX shell (sh -n)', async () => {
    const cmd = tunnelCommand('/tmp/spotlift-tunnel.x1', { user: 'spotlift', address: '10.0.0.9', port: 22 }, 1, 2, 3);
    expect(await sh(`sh -n <<'EOF'\n${cmd}\nEOF`)).toMatchObject({ code: 0 });
  });
});
