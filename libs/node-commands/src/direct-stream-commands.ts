import { type NodeCommand, nodeCommand } from './node-command.js';
import { shq } from './shell.js';

/**
 * The commands of libs/transport's node-to-node stream (direct-stream.ts): a stream that goes from the source
 * straight to a listener on the destination, over plain TCP, TLS (openssl, with spotlift's node certificates)
 * or an SSH tunnel's loopback port, instead of through the orchestrator. Both ends hash what passed; the
 * orchestrator compares the two hashes. Every wait is bounded by `timeout`, and the listener dies with the
 * orchestrator's channel (its stdin), so a cancelled or failed copy leaves nothing listening.
 */

/** What the receiver prints once its listener is bound, and at its end (bytes, then sha256). */
export const DIRECT_LISTENING = 'SPOTLIFT_LISTENING';
export const DIRECT_RECEIVED = 'SPOTLIFT_RECEIVED';
/** What the sender prints at its end: the sha256 of what it wrote to the connection. */
export const DIRECT_SENT = 'SPOTLIFT_SENT';

/** Certificate files of one side (the CA that signed both, this node's certificate and key). */
export interface DirectTlsFiles {
  cacert: string;
  cert: string;
  key: string;
}

const ADDRESS = /^[0-9A-Za-z.:-]+$/;

function checkEndpoint(address: string, port: number): void {
  if (!ADDRESS.test(address)) throw new Error(`not an address: ${address}`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`not a port: ${port}`);
}

const bound = (timeoutS: number) => Math.max(1, Math.ceil(timeoutS));

/**
 * Tools each side needs; prints `DIRECT_MISSING <tool>` per missing one (exit 0 either way). The receiver
 * listens with busybox's nc (plain, and behind an SSH tunnel) or `openssl s_server` (TLS) and waits for its
 * port with ss; the sender writes through bash's /dev/tcp or `openssl s_client`.
 */
export function directStreamProbe(side: 'send' | 'receive', tls: boolean): NodeCommand {
  const tools = side === 'send' ? ['bash', 'sha256sum', ...(tls ? ['openssl'] : [])] : ['ss', 'sha256sum', 'timeout'];
  const lines = tools.map((t) => `command -v ${t} >/dev/null 2>&1 || echo "DIRECT_MISSING ${t}"`);
  if (side === 'receive') {
    lines.push(
      tls
        ? 'command -v openssl >/dev/null 2>&1 || echo "DIRECT_MISSING openssl"'
        : 'busybox nc --help >/dev/null 2>&1 || echo "DIRECT_MISSING busybox nc"',
    );
  }
  return nodeCommand([...lines, 'true'].join('\n'));
}

/**
 * The receiving end: checks `port` is free, starts the listener (one connection, bounded by `timeoutS`), prints
 * DIRECT_LISTENING once the port is bound, feeds what arrives to `unpack` in `dir` while hashing and counting
 * it, and prints `DIRECT_RECEIVED <bytes> <sha256>`. Plain listeners are busybox nc, which binds every address
 * (it has no bind option): what arrives is only used when its hash equals the sender's. TLS: `openssl
 * s_server` bound to `listen.address`, asking the client for a certificate of spotlift's CA. The listener's
 * stdin is a FIFO opened read-write, since s_server ends its session when its stdin ends. The orchestrator's
 * channel closing (fd 3, the stdin it came with) kills the listener.
 */
