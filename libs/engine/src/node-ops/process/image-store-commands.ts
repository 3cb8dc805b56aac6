import { shq } from '@spotlift/transport';
import { type NodeCommand, nodeCommand } from '../node-command.js';

/**
 * Commands on a storage node's stored images (checkpoints): sealing them with a checksum list and checking
 * them again before a restore. The checks' meaning lives in checkpoint/checkpoint-checks.ts.
 */

/**
 * Prints `MISSING <glob>` for each required file that is absent or empty, then writes `checksums`, syncs and prints
 * `STORED_KB n`. An incremental guard checkpoint's `parent` link (to its parent's directory) is not summed: the
 * parent's images are sealed under its own list.
 */
export function sealImages(dir: string, required: readonly string[], checksums: string): NodeCommand {
  const present = required.map((f) => `set -- ${f}; [ -s "$1" ] || echo "MISSING ${f}";`).join(' ');
  return nodeCommand(
    `cd ${shq(dir)} || exit 1; ${present} ` +
      `sha256sum $(ls | grep -v -e '\\.log$' -e '^${checksums}$' -e '^parent$') > ${checksums} && sync && ` +
      `echo STORED_KB $(du -sk . | cut -f1)`,
  );
}

/** Exits non-zero when a file no longer matches `checksums`, printing the first five bad lines. */
export function checkImages(dir: string, checksums: string): NodeCommand {
  return nodeCommand(
    `cd ${shq(dir)} || exit 2; out=$(sha256sum -c ${checksums} 2>&1); rc=$?; printf '%s\\n' "$out" | grep -v ': OK$' | head -n 5; exit $rc`,
  );
}

/** Prints `FILE <bytes> <name>` for each regular file directly in `dir` (a stored checkpoint's images). */
export function listImageFiles(dir: string): NodeCommand {
  return nodeCommand(`cd ${shq(dir)} || exit 2; find . -maxdepth 1 -type f -printf 'FILE %s %f\\n'`);
}

/**
 * Prints `IMG <name> <base64>` for each named file of `dir`, in one round trip. The caller names files it
 * listed and sized first (listImageFiles), so the answer is bounded before it is asked for.
 */
export function readImageFiles(dir: string, names: readonly string[]): NodeCommand {
  const each = names.map((n) => `printf 'IMG %s ' ${shq(n)}; base64 -w0 ${shq(n)}; echo;`).join(' ');
  return nodeCommand(`cd ${shq(dir)} || exit 2; ${each}`);
}

/** `length` bytes of `dir/name` from `offset`, as base64 (tail seeks in a regular file: no read of the start). */
export function readImageRange(dir: string, name: string, offset: number, length: number): NodeCommand {
  return nodeCommand(`tail -c +${offset + 1} ${shq(`${dir}/${name}`)} | head -c ${length} | base64 -w0`);
}

/**
 * Streams a checkpoint archive in Podman's layout to stdout: the images under `checkpoint/` (a symlink to
 * the stored directory, followed by tar -h), the metadata files read from stdin (one `name base64` line
 * each) and `stats-dump` at the top. Logs and spotlift's own SHA256SUMS stay out. The staging directory is
 * removed when tar ends, however it ends.
 */
export function exportArchive(imageDir: string, stageDir: string, names: readonly string[]): NodeCommand {
  const reads = names.map((n) => `read -r _ b && printf '%s' "$b" | base64 -d > ${shq(n)} || exit 3;`).join(' ');
  return nodeCommand(
    `rm -rf ${shq(stageDir)} && mkdir -p -m 0700 ${shq(stageDir)} && cd ${shq(stageDir)} || exit 2; ` +
      // A hung-up SSH channel (the caller left) is a signal: turned into an exit, so the EXIT trap cleans up.
      `trap 'rm -rf ${shq(stageDir)}' EXIT; trap 'exit 1' HUP INT TERM PIPE; ${reads} ` +
      `ln -s ${shq(imageDir)} checkpoint && cp ${shq(`${imageDir}/stats-dump`)} stats-dump 2>/dev/null; ` +
      `tar -chf - --exclude='checkpoint/*.log' --exclude='checkpoint/SHA256SUMS' ${names.map(shq).join(' ')} $(ls stats-dump 2>/dev/null) checkpoint`,
  );
}

/** The `openssl enc` options of encrypted checkpoints; checkpoint-crypto.ts decrypts the same in the orchestrator. */
export const OPENSSL_ENC = '-aes-256-ctr -pbkdf2 -iter 10000 -md sha256';

/**
 * Stored in clear: CPU features (a restore's preflight checks them before any key is given out), CRIU's dump
 * statistics (counts and times) and the sweeper's owner marker (ids). Logs are never stored. Everything else,
 * memory and metadata, is encrypted.
 */
export const CLEAR_FILES: readonly string[] = ['cpuinfo.img', 'stats-dump', 'spotlift-owner.json'];
const CLEAR_CASE = ['*.log', ...CLEAR_FILES, '.*'].join('|');

/**
 * Encrypts the image files of `dir` in place (on the source, before they stream to the storage node), then
 * prints `sha256sum` of every file that will be stored. The data key is stdin's first line: it never appears in
 * an argv (printf is a shell builtin, openssl reads it with `-pass stdin`). Each file gets openssl's own random
 * salt, so its own key and counter.
 */
