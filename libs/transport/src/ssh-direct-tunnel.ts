import { randomBytes } from 'node:crypto';
import { createInterface } from 'node:readline';
import type { NodeTarget } from '@spotlift/domain';
import type { NodeShell } from './node-shell.port.js';
import {
  KEY_LINE,
  TUNNEL_EXIT,
  TUNNEL_READY,
  authorizeTunnelKeyCommand,
  removeTunnelKeyDirCommand,
  revokeTunnelKeyCommand,
  tunnelCommand,
  tunnelKeyCommand,
} from '@spotlift/node-commands';

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
  const removeKeyDir = () =>
    shell.exec(source, removeTunnelKeyDirCommand(dir), { timeoutMs: 10_000 }).catch(() => undefined);
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
      if (line === TUNNEL_READY) resolve({ ok: true });
      else if (line.startsWith(TUNNEL_EXIT)) resolve({ ok: false, why: line.slice(TUNNEL_EXIT.length).trim() });
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
