import { type NodeCommand, nodeCommand } from './node-command.js';
import { shq } from './shell.js';

/**
 * The commands of libs/transport's node-to-node SSH tunnel (ssh-direct-tunnel.ts has the design): the one-time
 * key on the source, its line in the destination's authorized_keys, the tunnel itself, and the clean-up.
 */

/** Ciphers the tunnel offers, AES-GCM first (AES-NI); OpenSSH's own default puts chacha20-poly1305 first. */
export const TUNNEL_CIPHERS = 'aes128-gcm@openssh.com,aes256-gcm@openssh.com,chacha20-poly1305@openssh.com,aes128-ctr';
/** What the tunnel command prints once the listener is up, and when it ends (with its exit code and error). */
export const TUNNEL_READY = 'spotlift-tunnel-ready';
export const TUNNEL_EXIT = 'spotlift-tunnel-exit';
/** A public key line as sshd and known_hosts take it: type and base64 blob. */
export const KEY_LINE =
  /^(ssh-ed25519|ecdsa-sha2-nistp256|ecdsa-sha2-nistp384|ecdsa-sha2-nistp521|ssh-rsa) [A-Za-z0-9+/]+=*$/;

/** The authorized_keys file as a shell word: relative paths under the login's $HOME. */
function keysFileWord(file: string): string {
  return file.startsWith('/') ? shq(file) : `"$HOME"/${shq(file)}`;
}

/** Shell that runs BODY holding an exclusive lock next to the keys file (flock where it exists). */
function underKeysLock(file: string, body: string): NodeCommand {
  return nodeCommand(
    [
      `f=${keysFileWord(file)}`,
      `[ -f "$f" ] || { echo "no authorized_keys file at $f" >&2; exit 3; }`,
      `lock="$(dirname "$f")/.spotlift-tunnel.lock"`,
      `if command -v flock >/dev/null 2>&1; then exec 9>"$lock"; flock -w 10 9; fi`,
      body,
    ].join('\n'),
  );
}

/** Appends the one-time key, restricted to forwarding to 127.0.0.1:destPort, expiring in 10 minutes. */
export function authorizeTunnelKeyCommand(
  file: string,
  publicKey: string,
  marker: string,
  destPort: number,
): NodeCommand {
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
export function revokeTunnelKeyCommand(file: string, marker: string): NodeCommand {
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
export function tunnelKeyCommand(marker: string, destinationHostKey: string): NodeCommand {
  return nodeCommand(
    [
      'set -e',
      `command -v ssh >/dev/null 2>&1 || { echo 'no OpenSSH client (ssh) on the PATH' >&2; exit 3; }`,
      'd=$(mktemp -d /tmp/spotlift-tunnel.XXXXXX)',
      `ssh-keygen -q -t ed25519 -N '' -C ${marker} -f "$d/key"`,
      `printf 'spotlift-destination %s\\n' ${shq(destinationHostKey)} >"$d/known_hosts"`,
      `printf '%s\\n' "$d"`,
      'cat "$d/key.pub"',
    ].join('\n'),
  );
}

/** Source side, step 3: the tunnel, killed when the orchestrator's channel (our stdin) ends. */
export function tunnelCommand(
  dir: string,
  target: { user: string; address: string; port: number },
  sourcePort: number,
  destPort: number,
  connectTimeoutSeconds: number,
): NodeCommand {
  const ssh = [
    'ssh -F /dev/null -N -i "$d/key" -o IdentitiesOnly=yes -o BatchMode=yes',
    '-o StrictHostKeyChecking=yes -o UserKnownHostsFile="$d/known_hosts" -o GlobalKnownHostsFile=/dev/null',
    '-o HostKeyAlias=spotlift-destination -o ExitOnForwardFailure=yes',
    `-o ConnectTimeout=${connectTimeoutSeconds} -o ServerAliveInterval=5 -o ServerAliveCountMax=3`,
    `-o Ciphers=${TUNNEL_CIPHERS} -o PermitLocalCommand=yes`,
    // Runs once logged in with the -L listener bound: the private key is no longer needed.
    `-o "LocalCommand=rm -f $d/key; echo ${TUNNEL_READY}"`,
    `-p ${target.port} -l ${shq(target.user)} -L 127.0.0.1:${sourcePort}:127.0.0.1:${destPort} ${shq(target.address)}`,
    '</dev/null 2>"$d/err" &',
  ].join(' ');
  return nodeCommand(
    [
      `d=${shq(dir)}`,
      'exec 3<&0',
      ssh,
      'p=$!',
      // Background lists get /dev/null as stdin unless told otherwise: read the channel through fd 3.
      '( cat <&3 >/dev/null 2>&1; kill $p 2>/dev/null ) &',
      'wait $p; rc=$?',
      `err=$(tr '\\n' ' ' <"$d/err" | cut -c1-400)`,
      'rm -rf "$d"',
      `echo "${TUNNEL_EXIT} $rc $err"`,
    ].join('\n'),
  );
}

/** Source side, when the tunnel was never started: the one-time key's directory (checked by the caller) goes. */
export function removeTunnelKeyDirCommand(dir: string): NodeCommand {
  return nodeCommand(`rm -rf ${shq(dir)}`);
}
