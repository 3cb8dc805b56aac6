import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { NodeTarget } from '@spotlift/domain';
import type { NodeShell } from './node-shell.port.js';
import { shq } from './shell.js';

/**
 * Page traffic through SSH, node to node: the source runs OpenSSH `ssh -N -L` straight to the destination's
 * sshd, one hop, like a hand-made tunnel (the relay in ssh-relay.ts crosses the orchestrator and costs two).
 *
 *   1. source: `ssh-keygen` makes a one-time ed25519 key in a 0700 temp dir (the private key never leaves the
 *      source) and a known_hosts file holding the destination's pinned host key (StrictHostKeyChecking).
 *   2. destination: the public key is appended to the login's authorized_keys with
 *      `restrict,port-forwarding,permitopen="127.0.0.1:<page-server port>",command="/bin/false"` and an
 *      `expiry-time` 10 minutes ahead (a backstop if the orchestrator dies before step 4).
 *   3. source: `ssh -L 127.0.0.1:<sourcePort>:127.0.0.1:<destPort>` logs in; its LocalCommand deletes the
 *      private key and says ready once the listener is up. The command lives as long as the orchestrator's
 *      channel to it: when that closes (close(), or the orchestrator dies) the tunnel is killed.
 *   4. destination: the key line is removed again as soon as the login is done (ready or failed), under
 *      flock, by an atomic rename, so an established session is the only thing the key ever gave.
 *
 * Needs an OpenSSH client on the source, an sshd on the destination that honours those key options
 * (OpenSSH >= 7.2; expiry-time >= 8.2), and a route from the source to the destination's sshd.
 */

export interface DirectTunnelOptions {
  /** The destination login's authorized_keys; relative paths are under its $HOME. Must exist already. */
  authorizedKeysFile: string;
  /** Where the source reaches the destination's sshd (default: its data address, else its host). */
  destinationAddress?: string;
  /** OpenSSH ConnectTimeout on the source, seconds. */
  connectTimeoutSeconds?: number;
  /** How long the orchestrator waits for the tunnel to be up. */
  readyTimeoutMs?: number;
}

export interface DirectTunnel {
  /** Where programs on the source connect (its 127.0.0.1). */
  sourcePort: number;
  /** How the bytes go, for the job's record. */
  route: string;
  /** Ends the tunnel (and every connection through it). Safe to call twice. */
  close(): Promise<void>;
}

/** Ciphers the tunnel offers, AES-GCM first (AES-NI); OpenSSH's own default puts chacha20-poly1305 first. */
export const TUNNEL_CIPHERS = 'aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr';
const READY = 'spotlift-tunnel-ready';
const EXIT = 'spotlift-tunnel-exit';
const KEY_LINE = /^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+=*$/;

/** The authorized_keys file as a shell word: relative paths under the login's $HOME. */
function keysFileWord(file: string): string {
  return file.startsWith('/') ? shq(file) : `"$HOME"/${shq(file)}`;
}

/** Shell that runs BODY holding an exclusive lock next to the keys file (flock where it exists). */
function underKeysLock(file: string, body: string): string {
  return [
    `f=${keysFileWord(file)}`,
    `[ -f "$f" ] || { echo "no authorized_keys file at $f" >&2; exit 3; }`,
    `lock="$(dirname "$f")/.spotlift-tunnel.lock"`,
    `if command -v flock >/dev/null 2>&1; then exec 9>"$lock"; flock -w 10 9; fi`,
    body,
  ].join('\n');
}

/** Appends the one-time key, restricted to forwarding to 127.0.0.1:destPort, expiring in 10 minutes. */
export function authorizeTunnelKeyCommand(file: string, publicKey: string, marker: string, destPort: number): string {
  const [type, blob] = publicKey.trim().split(/\s+/);
  if (!type || !blob || !KEY_LINE.test(`${type} ${blob}`)) throw new Error(`not a public key: ${publicKey}`);
  const options = `restrict,port-forwarding,permitopen="127.0.0.1:${destPort}",command="/bin/false"`;
  return underKeysLock(
    file,
    [
      // Local time, as sshd reads expiry-time without a zone.
      `exp=$(date -d "@$(( $(date +%s) + 600 ))" +%Y%m%d%H%M)`,
      `printf '%s,expiry-time="%s" %s\\n' ${shq(options)} "$exp" ${shq(`${type} ${blob} ${marker}`)} >>"$f"`,
    ].join('\n'),
  );
}