export function directReceive(opts: {
  dir: string;
  listen: { address: string; port: number };
  unpack: NodeCommand;
  timeoutS: number;
  tls?: DirectTlsFiles;
}): NodeCommand {
  const { dir, listen, unpack, tls } = opts;
  checkEndpoint(listen.address, listen.port);
  const p = listen.port;
  const t = bound(opts.timeoutS);
  const listener = tls
    ? `openssl s_server -quiet -naccept 1 -accept ${shq(`${listen.address}:${p}`)} -cert ${shq(tls.cert)} -key ${shq(tls.key)} -CAfile ${shq(tls.cacert)} -Verify 1 -verify_return_error`
    : `busybox nc -l -p ${p}`;
  return nodeCommand(
    [
      `mkdir -p ${shq(dir)} && cd ${shq(dir)} || exit 1`,
      'exec 3<&0',
      'rx=.spotlift-direct.$$',
      'rm -f $rx.*; mkfifo $rx.data $rx.h $rx.n $rx.in || exit 1',
      `if ss -Htln "sport = :${p}" | grep -q .; then echo "port ${p} is in use on this node" >&2; rm -f $rx.*; exit 97; fi`,
      'sha256sum <$rx.h >$rx.sha & wc -c <$rx.n >$rx.bytes &',
      `{ tee $rx.h $rx.n <$rx.data | ${unpack}; echo $? >$rx.urc; } & cons=$!`,
      `timeout ${t} ${listener} 0<>$rx.in >$rx.data 2>$rx.err & ls=$!`,
      '( cat <&3 >/dev/null 2>&1; kill $ls 2>/dev/null ) & w=$!',
      'i=0',
      `until ss -Htln "sport = :${p}" | grep -q .; do`,
      `  kill -0 $ls 2>/dev/null || break`,
      `  i=$((i + 1)); [ $i -ge 200 ] && { kill $ls 2>/dev/null; break; }`,
      '  sleep 0.05',
      'done',
      `kill -0 $ls 2>/dev/null && echo ${DIRECT_LISTENING}`,
      'wait $ls; lrc=$?',
      'wait $cons',
      'kill $w 2>/dev/null',
      'wait',
      'urc=$(cat $rx.urc 2>/dev/null); urc=${urc:-1}',
      `[ "$lrc" = 0 ] || { echo "the listener on port ${p} failed ($lrc): $(tail -c 400 $rx.err)" >&2; rm -f $rx.*; exit 1; }`,
      '[ "$urc" = 0 ] || { echo "unpacking what arrived failed ($urc)" >&2; rm -f $rx.*; exit 1; }',
      `echo "${DIRECT_RECEIVED} $(tr -d ' ' <$rx.bytes) $(cut -c1-64 $rx.sha)"`,
      'rm -f $rx.*',
    ].join('\n'),
  );
}

/**
 * The sending end (bash, for /dev/tcp): connects to `connect`, runs `send` into the connection while hashing
 * it, and prints `DIRECT_SENT <sha256>`. Exits with `send`'s code when it failed, 112 when the connection
 * could not be made or broke (the listener is checked up before the sender starts). TLS: `openssl s_client` checks the destination's certificate
 * against spotlift's CA and the address it connects to, and presents the source's.
 */
export function directSend(opts: {
  send: NodeCommand;
  connect: { address: string; port: number };
  timeoutS: number;
  tls?: DirectTlsFiles;
}): NodeCommand {
  const { send, connect, tls } = opts;
  checkEndpoint(connect.address, connect.port);
  const t = bound(opts.timeoutS);
  const a = connect.address;
  const writer = tls
    ? `timeout ${t} openssl s_client -quiet -no_ign_eof -nocommands -connect ${shq(`${a}:${connect.port}`)} -cert ${shq(tls.cert)} -key ${shq(tls.key)} -CAfile ${shq(tls.cacert)} -verify_return_error -verify_ip ${shq(a)} >/dev/null`
    : `cat >/dev/tcp/${a}/${connect.port}`;
  const script = [
    'tx=$(mktemp -d /tmp/spotlift-direct.XXXXXX) || exit 1',
    'mkfifo $tx/h || exit 1',
    'sha256sum <$tx/h >$tx/sha &',
    `{ ( ${send} ); echo $? >$tx/rc; } | tee $tx/h | ${writer} 2>>$tx/net.err`,
    'net=${PIPESTATUS[2]}',
    'wait',
    'rc=$(cat $tx/rc 2>/dev/null); rc=${rc:-1}',
    `err=$(tail -c 400 $tx/net.err 2>/dev/null)`,
    'sha=$(cut -c1-64 $tx/sha)',
    'rm -rf $tx',
    '[ "$rc" = 0 ] || exit $rc',
    `[ "$net" = 0 ] || { echo "the connection to ${a}:${connect.port} broke ($net) $err" >&2; exit 112; }`,
    `echo "${DIRECT_SENT} $sha"`,
  ].join('\n');
  return nodeCommand(`bash -c ${shq(script)}`);
}
