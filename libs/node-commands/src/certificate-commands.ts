import { type NodeCommand, nodeCommand } from './node-command.js';
import { shq } from './shell.js';

/**
 * The commands of libs/transport's NodeCertificates: a node's TLS files live in generations under
 * `<dir>/gen-<fingerprint>`, `<dir>/current` pointing at the one in use.
 */

/** Prints `GEN <name>`, `CA <base64>` and `CERT <base64>` of the current generation; nothing without one. */
export function readNodeTlsCommand(dir: string): NodeCommand {
  const d = shq(dir);
  return nodeCommand(
    `g=$(readlink ${d}/current 2>/dev/null) && [ -s ${d}/"$g"/key.pem ] && ` +
      `echo "GEN $g" && echo "CA $(base64 -w0 ${d}/"$g"/ca.pem)" && echo "CERT $(base64 -w0 ${d}/"$g"/cert.pem)"; true`,
  );
}

/**
 * Writes a generation from three base64 lines on stdin (CA, certificate, key: the key never appears in a
 * command line), switches `current` to it with a rename, and removes generations older than the previous one.
 */
export function installNodeTlsCommand(dir: string, gen: string): NodeCommand {
  if (!/^gen-[0-9a-f]+$/.test(gen)) throw new Error(`bad certificate generation name ${gen}`);
  const d = shq(dir);
  return nodeCommand(
    [
      'set -e; umask 077',
      `mkdir -p -m 0700 ${d}; cd ${d}; rm -rf ${gen}.tmp; mkdir -m 0700 ${gen}.tmp`,
      'IFS= read -r ca; IFS= read -r cert; IFS= read -r key',
      `printf %s "$ca" | base64 -d > ${gen}.tmp/ca.pem`,
      `printf %s "$cert" | base64 -d > ${gen}.tmp/cert.pem`,
      `printf %s "$key" | base64 -d > ${gen}.tmp/key.pem`,
      `chmod 0600 ${gen}.tmp/*; rm -rf ${gen}; mv ${gen}.tmp ${gen}`,
      'prev=$(readlink current 2>/dev/null || true)',
      `ln -sfn ${gen} current.tmp; mv -Tf current.tmp current`,
      `for o in gen-*; do [ "$o" = ${gen} ] || [ "$o" = "$prev" ] || rm -rf "$o"; done`,
    ].join('\n'),
  );
}
