/**
 * A control for the orchestrators' event-loop lag: an idle Node process on the same machine measuring its own
 * loop the way prom-client does (monitorEventLoopDelay, 10 ms resolution). Lag it shows is the machine's (CPU
 * run queue: 2 cores shared with the simulator, the orchestrators and other work), not the orchestrator's code.
 * IPC: 'read' answers {p99Ms, maxMs} since the last read and resets.
 */
import { monitorEventLoopDelay } from 'node:perf_hooks';

const h = monitorEventLoopDelay({ resolution: 10 });
h.enable();
process.on('message', (m) => {
  if (m !== 'read') return;
  process.send!({ p99Ms: h.percentile(99) / 1e6, maxMs: h.max / 1e6 });
  h.reset();
});
process.on('disconnect', () => process.exit(0));
process.send!('ready');
