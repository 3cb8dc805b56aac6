#!/usr/bin/env node
/**
 * spotlift node agent (optional): for fleets that prefer pushing notices from the node over the
 * orchestrator polling each node's metadata through SSH. Configured by environment (see agent-config.ts);
 * `--allow-insecure-http` allows a plain http:// orchestrator URL that is not loopback.
 */
import { runAgent } from './agent.js';
import { type AgentConfig, loadAgentConfig } from './agent-config.js';

let config: AgentConfig;
try {
  config = loadAgentConfig(process.env, process.argv.slice(2));
} catch (error) {
  console.error((error as Error).message);
  process.exit(2);
}
const stop = new AbortController();
process.on('SIGTERM', () => stop.abort());
process.on('SIGINT', () => stop.abort());
void runAgent(config, stop.signal);
