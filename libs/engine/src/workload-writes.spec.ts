import type { WorkloadRecord } from '@spotlift/domain';
import { StaleRecordError, WorkloadRepository } from '@spotlift/store';
import { aWorkload } from '@spotlift/testing';
import { saveWorkloadFields } from './workload-writes.js';

/** A store that is away for reads (no local copy of the record) and keeps what is saved. */
class AwayForReads extends WorkloadRepository {
  saved: WorkloadRecord[] = [];
  constructor(private readonly readError: Error) {
    super();
  }
  get(): Promise<WorkloadRecord | undefined> {
    return Promise.reject(this.readError);
  }
  list(): Promise<WorkloadRecord[]> {
    return Promise.reject(this.readError);
  }
  save(record: WorkloadRecord): Promise<void> {
    this.saved.push(record);
    return Promise.resolve();
  }
  delete(): Promise<void> {
    return Promise.resolve();
  }
}

describe('saveWorkloadFields', () => {
  it('saves the engine copy whole when the stored record cannot be read (the store away, no local copy)', async () => {
    const repo = new AwayForReads(new Error("Stream isn't writeable and enableOfflineQueue options is false"));
    const workload = aWorkload({ id: 'wl-1', state: 'migrating', nodeId: 'node-a' });
    await saveWorkloadFields(repo, workload, ['state']);
    expect(repo.saved).toEqual([expect.objectContaining({ id: 'wl-1', state: 'migrating', nodeId: 'node-a' })]);
  });

  it('lets a stale-record conflict through: another writer won, nothing is overwritten', async () => {
    const repo = new AwayForReads(new StaleRecordError('workload', 'wl-1', 3, 4));
    await expect(saveWorkloadFields(repo, aWorkload({ id: 'wl-1' }), ['state'])).rejects.toBeInstanceOf(
      StaleRecordError,
    );
    expect(repo.saved).toEqual([]);
  });
});
