import type { MigrationRecord, PhaseName, PhaseRecord } from '@spotlift/domain';
import type { MigrationRepository } from '@spotlift/store';
import type { Clock } from './clock.js';

/**
 * Phases a dead worker left open (started, never ended): closed as interrupted, ending when recovery found
 * them, so no phase stays open on the record forever and readers can tell a death from a failure. Returns
 * the phases it closed. A phase that ended normally has `endedAt`; a live attempt never reaches recovery.
 */
export function closeInterruptedPhases(migration: MigrationRecord, at: Date): PhaseRecord[] {
  const open = migration.phases.filter((p) => p.endedAt === undefined);
  for (const phase of open) {
    const lastSeen = migration.updatedAt;
    phase.ok = false;
    phase.interrupted = true;
    phase.endedAt = at.toISOString();
    phase.durationMs = Math.max(0, at.getTime() - Date.parse(phase.startedAt));
    phase.detail = `interrupted: the worker running it stopped (record last written ${lastSeen}); closed by recovery${phase.detail ? `; ${phase.detail}` : ''}`;
  }
  return open;
}

/** Asked before a phase starts; throws to stop the migration at that boundary (cancel, lost lease). */
export type PhaseGuard = (name: PhaseName) => Promise<void>;

/**
 * Records each phase on the migration record and persists it before and after the phase runs, so a worker
 * that dies mid-phase leaves a record that says exactly which step was under way (the engine's recovery
 * reads it to decide: finish, or roll back).
 */
export class PhaseRecorder {
  /** Per migration id: phase boundaries are the safe points where a cancel takes effect, for every strategy. */
  private readonly guards = new Map<string, PhaseGuard>();

  constructor(
    private readonly migrations: MigrationRepository,
    private readonly clock: Clock,
  ) {}

  guard(migrationId: string, guard: PhaseGuard | undefined): void {
    if (guard) this.guards.set(migrationId, guard);
    else this.guards.delete(migrationId);
  }

  async run<T>(migration: MigrationRecord, name: PhaseName, body: (phase: PhaseRecord) => Promise<T>): Promise<T> {
    await this.guards.get(migration.id)?.(name);
    const phase: PhaseRecord = { name, startedAt: this.clock.now().toISOString() };
    migration.phases.push(phase);
    await this.save(migration);
    const t0 = performance.now();
    try {
      const result = await body(phase);
      phase.ok = true;
      return result;
    } catch (error) {
      phase.ok = false;
      phase.detail ??= (error as Error).message;
      throw error;
    } finally {
      phase.endedAt = this.clock.now().toISOString();
      phase.durationMs = Math.round((performance.now() - t0) * 1000) / 1000;
      await this.save(migration);
    }
  }

  async save(migration: MigrationRecord): Promise<void> {
    migration.updatedAt = this.clock.now().toISOString();
    await this.migrations.save(migration);
  }
}
