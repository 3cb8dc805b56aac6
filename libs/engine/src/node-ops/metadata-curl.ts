/**
 * The node side of the SSH metadata client (apps/orchestrator notices): the curl command, the curl config
 * sent on its stdin (so tokens and bodies never appear on a command line or in `ps` on the node) and the
 * parsing of `curl -D -` output.
 */
import type { MetadataRequest, MetadataResponse } from '@spotlift/notices';
import { type NodeCommand, nodeCommand } from './node-command.js';

/**
 * Runs on the node. `-K -` reads every option from stdin; `-D -` writes the response headers before the
 * body on stdout; `--noproxy '*'` because IMDS refuses token requests that went through a proxy.
 */
export const CURL_COMMAND: NodeCommand = nodeCommand("curl -sS -D - --noproxy '*' -K -");

/** One value in curl's config-file syntax: double-quoted, with the escapes curl understands. */
function quote(value: string): string {
  const escaped = value.replace(
    /[\\"\t\n\r\v]/g,
    (c) => ({ '\\': '\\\\', '"': '\\"', '\t': '\\t', '\n': '\\n', '\r': '\\r', '\v': '\\v' })[c]!,
  );
  return `"${escaped}"`;
}

/** The curl config for one request; `timeoutMs` bounds the whole exchange on the node. */
export function curlConfig(url: string, req: MetadataRequest, timeoutMs: number): string {
  const lines = [
    `url = ${quote(url)}`,
    `request = ${quote(req.method)}`,
    `max-time = ${(timeoutMs / 1000).toFixed(3)}`,
  ];
  // No `Expect: 100-continue` round trip for the Azure acknowledgement.
  lines.push(`header = ${quote('Expect:')}`);
  for (const [name, value] of Object.entries(req.headers ?? {})) {
    if (/[\r\n:]/.test(name) || /[\r\n]/.test(value)) throw new RangeError(`header '${name}' cannot be sent`);
    lines.push(`header = ${quote(`${name}: ${value}`)}`);
  }
  // data-raw, not data-binary: a body starting with '@' must not name a file on the node.
  if (req.body !== undefined) lines.push(`data-raw = ${quote(req.body)}`);
  return lines.join('\n') + '\n';
}

/** What `curl -D -` printed, split into the final response's status, headers and body. */
export function parseCurlOutput(stdout: string): MetadataResponse | undefined {
  let rest = stdout;
  for (;;) {
    const status = /^HTTP\/[\d.]+ (\d{3})[^\n]*\n/.exec(rest);
    if (!status) return undefined;
    const end = rest.indexOf('\r\n\r\n');
    const endLf = rest.indexOf('\n\n');
    const cut = end >= 0 ? end + 4 : endLf >= 0 ? endLf + 2 : -1;
    if (cut < 0) return undefined;
    const block = rest.slice(0, cut);
    rest = rest.slice(cut);
    const code = Number(status[1]);
    // 1xx interim answers come before the real one.
    if (code >= 100 && code < 200) continue;
    const headers: Record<string, string> = {};
    for (const line of block.split(/\r?\n/).slice(1)) {
      const i = line.indexOf(':');
      if (i <= 0) continue;
      headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
    }
    return { status: code, headers, body: rest };
  }
}

/** curl's exit codes that mean "the request's own timeout fired". */
export const CURL_TIMEOUT_EXIT = 28;
