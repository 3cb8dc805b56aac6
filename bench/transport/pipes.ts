/**
 * Byte pipes between lab nodes, measured with the same sink (bench/transport/pipe.py in node-b's namespace,
 * timing first byte to EOF where the data arrives) and the same incompressible sender: a raw TCP socket,
 * OpenSSH tunnels, spotlift's node-to-node tunnel and its ssh2 relay.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { Client } from 'ssh2';
import type { NodeTarget } from '@spotlift/domain';
import { labAuthorizedKeys, labDir, netnsPath, repoRoot } from '@spotlift/testing';
import {
  SshNodeShell,
  hostKeyMatches,
  openDirectTunnel,
  sshLocalConnector,
  startRelay,
  type RelayListener,
} from '@spotlift/transport';

export interface PipeResult {
  bytes: number;
  seconds: number;
}

const PIPE = () => join(repoRoot(), 'bench', 'transport', 'pipe.py');
const SSH_CONFIG = () => join(labDir(), 'ssh', 'config');
/** The cipher ssh2 negotiates first with these sshds; OpenSSH is pinned to it so both do the same work. */
export const CIPHER = 'aes128-gcm@openssh.com';

function inNode(node: string | undefined, argv: string[]): ChildProcess {
  const full = node ? ['nsenter', `--net=${netnsPath(node)}`, ...argv] : argv;
  return spawn(full[0]!, full.slice(1), { stdio: ['ignore', 'pipe', 'inherit'] });
}

function exited(child: ChildProcess, what: string): Promise<void> {
  return new Promise((resolve, reject) => {
    child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`${what} exited with ${code}`))));
  });
}

/** A sink in NODE's namespace on HOST; resolves once listening, with its port and the coming result. */
async function startSink(
  node: string,
  host: string,
): Promise<{ port: number; result: Promise<PipeResult>; child: ChildProcess }> {
  const child = inNode(node, ['python3', PIPE(), 'sink', host, '0']);
  const lines = createInterface({ input: child.stdout! })[Symbol.asyncIterator]();
  const first = await lines.next();
  const port = (JSON.parse(String(first.value)) as { listening: number }).listening;
  const result = lines.next().then((l) => JSON.parse(String(l.value)) as PipeResult);
  return { port, result, child };
}

async function measure(
  sinkNode: string,
  sinkHost: string,
  sender: (port: number) => Promise<void>,
): Promise<PipeResult> {
  const sink = await startSink(sinkNode, sinkHost);
  try {
    await sender(sink.port);
    return await sink.result;
  } finally {
    sink.child.kill();
  }
}

function send(node: string | undefined, host: string, port: number, bytes: number): Promise<void> {
  return exited(inNode(node, ['python3', PIPE(), 'send', host, String(port), String(bytes)]), 'pipe.py send');
}

/** Waits for a listener without connecting to it (a probe would be forwarded and eat the sink's one accept). */
async function waitForPort(port: number, node?: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const ss = inNode(node, ['ss', '-Hltn', `sport = :${port}`]);
    let out = '';
    ss.stdout!.on('data', (d: Buffer) => (out += d.toString()));
    await exited(ss, 'ss').catch(() => undefined);
    if (out.trim()) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`nothing listens on 127.0.0.1:${port}${node ? ` in ${node}` : ''}`);
}

const randomPort = () => 30000 + Math.floor(Math.random() * 9000);

/** Sender in node-a straight to the sink on node-b's data address. */
export function rawTcp(bytes: number): Promise<PipeResult> {
  return measure('node-b', '10.77.0.3', (port) => send('node-a', '10.77.0.3', port, bytes));
}

/**
 * OpenSSH `ssh -L` by hand on node-a (the source), to node-b's sshd, the sink on node-b's loopback: one SSH
 * hop, exactly where spotlift's direct mode runs its client. The client is started through node-a's sshd, as
 * spotlift's is: started with nsenter from this process instead it ran ~1.2x slower here, which would flatter
 * the ratio.
 */
export function opensshL(bytes: number): Promise<PipeResult> {
  return measure('node-b', '127.0.0.1', async (port) => {
    const local = randomPort();
    // The remote `cat` reads this client's stdin through both sessions: ending it ends the tunnel.
    const tunnel = [
      `exec ssh -F ${SSH_CONFIG()} -c ${CIPHER} -o ExitOnForwardFailure=yes`,
      `-L 127.0.0.1:${local}:127.0.0.1:${port} node-b 'cat >/dev/null'`,
    ].join(' ');
    const ssh = spawn('ssh', ['-F', SSH_CONFIG(), 'node-a', tunnel], { stdio: ['pipe', 'ignore', 'ignore'] });
    try {
      await waitForPort(local, 'node-a');
      await send('node-a', '127.0.0.1', local, bytes);
    } finally {
      ssh.stdin.end();
      await exited(ssh, 'ssh').catch(() => undefined);
    }
  });
}

