import { readFileSync } from 'node:fs';
import type { MigrationRecord, WorkloadRecord } from '@spotlift/domain';
import { type HeartbeatCollector, nodeAddress, pidAlive, type OrchestratorProcess } from '@spotlift/testing';
import { sleep } from './e2e-env.js';
import { leftovers, runningCopies, workloadCopies } from './faults-lab.js';

/** What the fault suite checks after every case, and small probes of a workload's state. */

export const procState = (pid: number): string | undefined => {
  try {
    return /^State:\s+(\S)/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
  } catch {
    return undefined;
  }
};

export interface SuiteWorld {
  orch: OrchestratorProcess;
  collector: HeartbeatCollector;
  /** One line per case, printed at the end of the suite. */
  report: string[];
  imageRoot: string;
}

/**
 * The invariant, from the machine: one running copy where the record says (the original pid on node-a after
 * a rollback, the restored pid on node-b after a commit), no stopped copy anywhere, heartbeats flowing from
 * that node only and without a gap in their sequence; or no copy at all and a record saying the workload was
 * gone. In every case: the migration's directory and CRIU processes are gone.
 */
export async function expectExactlyOnce(
  world: SuiteWorld,
  name: string,
  pid: number,
  m: MigrationRecord,
  label: string,
  extra = '',
): Promise<void> {
  const { orch, collector } = world;
  const copies = workloadCopies(name);
  const running = runningCopies(name);
  const ms = (p: MigrationRecord['phases'][number]) =>
    p.durationMs === undefined ? '' : `:${Math.round(p.durationMs)}ms`;
  const phases = m.phases.map((p) => `${p.name}${p.ok === false ? '!' : p.ok ? '' : '?'}${ms(p)}`).join(' ');
  if (m.downtimeMs !== undefined) extra += `; downtime ${Math.round(m.downtimeMs)} ms (node clocks)`;
  world.report.push(`- ${label}: ${m.state}; ${m.error ?? ''} [${phases}]${extra}`);
  expect(leftovers(m.id, world.imageRoot)).toEqual({ dir: false, criu: [] });
  if (m.state === 'failed' && /^workload gone/.test(m.error ?? '')) {
    expect(copies).toEqual([]);
    return;
  }
  const where = m.state === 'completed' ? 'node-b' : 'node-a';
  const expectedPid = m.state === 'completed' ? m.restoredPid : pid;
  expect(copies).toEqual([{ pid: expectedPid, state: expect.stringMatching(/^[RSD]$/), node: where }]);
  expect(running).toHaveLength(1);
  expect(procState(expectedPid!)).toMatch(/^[RSD]$/);
  if (m.state !== 'completed') expect(pidAlive(pid)).toBe(true);
  const t = Date.now();
  await collector.waitForCount(name, 3, { from: nodeAddress(where), since: t, timeoutMs: 20_000 });
  expect(collector.onlyFromSince(name, nodeAddress(where), t)).toBe(true);
  expect(collector.isSeqGapFree(name)).toBe(true);
  expect(seqFromTwoNodes(collector, name)).toEqual([]);
  expect(collector.anyNotOk(name)).toBe(false);
  const w = await orch.api<WorkloadRecord>('GET', `/workloads/${m.workloadId}`);
  expect(w.body).toMatchObject({ nodeId: where, pid: expectedPid, state: 'running' });
}

/** Sequence numbers of NAME's heartbeats that arrived from two addresses: two copies ran at once. */
export function seqFromTwoNodes(collector: HeartbeatCollector, name: string): number[] {
  const from = new Map<number, Set<string>>();
  for (const hb of collector.heartbeats(name)) from.set(hb.seq, (from.get(hb.seq) ?? new Set()).add(hb.from));
  return [...from].filter(([, s]) => s.size > 1).map(([seq]) => seq);
}

/** Upper bound of the freeze of a rolled-back job: from the dump's start to the rollback's end (orchestrator clock). */
export const frozenMs = (m: MigrationRecord): number | undefined => {
  const dump = m.phases.find((p) => p.name === 'dump')?.startedAt;
  const resumed = m.phases.findLast((p) => p.name === 'rollback')?.endedAt;
  return dump && resumed ? Date.parse(resumed) - Date.parse(dump) : undefined;
};

/** Waits until CRIU has seized and stopped the workload (ptrace stop 't', or 'T'). */
export async function untilFrozen(pid: number, timeoutMs = 10_000): Promise<void> {
  for (const until = Date.now() + timeoutMs; Date.now() < until; await sleep(5)) {
    if (/^[tT]$/.test(procState(pid) ?? '')) return;
  }
  throw new Error(`workload ${pid} was never frozen`);
}

export const failedPhase = (m: MigrationRecord): string | undefined => m.phases.find((p) => p.ok === false)?.name;
