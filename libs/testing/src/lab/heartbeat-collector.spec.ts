import { createSocket, type Socket } from 'node:dgram';
import { HeartbeatCollector, parseHeartbeat } from './heartbeat-collector.js';

/** The collector's bookkeeping, on loopback (the lab bridge is not needed for this). */
describe('HeartbeatCollector', () => {
  const collector = new HeartbeatCollector({ host: '127.0.0.1' });
  let sender: Socket;

  beforeAll(async () => {
    await collector.start();
    sender = createSocket('udp4');
  });
  afterAll(async () => {
    sender.close();
    await collector.stop();
  });
  beforeEach(() => collector.clear());

  async function send(name: string, seq: number, counter: number, ok = true): Promise<void> {
    const msg = JSON.stringify({ name, seq, counter, ok, mem_mib: 8, pid: 1234 });
    await new Promise<void>((resolve, reject) =>
      sender.send(msg, collector.port, '127.0.0.1', (err) => (err ? reject(err) : resolve())),
    );
  }

  it('records heartbeats per name with the sender address, and finds a clean run gap-free', async () => {
    for (let i = 1; i <= 5; i++) await send('w', i, i);
    await send('other', 1, 1);
    await collector.waitForCount('w', 5, { from: '127.0.0.1' });
    expect(collector.names().sort()).toEqual(['other', 'w']);
    expect(collector.last('w')).toMatchObject({
      seq: 5,
      counter: 5,
      ok: true,
      memMiB: 8,
      pid: 1234,
      from: '127.0.0.1',
    });
    expect(collector.isSeqGapFree('w')).toBe(true);
    expect(collector.sourcesSince('w', 0)).toEqual(['127.0.0.1']);
    expect(collector.onlyFromSince('w', '127.0.0.1', 0)).toBe(true);
    expect(collector.anyNotOk('w')).toBe(false);
  });

  it('reports a lost datagram as a gap and a restart as a reset', async () => {
    for (const seq of [1, 2, 4, 1]) await send('w', seq, seq);
    await collector.waitForCount('w', 4);
    const r = collector.seqReport('w');
    expect(r.gapFree).toBe(false);
    expect(r.gaps.map((g) => [g.after, g.next])).toEqual([[2, 4]]);
    expect(r.resets.map((g) => [g.after, g.next])).toEqual([[4, 1]]);
  });

  it('tells whether the counter carried on across a point in time', async () => {
    await send('w', 1, 10);
    await collector.waitForCount('w', 1);
    await new Promise((r) => setTimeout(r, 30));
    const t = Date.now();
    await send('w', 2, 11);
    await collector.waitForCount('w', 2);
    expect(collector.counterContinuedAcross('w', t)).toBe(true);

    collector.clear();
    await send('w', 1, 10);
    await collector.waitForCount('w', 1);
    await new Promise((r) => setTimeout(r, 30));
    const t2 = Date.now();
    await send('w', 2, 1); // counter reset: memory did not come along
    await collector.waitForCount('w', 2);
    expect(collector.counterContinuedAcross('w', t2)).toBe(false);
  });

  it('notices ok:false', async () => {
    await send('w', 1, 1);
    await send('w', 2, 2, false);
    await collector.waitForCount('w', 2);
    expect(collector.anyNotOk('w')).toBe(true);
  });

  it('times out with what it saw', async () => {
    await expect(collector.waitForCount('nobody', 1, { timeoutMs: 50 })).rejects.toThrow(
      /timed out.*'nobody'.*0 heartbeats/,
    );
  });

  it('rejects datagrams that are not heartbeats', () => {
    const from = { address: '10.77.0.2', port: 1 };
    expect(parseHeartbeat(Buffer.from('not json'), from, 0)).toBeUndefined();
    expect(
      parseHeartbeat(Buffer.from('{"name":"w","seq":-1,"counter":1,"ok":true,"mem_mib":1,"pid":1}'), from, 0),
    ).toBeUndefined();
    expect(
      parseHeartbeat(Buffer.from('{"name":"w","seq":1,"counter":1,"ok":"yes","mem_mib":1,"pid":1}'), from, 0),
    ).toBeUndefined();
    expect(parseHeartbeat(Buffer.from('[1,2]'), from, 0)).toBeUndefined();
    expect(
      parseHeartbeat(
        Buffer.from('{"name":"w","seq":3,"counter":4,"ok":false,"mem_mib":1,"pid":9,"error":"x"}'),
        from,
        7,
      ),
    ).toEqual({
      name: 'w',
      seq: 3,
      counter: 4,
      ok: false,
      memMiB: 1,
      pid: 9,
      error: 'x',
      from: '10.77.0.2',
      fromPort: 1,
      at: 7,
    });
  });
});