export function encryptImages(dir: string): NodeCommand {
  return nodeCommand(
    `cd ${shq(dir)} || exit 2; IFS= read -r k || exit 3; for f in *; do [ -f "$f" ] || continue; ` +
      `case "$f" in ${CLEAR_CASE}) continue;; esac; ` +
      `printf '%s\\n' "$k" | openssl enc -e ${OPENSSL_ENC} -pass stdin -in "$f" -out "$f.enc" && mv -f "$f.enc" "$f" ` +
      `|| { echo "ENCRYPT_FAILED $f"; rm -f "$f.enc"; exit 4; }; done; ` +
      `sha256sum $(ls | grep -v -e '\\.log$')`,
  );
}

/**
 * Checks the copied files of `dir` against the sums recorded when the checkpoint was taken, then decrypts them
 * in place (on the restoring node). stdin: the data key's line, then the sums. A file that differs, is missing,
 * or is not in the list: `TAMPERED` and exit 5, nothing decrypted.
 */
export function decryptImages(dir: string): NodeCommand {
  return nodeCommand(
    `cd ${shq(dir)} || exit 2; IFS= read -r k || exit 3; cat > .sums || exit 3; ` +
      `out=$(sha256sum -c .sums 2>&1) || { printf '%s\\n' "$out" | grep -v ': OK$' | head -n 5; echo TAMPERED; exit 5; }; ` +
      `for f in *; do grep -q "^[0-9a-f]\\{64\\} [ *]\\?$f\\$" .sums || { echo "UNLISTED $f"; echo TAMPERED; exit 5; }; done; ` +
      `for f in *; do case "$f" in ${CLEAR_CASE}) continue;; esac; ` +
      `printf '%s\\n' "$k" | openssl enc -d ${OPENSSL_ENC} -pass stdin -in "$f" -out "$f.dec" && mv -f "$f.dec" "$f" ` +
      `|| { echo "DECRYPT_FAILED $f"; exit 4; }; done; rm -f .sums`,
  );
}

/** A stored file of `dir` on stdout (a container checkpoint's archive, read through the orchestrator's tar guard). */
export function sendImageFile(dir: string, name: string): NodeCommand {
  return nodeCommand(`cat ${shq(`${dir}/${name}`)}`);
}

/**
 * Unpacks the named members of `dir/archive` into `dir/into` (replaced whole: unpacked beside it, then renamed),
 * owned by the login, with no modes kept from the archive, and writes `archive.sha256` (the sum the
 * orchestrator checked the archive against) last, so a half-done unpack is never taken for a whole one. One
 * unpack at a time per checkpoint (`into.lock`: an inspect and a search may ask together); one that waited finds
 * the work done and stops. The names are the archive's own, judged member by member first
 * (checkpoint/container-archive.ts).
 */
export function extractArchiveMembers(
  dir: string,
  archive: string,
  into: string,
  names: readonly string[],
  sha256: string,
): NodeCommand {
  const part = `${into}.part`;
  return nodeCommand(
    `cd ${shq(dir)} || exit 2; exec 9>${shq(`${into}.lock`)} && flock -w 600 9 || exit 3; ` +
      `[ "$(cat ${shq(`${into}/archive.sha256`)} 2>/dev/null)" = ${shq(sha256)} ] && exit 0; ` +
      `rm -rf ${shq(part)} && mkdir -m 0700 ${shq(part)} && ` +
      `LC_ALL=C tar -C ${shq(part)} -xf ${shq(archive)} --no-same-owner --no-same-permissions -- ${names.map(shq).join(' ')} && ` +
      `printf '%s\\n' ${shq(sha256)} > ${shq(`${part}/archive.sha256`)} && rm -rf ${shq(into)} && mv ${shq(part)} ${shq(into)}`,
  );
}

/**
 * Receives an encrypted container checkpoint's picked members from the orchestrator (checkpoint/
 * encrypted-container-images.ts): a tar of ciphertext files it built itself, on stdin, unpacked into `dir/part`
 * (its own, fresh) with no modes kept, then renamed to `dir/into` under the same lock as extractArchiveMembers.
 * `sums` is the tar's last member: without it (the orchestrator cut the stream: a refused member, a sum that did
 * not match) the part is removed and nothing replaces `into`. An unpack of the same archive that finished first
 * (its sums' first line the same) is kept; the part is removed however the command ends.
 */
export function receiveArchiveMembers(dir: string, part: string, into: string, sums: string): NodeCommand {
  return nodeCommand(
    `cd ${shq(dir)} || exit 2; trap 'rm -rf ${shq(part)}' EXIT; trap 'exit 1' HUP INT TERM PIPE; ` +
      `mkdir -m 0700 ${shq(part)} || exit 2; ` +
      `LC_ALL=C tar -C ${shq(part)} -xf - --no-same-owner --no-same-permissions || exit 4; ` +
      `[ -s ${shq(`${part}/${sums}`)} ] || exit 5; exec 9>${shq(`${into}.lock`)} && flock -w 600 9 || exit 3; ` +
      `[ "$(head -n 1 ${shq(`${into}/${sums}`)} 2>/dev/null)" = "$(head -n 1 ${shq(`${part}/${sums}`)})" ] && exit 0; ` +
      `rm -rf ${shq(into)} && mv ${shq(part)} ${shq(into)}`,
  );
}