/**
 * The relay's topology built from OpenSSH: `ssh -R` to node-a (its sshd listens on node-a's loopback) into
 * `ssh -L` to node-b, both clients on this host. Two SSH hops, like spotlift's relay.
 */
export function opensshTwoHop(bytes: number): Promise<PipeResult> {
  return measure('node-b', '127.0.0.1', async (port) => {
    const mid = randomPort();
    const remote = randomPort() + 10000;
    const l = spawn(
      'ssh',
      [
        '-F',
        SSH_CONFIG(),
        '-N',
        '-c',
        CIPHER,
        '-o',
        'ExitOnForwardFailure=yes',
        '-L',
        `127.0.0.1:${mid}:127.0.0.1:${port}`,
        'node-b',
      ],
      { stdio: 'ignore' },
    );
    const r = spawn(
      'ssh',
      [
        '-F',
        SSH_CONFIG(),
        '-N',
        '-c',
        CIPHER,
        '-o',
        'ExitOnForwardFailure=yes',
        '-R',
        `127.0.0.1:${remote}:127.0.0.1:${mid}`,
        'node-a',
      ],
      { stdio: 'ignore' },
    );
    try {
      await waitForPort(mid);
      await waitForPort(remote, 'node-a');
      await send('node-a', '127.0.0.1', remote, bytes);
    } finally {
      l.kill();
      r.kill();
    }
  });
}

/** spotlift's relay (SshNodeShell.relayPort): node-a's sshd forwards in, node-b's sshd forwards out. */
export function spotliftRelay(
  nodes: Record<string, NodeTarget>,
  privateKey: Buffer,
  bytes: number,
): Promise<PipeResult & { relayed: number }> {
  const shell = new SshNodeShell({ privateKey });
  let relayed = 0;
  return measure('node-b', '127.0.0.1', async (port) => {
    const relay = await shell.relayPort(nodes['node-a']!, nodes['node-b']!, port);
    try {
      await send('node-a', '127.0.0.1', relay.sourcePort, bytes);
      relayed = relay.bytes();
    } finally {
      await relay.close();
      await shell.close();
    }
  }).then((r) => ({ ...r, relayed }));
}

/** spotlift's node-to-node tunnel (openDirectTunnel): OpenSSH `-L` on node-a straight to node-b's sshd, one hop. */
export function spotliftDirect(
  nodes: Record<string, NodeTarget>,
  privateKey: Buffer,
  bytes: number,
): Promise<PipeResult> {
  const shell = new SshNodeShell({ privateKey });
  return measure('node-b', '127.0.0.1', async (port) => {
    const tunnel = await openDirectTunnel(
      shell,
      nodes['node-a']!,
      nodes['node-b']!,
      { sourcePort: randomPort(), destPort: port },
      nodes['node-b']!.hostKey,
      { authorizedKeysFile: labAuthorizedKeys() },
    );
    try {
      await send('node-a', '127.0.0.1', tunnel.sourcePort, bytes);
    } finally {
      await tunnel.close();
      await shell.close();
    }
  });
}

/** ssh2 `forwardOut` alone (one hop, like `ssh -L`): a local listener piped into node-b's sshd. */
export function ssh2SingleHop(node: NodeTarget, privateKey: Buffer, bytes: number): Promise<PipeResult> {
  const client = new Client();
  const ready = new Promise<void>((resolve, reject) => {
    client.once('ready', () => resolve()).once('error', reject);
    client.connect({
      host: node.host,
      port: node.port,
      username: node.user,
      privateKey,
      hostVerifier: (key: Buffer) => hostKeyMatches(node.hostKey, key),
    });
  });
  const server = createServer();
  const listener: RelayListener = {
    listen: (onConnection) =>
      new Promise((resolve) => {
        server.on('connection', (sock) =>
          onConnection(
            () => sock,
            () => sock.destroy(),
          ),
        );
        server.listen(0, '127.0.0.1', () =>
          resolve({
            port: (server.address() as AddressInfo).port,
            stop: () => new Promise<void>((done) => server.close(() => done())),
          }),
        );
      }),
  };
  return measure('node-b', '127.0.0.1', async (port) => {
    await ready;
    const relay = await startRelay(listener, sshLocalConnector(client), port);
    try {
      await send(undefined, '127.0.0.1', relay.sourcePort, bytes);
    } finally {
      await relay.close();
      client.end();
    }
  });
}
