/** The outage tracker: one log line per outage edge, listeners after each outage, fail-fast helpers. */
import { EventEmitter } from 'node:events';
import { Logger, type LoggerService } from '@nestjs/common';
import type { Redis } from 'ioredis';
import { RedisLink, StoreUnavailable, isRedisUnreachableError, whileUp } from './redis-link.js';

const lines: string[] = [];
const capture: LoggerService = {
  log: (m: { msg: string }) => lines.push(`log ${m.msg}`),
  warn: (m: { msg: string }) => lines.push(`warn ${m.msg}`),
  error: (m: { msg: string }) => lines.push(`error ${m.msg}`),
};

function fakeClient() {
  return Object.assign(new EventEmitter(), { status: 'ready' });
}

beforeEach(() => {
  lines.length = 0;
  Logger.overrideLogger(capture);
});

describe('RedisLink', () => {
  it('logs an outage once when it starts and once when it ends, and runs the after-outage listeners once', async () => {
    const client = fakeClient();
    const link = new RedisLink(client as unknown as Redis);
    let ups = 0;
    link.onUp(() => void ups++);
    const since = Date.now();
    expect(link.wasDownSince(since)).toBe(false);
    client.status = 'reconnecting';
    for (let i = 0; i < 20; i++)
      client.emit('error', Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    client.emit('close');
    link.report('bullmq worker migrations', new Error('Connection is closed.'));
    expect(link.isUp).toBe(false);
    expect(link.wasDownSince(since)).toBe(true);
    client.status = 'ready';
    client.emit('ready');
    await new Promise((r) => setImmediate(r));
    expect(lines.filter((l) => l.includes('redis'))).toEqual([
      'warn redis unreachable: the API answers 503, running migrations continue from the local journal',
      'log redis reachable again',
    ]);
    expect(ups).toBe(1);
    expect(link.wasDownSince(since)).toBe(true);
    expect(link.wasDownSince(Date.now() + 1)).toBe(false);
  });

  it("a BullMQ connection error after ours is back is that outage's tail; other BullMQ errors are logged as they are", () => {
    const client = fakeClient();
    const link = new RedisLink(client as unknown as Redis);
    link.report('bullmq worker migrations', new Error('connect ECONNREFUSED 127.0.0.1:6379'));
    expect(lines).toEqual([]);
    link.report('bullmq worker migrations', new Error('Missing lock for job migrate-x. moveToFinished'));
    expect(lines).toEqual(['warn redis error']);
  });

  it('no outage is logged for the close that follows our own QUIT', () => {
    const client = fakeClient();
    const link = new RedisLink(client as unknown as Redis);
    link.closing = true;
    client.emit('close');
    expect(lines).toEqual([]);
  });
});

describe('whileUp and the error classes', () => {
  it('refuses at once while the link is down, bounds a call that hangs, passes an answer through', async () => {
    const client = fakeClient();
    const link = new RedisLink(client as unknown as Redis);
    expect(await whileUp(link, 'add', () => Promise.resolve(7))).toBe(7);
    await expect(whileUp(link, 'add', () => new Promise(() => undefined), 20)).rejects.toThrow(StoreUnavailable);
    client.status = 'reconnecting';
    let called = false;
    await expect(
      whileUp(link, 'add', () => {
        called = true;
        return Promise.resolve(1);
      }),
    ).rejects.toThrow(/add: redis is unreachable/);
    expect(called).toBe(false);
  });

  it.each([
    ["Stream isn't writeable and enableOfflineQueue options is false", true],
    ['Command timed out', true],
    ['Reached the max retries per request limit (which is 1).', true],
    ['Connection is closed.', true],
    ["migration 'x' refers to a workload or node that no longer exists", false],
    ['WRONGTYPE Operation against a key holding the wrong kind of value', false],
  ])('%s -> unreachable: %s', (message, expected) => {
    expect(isRedisUnreachableError(new Error(message))).toBe(expected);
  });
});
