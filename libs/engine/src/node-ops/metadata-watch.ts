/**
 * The node side of the long-lived metadata watch (apps/orchestrator notices, stream mode): one command per
 * node, kept running over one SSH channel, that polls the metadata endpoint locally and prints an answer
 * only when it changed, instead of one `curl` exec over SSH per request. Its stdin carries the requests as
 * curl configs (tokens never on a command line or in `ps`), written to a private temporary directory.
 */
import { shq } from '@spotlift/node-commands';
import { type NodeCommand, nodeCommand } from './node-command.js';
import { NOW_NS_FN } from './node-scripts.js';

/**
 * stdin: boundary, period in ms, loops per tick line, request count, then each curl config ended by a
 * boundary line. stdout: `<b> <i>` + body + `\n<http code>\n<curl exit>` + `\n<b> end` for each changed
 * answer, and `<b> tick` every few loops (so the orchestrator can tell a live, quiet loop from a stuck one).
 * A failed write (the orchestrator went away, its channel closed) ends the loop; so does the trap's clean-up.
 * Rounds start every period on a fixed schedule: the sleep is what is left of the period after the round's
 * own curls (sleeping a full period after them made 2.6-3.1 rounds/s at 250 ms); a round that overran starts
 * the next at once and the schedule restarts from then (no burst to catch up). `$((...))` is 64-bit in dash
 * and busybox ash, enough for ns since the epoch; where `now_ns` has only whole seconds, the clamp keeps each
 * sleep within [0, period].
 */
const SCRIPT = `${NOW_NS_FN}
set -u
umask 077
d=$(mktemp -d) || exit 1
trap 'rm -rf "$d"' EXIT
trap 'exit 0' HUP INT TERM PIPE
read -r b; read -r s; read -r t; read -r n
i=0
while [ "$i" -lt "$n" ]; do
  : > "$d/$i"
  while IFS= read -r l; do [ "$l" = "$b" ] && break; printf '%s\\n' "$l" >> "$d/$i"; done
  i=$((i+1))
done
k=0
w=$(now_ns)
while :; do
  i=0
  while [ "$i" -lt "$n" ]; do
    o=$(curl -sS --noproxy '*' -K "$d/$i" -w '\\n%{http_code}' 2>/dev/null; printf '\\n%s' "$?")
    eval "p=\\\${o$i-}"
    if [ "$o" != "$p" ]; then
      eval "o$i=\\$o"
      printf '%s %s\\n%s\\n%s end\\n' "$b" "$i" "$o" "$b" || exit 0
    fi
    i=$((i+1))
  done
  k=$((k+1))
  if [ "$k" -ge "$t" ]; then printf '%s tick\\n' "$b" || exit 0; k=0; fi
  w=$((w + s * 1000000)); r=$(( (w - $(now_ns)) / 1000000 ))
  if [ "$r" -gt "$s" ]; then r=$s; w=$(( $(now_ns) + s * 1000000 )); fi
  if [ "$r" -gt 0 ]; then sleep "$((r / 1000)).$(printf '%03d' $((r % 1000)))"; else w=$(now_ns); fi
done`;

/** Runs on the node: the loop above, under `sh` whatever the login shell is. */
export const METADATA_WATCH_COMMAND: NodeCommand = nodeCommand(`exec sh -c ${shq(SCRIPT)}`);

/** What the loop is told on stdin. */
export function metadataWatchInput(boundary: string, intervalMs: number, tickEvery: number, configs: string[]): string {
  if (!/^[0-9a-f]{16,64}$/.test(boundary)) throw new RangeError('the boundary must be 16-64 hex digits');
  const parts = [
    boundary,
    String(Math.max(1, Math.round(intervalMs))),
    String(Math.max(1, tickEvery)),
    String(configs.length),
  ];
  for (const c of configs) parts.push(c.replace(/\n$/, ''), boundary);
  return parts.join('\n') + '\n';
}

/** One thing the loop said. `curlExit` 0 with `status` is an HTTP answer; otherwise no answer (28: timed out). */
export type MetadataWatchEvent =
  { kind: 'tick' } | { kind: 'answer'; index: number; status: number; body: string; curlExit: number };

/**
 * Reads the loop's stdout as it arrives. Holds at most `maxPendingBytes` of an unfinished record: a node
 * printing more than a metadata answer can be makes `push` throw, and the caller ends the channel.
 */
export class MetadataWatchParser {
  private buf = '';

  constructor(
    private readonly boundary: string,
    private readonly maxPendingBytes: number,
  ) {}

  push(chunk: string): MetadataWatchEvent[] {
    this.buf += chunk;
    const events: MetadataWatchEvent[] = [];
    const head = this.boundary + ' ';
    const end = `\n${this.boundary} end\n`;
    for (;;) {
      const at = this.buf.indexOf(head);
      if (at < 0) break;
      const nl = this.buf.indexOf('\n', at);
      if (nl < 0) break;
      const word = this.buf.slice(at + head.length, nl);
      if (word === 'tick') {
        events.push({ kind: 'tick' });
        this.buf = this.buf.slice(nl + 1);
        continue;
      }
      const stop = this.buf.indexOf(end, nl);
      if (stop < 0) break;
      const content = this.buf.slice(nl + 1, stop);
      this.buf = this.buf.slice(stop + end.length);
      const exitAt = content.lastIndexOf('\n');
      const codeAt = content.lastIndexOf('\n', exitAt - 1);
      const index = Number(word);
      const status = Number(content.slice(codeAt + 1, exitAt));
      const curlExit = Number(content.slice(exitAt + 1));
      if (!Number.isInteger(index) || codeAt < 0 || !Number.isInteger(status) || !Number.isInteger(curlExit)) {
        throw new Error('the metadata watch printed a malformed record');
      }
      events.push({ kind: 'answer', index, status, body: content.slice(0, codeAt), curlExit });
    }
    if (this.buf.length > this.maxPendingBytes) {
      throw new Error(`the metadata watch printed more than ${this.maxPendingBytes} bytes without ending a record`);
    }
    return events;
  }
}
