import { spawn, type ChildProcess } from 'node:child_process';
import {
  HeartbeatCollector,
  labIsHealthy,
  labUp,
  netnsPath,
  startRedis,
  stopRedis,
  type LabConfig,
} from '@spotlift/testing';
import { startOrchestrator, type Orchestrator } from './orchestrator-harness.js';

/** The real world a migration suite needs: lab nodes, a private Redis, a heartbeat collector, the orchestrator. */
export interface E2eEnv {
  lab: LabConfig;
  redisPort: number;
  collector: HeartbeatCollector;
  orch: Orchestrator;
  teardown(): Promise<void>;
}

export async function setupE2e(opts: { nodes?: number; redisPort: number }): Promise<E2eEnv> {
  const ownLab = !(await labIsHealthy());
  const lab = await labUp({ nodes: opts.nodes ?? 3 });
  await startRedis(opts.redisPort);
  const collector = new HeartbeatCollector();
  await collector.start();
  const orch = await startOrchestrator({ nodesConfig: lab, redisPort: opts.redisPort });
  return {
    lab,
    redisPort: opts.redisPort,
    collector,
    orch,
    async teardown() {
      await orch.close();
      await collector.stop();
      await stopRedis(opts.redisPort);
      void ownLab; // the lab stays up for the next suite; test.sh takes it down at the end
    },
  };
}

/** Runs a command inside a lab node's network namespace, in the background (e.g. to hold a port). */
export function spawnInNode(nodeId: string, argv: string[]): ChildProcess {
  return spawn('nsenter', [`--net=${netnsPath(nodeId)}`, ...argv], { stdio: 'ignore' });
}

export async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}
