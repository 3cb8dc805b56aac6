import { EventEmitter } from 'node:events';
import { InMemoryAuditLog } from '@spotlift/store';
import { ANONYMOUS_REFUSALS_PER_MINUTE, AuditRecorder, auditEntry, auditTargets } from './audit-recorder.js';

const AT = new Date('2026-12-06T12:00:00Z');

describe('audit entries', () => {
  it('keep ids from the route and the body, and nothing else of the body', () => {
    const req = {
      method: 'POST',
      path: '/migrations',
      route: { path: '/migrations' },
      body: { workload: 'wl-1', destination: 'node-b', strategy: 'auto', token: 'spl_secret', paths: ['/srv'] },
      ip: '127.0.0.1',
    };
    expect(auditEntry(req, 201, AT, { principal: { tokenId: 't1', name: 'oncall', role: 'operator' } })).toEqual({
      at: AT.toISOString(),
      tokenId: 't1',
      tokenName: 'oncall',
      role: 'operator',
      method: 'POST',
      route: '/migrations',
      targets: { workload: 'wl-1', destination: 'node-b' },
      status: 201,
      remote: '127.0.0.1',
    });
  });

  it('leave out values that do not look like ids (long, odd characters, not strings)', () => {
    expect(
      auditTargets({
        method: 'POST',
        path: '/x',
        params: { id: 'ok-1' },
        body: { workload: 'a'.repeat(129), nodeId: 'node a', node: 42, id: 'spl_0123_x' },
        auditTargets: { token: 'abc' },
      }),
    ).toEqual({ id: 'spl_0123_x', token: 'abc' });
    expect(auditTargets({ method: 'POST', path: '/x', body: [{ workload: 'w' }] })).toEqual({});
  });

  it('record refusals without a principal, with the reason, and the route pattern', () => {
    const e = auditEntry(
      { method: 'GET', path: '/migrations/m1', route: { path: '/migrations/:id' }, params: { id: 'm1' } },
      401,
      AT,
      { denied: 'unknown token' },
    );
    expect(e).toEqual({
      at: AT.toISOString(),
      method: 'GET',
      route: '/migrations/:id',
      targets: { id: 'm1' },
      status: 401,
      denied: 'unknown token',
    });
  });
});

describe('AuditRecorder', () => {
  it('writes the final status once the response closes, and survives a failing store', async () => {
    const log = new InMemoryAuditLog();
    const warnings: object[] = [];
    const recorder = new AuditRecorder(
      log,
      (w) => warnings.push(w),
      () => AT,
    );
    const res = Object.assign(new EventEmitter(), { statusCode: 200 });
    recorder.recordWhenDone({ method: 'DELETE', path: '/tokens/t9' }, res, {});
    expect(log.entries).toEqual([]);
    res.statusCode = 404;
    res.emit('close');
    expect(log.entries.map((e) => [e.method, e.status])).toEqual([['DELETE', 404]]);

    const broken = new AuditRecorder(
      { append: () => Promise.reject(new Error('redis gone')), recent: () => Promise.resolve([]) },
      (w) => warnings.push(w),
      () => AT,
    );
    broken.record(auditEntry({ method: 'POST', path: '/x' }, 201, AT, {}));
    await new Promise((r) => setImmediate(r));
    expect(warnings).toEqual([expect.objectContaining({ msg: 'audit entry not written', error: 'redis gone' })]);
  });

  it('keeps at most its capacity, newest first', async () => {
    const log = new InMemoryAuditLog(3);
    for (let i = 0; i < 5; i++) await log.append(auditEntry({ method: 'POST', path: `/p${i}` }, 201, AT, {}));
    expect((await log.recent(10)).map((e) => e.route)).toEqual(['/p4', '/p3', '/p2']);
  });

  it('bounds anonymous refusals per address and minute, with a summary, so a flood cannot rotate the log', () => {
    const log = new InMemoryAuditLog();
    let now = Date.parse('2026-12-06T12:00:00Z');
    const recorder = new AuditRecorder(
      log,
      () => undefined,
      () => new Date(now),
    );
    const refuse = (ip: string, who: object = { denied: 'unknown token' }) => {
      const res = Object.assign(new EventEmitter(), { statusCode: 401 });
      recorder.recordWhenDone({ method: 'GET', path: '/nodes', ip }, res, who);
      res.emit('close');
    };
    for (let i = 0; i < ANONYMOUS_REFUSALS_PER_MINUTE + 40; i++) refuse('10.0.0.9');
    refuse('10.0.0.7'); // another address has its own allowance
    refuse('10.0.0.9', { tokenId: 'revoked-one', denied: 'token revoked' }); // a known token is always recorded
    expect(log.entries.filter((e) => e.remote === '10.0.0.9' && !e.tokenId)).toHaveLength(
      ANONYMOUS_REFUSALS_PER_MINUTE,
    );
    expect(log.entries.filter((e) => e.remote === '10.0.0.7')).toHaveLength(1);
    expect(log.entries.filter((e) => e.tokenId === 'revoked-one')).toHaveLength(1);
    now += 60_000;
    refuse('10.0.0.9');
    expect(log.entries[1]).toMatchObject({
      status: 401,
      remote: '10.0.0.9',
      denied: expect.stringMatching(/^40 more refusals/),
    });
    expect(log.entries[0]).toMatchObject({ route: '/nodes', remote: '10.0.0.9' });
  });
});
