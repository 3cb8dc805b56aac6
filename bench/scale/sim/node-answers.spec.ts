import {
  CURL_COMMAND,
  METADATA_WATCH_COMMAND,
  MetadataWatchParser,
  curlConfig,
  metadataWatchInput,
  parseCurlOutput,
} from '@spotlift/engine';
import { shq } from '@spotlift/transport';
import {
  WatchLoop,
  classifyCommand,
  curlDump,
  imdsAnswer,
  parseCurlConfig,
  parseWatchInput,
  type ImdsState,
} from './node-answers.js';

// The simulator must speak exactly what the orchestrator writes and reads: each case goes through the
// orchestrator's own producers (curlConfig, metadataWatchInput) and parsers (MetadataWatchParser, parseCurlOutput).
const BASE = 'http://169.254.169.254';
const SPOT = '/latest/meta-data/spot/instance-action';
const TOKEN = { 'X-aws-ec2-metadata-token': 'tok"en\\1' };

describe('simulated node answers', () => {
  it('reads back the curl configs the orchestrator writes, escapes included', () => {
    const req = parseCurlConfig(curlConfig(BASE + SPOT, { method: 'GET', path: SPOT, headers: TOKEN }, 2000));
    expect(req).toEqual({ method: 'GET', path: SPOT, headers: { 'x-aws-ec2-metadata-token': 'tok"en\\1' } });
  });

  it('answers a token PUT and the notice path through CURL_COMMAND output the orchestrator parses', () => {
    const state: ImdsState = {};
    const put = parseCurlConfig(
      curlConfig(
        `${BASE}/latest/api/token`,
        { method: 'PUT', path: '/latest/api/token', headers: { 'X-aws-ec2-metadata-token-ttl-seconds': '300' } },
        2000,
      ),
    );
    const token = parseCurlOutput(curlDump(imdsAnswer(state, put)));
    expect(token).toMatchObject({ status: 200, body: 'simulated-token' });
    expect(token?.headers['x-aws-ec2-metadata-token-ttl-seconds']).toBe('300');
    const get = parseCurlConfig(curlConfig(BASE + SPOT, { method: 'GET', path: SPOT, headers: TOKEN }, 2000));
    expect(parseCurlOutput(curlDump(imdsAnswer(state, get)))?.status).toBe(404);
    state.spot = { action: 'terminate', time: '2026-12-07T05:00:00Z' };
    const notice = parseCurlOutput(curlDump(imdsAnswer(state, get)));
    expect(JSON.parse(notice!.body)).toEqual(state.spot);
  });

  it('emulates the watch loop: changes only, ticks, a notice seen at the next round', () => {
    const boundary = 'ab'.repeat(12);
    const configs = [curlConfig(BASE + SPOT, { method: 'GET', path: SPOT, headers: TOKEN }, 2000)];
    const input = parseWatchInput(metadataWatchInput(boundary, 250, 4, configs));
    expect(input).toMatchObject({ boundary, periodMs: 250, tickEvery: 4 });
    const loop = new WatchLoop(input!);
    expect(loop.watchesSpot).toBe(true);
    const parser = new MetadataWatchParser(boundary, 1 << 20);
    const state: ImdsState = {};
    expect(parser.push(loop.round(state))).toEqual([
      { kind: 'answer', index: 0, status: 404, body: '404 - Not Found', curlExit: 0 },
    ]);
    // Unchanged answers print nothing; the fourth round prints a tick.
    expect(parser.push(loop.round(state) + loop.round(state))).toEqual([]);
    expect(parser.push(loop.round(state))).toEqual([{ kind: 'tick' }]);
    state.spot = { action: 'terminate', time: '2026-12-07T05:00:00Z' };
    const [seen] = parser.push(loop.round(state));
    expect(seen).toMatchObject({ kind: 'answer', index: 0, status: 200, curlExit: 0 });
    expect(JSON.parse((seen as { body: string }).body)).toEqual(state.spot);
  });

  it('waits for the whole stdin before the loop starts', () => {
    const boundary = 'cd'.repeat(12);
    const full = metadataWatchInput(boundary, 250, 4, [curlConfig(BASE + SPOT, { method: 'GET', path: SPOT }, 2000)]);
    expect(parseWatchInput(full.slice(0, full.length - boundary.length - 2))).toBeUndefined();
    expect(parseWatchInput(full)?.requests).toHaveLength(1);
  });

  it('tells the orchestrator commands apart', () => {
    expect(classifyCommand(METADATA_WATCH_COMMAND)).toBe('watch');
    expect(classifyCommand(CURL_COMMAND)).toBe('curl');
    expect(classifyCommand("echo '@@version'; criu --version")).toBe('probe');
    expect(classifyCommand("awk '/^MemAvailable:/ {print $2}' /proc/meminfo")).toBe('memAvailable');
    expect(classifyCommand('echo RSS_KB $x')).toBe('inspect');
    // node-ops.ts removeDir's command, as it quotes the directory.
    expect(classifyCommand(`rm -rf ${shq('/var/lib/spotlift/images/mig-1')}`)).toBe('cleanup');
    expect(classifyCommand("rm -rf '/a'; criu dump -t 1")).toBe('other');
    expect(classifyCommand('criu dump -t 1')).toBe('other');
  });
});
