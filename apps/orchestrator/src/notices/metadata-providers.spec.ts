import { defaultMaxListeners, getEventListeners, setMaxListeners } from 'node:events';
import type { NodeTarget } from '@spotlift/domain';
import type { NodeShell } from '@spotlift/transport';
import { metadataProvider, nodeWatchSignal } from './metadata-providers.js';

/** Never reached: building a provider opens nothing; the loop starts on the first request. */
const shell = {} as NodeShell;
const node = (i: number): NodeTarget => ({
  id: `node-${i}`,
  host: `10.0.0.${i}`,
  port: 22,
  user: 'spotlift',
  hostKey: 'SHA256:x',
});

/*
 * Node warns MaxListenersExceeded once a signal has more than `defaultMaxListeners` (10) abort listeners.
 * The warning goes to the real process, which jest's sandboxed `process.on('warning')` does not see (tried:
 * it printed, the handler got nothing), so these count the listeners, the warning's own condition.
 */
describe('watch signals of many nodes', () => {
  it('50 watched nodes in stream mode add no listener to the shutdown signal', () => {
    const shutdown = new AbortController();
    const signals: AbortSignal[] = [];
    for (let i = 1; i <= 50; i++) {
      const signal = nodeWatchSignal(shutdown.signal, new AbortController().signal);
      signals.push(signal);
      metadataProvider(shell, node(i), { provider: 'aws' }, { pollIntervalMs: 250, mode: 'stream', signal });
    }
    expect(getEventListeners(shutdown.signal, 'abort')).toHaveLength(0);
    expect(Math.max(...signals.map((s) => getEventListeners(s, 'abort').length))).toBe(1);
    // The shutdown still reaches every node's watch.
    shutdown.abort();
    expect(signals.every((s) => s.aborted)).toBe(true);
  });

  it('one node stopped leaves the others watching', () => {
    const shutdown = new AbortController();
    const stops = [new AbortController(), new AbortController()];
    const signals = stops.map((s) => nodeWatchSignal(shutdown.signal, s.signal));
    stops[0]!.abort();
    expect(signals.map((s) => s.aborted)).toEqual([true, false]);
  });

  it('the shutdown signal itself passed to 50 nodes would pass the warning limit (what the per-node signal avoids)', () => {
    const shutdown = new AbortController();
    setMaxListeners(100, shutdown.signal); // only so the test's output stays free of the warning it counts toward
    for (let i = 1; i <= 50; i++) {
      const opts = { pollIntervalMs: 250, mode: 'stream' as const, signal: shutdown.signal };
      metadataProvider(shell, node(i), { provider: 'aws' }, opts);
    }
    expect(getEventListeners(shutdown.signal, 'abort').length).toBeGreaterThan(defaultMaxListeners);
  });
});