/** Removes every line carrying `marker` by an atomic rename (sshd never reads a half-written file). */
export function revokeTunnelKeyCommand(file: string, marker: string): string {
  if (!/^spotlift-tunnel-[0-9a-f]+$/.test(marker)) throw new Error(`bad tunnel key marker ${marker}`);
  return underKeysLock(
    file,
    [
      `grep -qF ${marker} "$f" || exit 0`,
      `tmp=$(mktemp "$f.XXXXXX")`,
      `grep -vF ${marker} "$f" >"$tmp" || [ $? -eq 1 ]`,
      `chown --reference="$f" "$tmp" 2>/dev/null; chmod --reference="$f" "$tmp" 2>/dev/null`,
      `mv -f "$tmp" "$f"`,
    ].join('\n'),
  );
}

/** Source side, step 1: the key pair and known_hosts in a private temp dir; prints the dir and the public key. */
export function tunnelKeyCommand(marker: string, destinationHostKey: string): string {
  return [
    'set -e',
    `command -v ssh >/dev/null 2>&1 || { echo 'no OpenSSH client (ssh) on the PATH' >&2; exit 3; }`,
    'd=$(mktemp -d /tmp/spotlift-tunnel.XXXXXX)',
    `ssh-keygen -q -t ed25519 -N '' -C ${marker} -f "$d/key"`,
    `printf 'spotlift-destination %s\\n' ${shq(destinationHostKey)} >"$d/known_hosts"`,
    `printf '%s\\n' "$d"`,
    'cat "$d/key.pub"',
  ].join('\n');
}

/** Source side, step 3: the tunnel, killed when the orchestrator's channel (our stdin) ends. */
export function tunnelCommand(
  dir: string,
  target: { user: string; address: string; port: number },
  sourcePort: number,
  destPort: number,
  connectTimeoutSeconds: number,
): string {
  const ssh = [
    'ssh -F /dev/null -N -i "$d/key" -o IdentitiesOnly=yes -o BatchMode=yes',
    '-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$d/known_hosts" -o GlobalKnownHostsFile=/dev/null',
    '-o HostKeyAlias=spotlift-destination -o ExitOnForwardFailure=yes',
    `-o ConnectTimeout=${connectTimeoutSeconds} -o ServerAliveInterval=5 -o ServerAliveCountMax=3`,
    `-o Ciphers=${TUNNEL_CIPHERS} -o PermitLocalCommand=yes`,
    // Runs once logged in with the -L listener bound: the private key is no longer needed.
    `-o "LocalCommand=rm -f $d/key; echo ${READY}"`,
    `-p ${target.port} -l ${shq(target.user)} -L 127.0.0.1:${sourcePort}:127.0.0.1:${destPort} ${shq(target.address)}`,
    '</dev/null 2>"$d/err" &',
  ].join(' ');
  return [
    `d=${shq(dir)}`,
    'exec 3<&0',
    ssh,
    'p=$!',
    // Background lists get /dev/null as stdin unless told otherwise: read the channel through fd 3.
    '( cat <&3 >/dev/null 2>&1; kill $p 2>/dev/null ) &',
    'wait $p; rc=$?',
    `err=$(tr '\\n' ' ' <"$d/err" | cut -c1-400)`,
    'rm -rf "$d"',
    `echo "${EXIT} $rc $err"`,
  ].join('\n');
}

