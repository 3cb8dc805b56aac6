import { CreateMigration } from './migrations.service.js';

describe('POST /migrations body: per-job maxRounds', () => {
  it('is optional and, when given, a whole number of rounds from 1 to 100', () => {
    expect(CreateMigration.parse({ workload: 'wl-1' }).maxRounds).toBeUndefined();
    expect(CreateMigration.parse({ workload: 'wl-1', strategy: 'pre-copy', maxRounds: 2 }).maxRounds).toBe(2);
    for (const maxRounds of [0, 101, 1.5, '2']) {
      const res = CreateMigration.safeParse({ workload: 'wl-1', maxRounds });
      expect(res.error?.issues.map((i) => i.path.join('.'))).toEqual(['maxRounds']);
    }
  });
});
