import { CreateMigration } from './migrations.service.js';
import { CreateCheckpoint } from '../checkpoints/checkpoints.service.js';

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

describe('page transport by default (issue 10: pages do not cross the network in clear unless asked)', () => {
  it('is tls for migrations and checkpoints; tcp and ssh only when a body names them', () => {
    expect(CreateMigration.parse({ workload: 'wl-1' }).transport).toBe('tls');
    expect(CreateCheckpoint.parse({ workload: 'wl-1' }).transport).toBe('tls');
    for (const transport of ['tcp', 'ssh', 'tls'] as const) {
      expect(CreateMigration.parse({ workload: 'wl-1', transport }).transport).toBe(transport);
      expect(CreateCheckpoint.parse({ workload: 'wl-1', transport }).transport).toBe(transport);
    }
  });
});