/** Opens a node-to-node tunnel (see the top of this file); rejects with the reason when it cannot. */
export async function openDirectTunnel(
  shell: NodeShell,
  source: NodeTarget,
  destination: NodeTarget,
  ports: { sourcePort: number; destPort: number },
  destinationHostKey: string,
  opts: DirectTunnelOptions,
): Promise<DirectTunnel> {
  if (!KEY_LINE.test(destinationHostKey.trim())) {
    throw new Error(`${destination.id}'s host key is not known as a key line (only a fingerprint is pinned)`);
  }
  const marker = `spotlift-tunnel-${randomBytes(8).toString('hex')}`;
  const address = opts.destinationAddress ?? destination.dataAddress ?? destination.host;
  const keys = await shell.exec(source, tunnelKeyCommand(marker, destinationHostKey.trim()), { timeoutMs: 10_000 });
  const [dir, publicKey] = keys.stdout.trim().split('\n');
  if (keys.code !== 0 || !dir || !/^\/tmp\/spotlift-tunnel\.[A-Za-z0-9]+$/.test(dir) || !publicKey) {
    throw new Error(`one-time key on ${source.id}: ${keys.stderr.trim() || `exit ${keys.code}`}`);
  }
  const removeKeyDir = () => shell.exec(source, `rm -rf ${shq(dir)}`, { timeoutMs: 10_000 }).catch(() => undefined);
  const revoke = async () => {
    const res = await shell.exec(destination, revokeTunnelKeyCommand(opts.authorizedKeysFile, marker), {
      timeoutMs: 15_000,
    });
    if (res.code !== 0) throw new Error(`revoking the tunnel key on ${destination.id}: ${res.stderr.trim()}`);
  };

  const authorized = await shell.exec(
    destination,
    authorizeTunnelKeyCommand(opts.authorizedKeysFile, publicKey, marker, ports.destPort),
    { timeoutMs: 15_000 },
  );
  if (authorized.code !== 0) {
    await removeKeyDir();
    throw new Error(`authorizing the one-time key on ${destination.id}: ${authorized.stderr.trim()}`);
  }

  const tunnel = await shell
    .spawn(
      source,
      tunnelCommand(
        dir,
        { user: destination.user, address, port: destination.port },
        ports.sourcePort,
        ports.destPort,
        opts.connectTimeoutSeconds ?? 3,
      ),
    )
    .catch(async (error: unknown) => {
      await revoke().catch(() => undefined);
      await removeKeyDir();
      throw error;
    });
  const ready = await new Promise<{ ok: true } | { ok: false; why: string }>((resolve) => {
    const lines = createInterface({ input: tunnel.stdout });
    // readline re-emits its input's errors; unheard, a broken channel would be an uncaught exception.
    lines.on('error', (error: Error) => resolve({ ok: false, why: `channel broke: ${error.message}` }));
    const timer = setTimeout(
      () => resolve({ ok: false, why: `not up after ${opts.readyTimeoutMs ?? 10_000} ms` }),
      opts.readyTimeoutMs ?? 10_000,
    );
    lines.on('line', (line) => {
      if (line === READY) resolve({ ok: true });
      else if (line.startsWith(EXIT)) resolve({ ok: false, why: line.slice(EXIT.length).trim() });
      else return;
      clearTimeout(timer);
    });
    void tunnel.done.then((d) => {
      clearTimeout(timer);
      resolve({ ok: false, why: `ended (${d.code ?? d.signal}) ${d.stderr.trim()}` });
    });
  });
  // Logged in or given up: either way the key has done its work on the destination.
  const revoked = revoke();

  let closing: Promise<void> | undefined;
  const close = () =>
    (closing ??= (async () => {
      tunnel.stdin.end();
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([tunnel.done, new Promise((r) => (timer = setTimeout(r, 5_000)))]);
      clearTimeout(timer);
      await revoked.catch(() => revoke().catch(() => undefined));
    })());
  if (!ready.ok) {
    await close();
    await removeKeyDir();
    throw new Error(`ssh ${source.id} -> ${destination.id} (${address}:${destination.port}): ${ready.why}`);
  }
  try {
    await revoked;
  } catch (error) {
    await close();
    throw error;
  }
  return {
    sourcePort: ports.sourcePort,
    route: `direct: OpenSSH -L on ${source.id} to ${destination.id}'s sshd at ${address}:${destination.port}, one-time key`,
    close,
  };
}
