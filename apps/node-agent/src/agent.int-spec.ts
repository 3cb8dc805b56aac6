/**
 * The node agent against a fake IMDS (named as a fake: the real one exists only on an EC2 instance) and a
 * real HTTP server standing in for the orchestrator's webhook: a spot interruption becomes exactly one
 * POST /notices with the cloud's deadline, retried through a 503, never repeated while the notice stays.
 */
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { FakeImdsServer } from '@spotlift/testing';
import { runAgent } from './agent.js';
import { loadAgentConfig } from './agent-config.js';

describe('node agent', () => {
  const imds = new FakeImdsServer();
  let webhook: Server;
  let webhookUrl = '';
  const received: Array<{ auth?: string; body: Record<string, unknown> }> = [];
  let failNext = 0;

  beforeAll(async () => {
    await imds.start();
    webhook = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        if (failNext > 0) {
          failNext--;
          res.writeHead(503).end('busy');
          return;
        }
        received.push({ auth: req.headers.authorization, body: JSON.parse(body) as Record<string, unknown> });
        res.writeHead(201, { 'content-type': 'application/json' }).end('{}');
      });
    });
    await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', r));
    webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    await imds.stop();
    await new Promise((r) => webhook.close(r));
  });

  it('relays one spot interruption, through a 503, with the deadline from IMDS', async () => {
    const config = loadAgentConfig({
      SPOTLIFT_URL: webhookUrl,
      SPOTLIFT_API_TOKEN: 'agent-test-token-0123456789',
      SPOTLIFT_NODE_ID: 'node-a',
      SPOTLIFT_AGENT_CLOUD: 'aws',
      SPOTLIFT_METADATA_URL: imds.url,
    });
    const stop = new AbortController();
    const running = runAgent(config, stop.signal);
    try {
      failNext = 1;
      const deadline = new Date(Date.now() + 120_000);
      imds.setSpotInterruption({ action: 'terminate', time: deadline });
      const until = Date.now() + 5_000;
      while (received.length === 0 && Date.now() < until) await new Promise((r) => setTimeout(r, 50));
      await new Promise((r) => setTimeout(r, 1_500)); // several more polls: still one POST
      expect(received).toHaveLength(1);
      expect(received[0]!.auth).toBe('Bearer agent-test-token-0123456789');
      expect(received[0]!.body).toMatchObject({ nodeId: 'node-a', source: 'aws', action: 'terminate' });
      expect(Math.abs(new Date(received[0]!.body.deadline as string).getTime() - deadline.getTime())).toBeLessThan(
        1_000,
      );
    } finally {
      stop.abort();
      await running.catch(() => undefined);
    }
  });

  it('refuses a bad environment with every problem listed', () => {
    expect(() => loadAgentConfig({ SPOTLIFT_URL: 'nope', SPOTLIFT_AGENT_CLOUD: 'oracle' })).toThrow(
      /SPOTLIFT_URL[\s\S]*SPOTLIFT_API_TOKEN[\s\S]*SPOTLIFT_NODE_ID[\s\S]*SPOTLIFT_AGENT_CLOUD/,
    );
    expect(() =>
      loadAgentConfig({
        SPOTLIFT_URL: 'http://x',
        SPOTLIFT_API_TOKEN: '0123456789abcdef',
        SPOTLIFT_NODE_ID: 'n1',
        SPOTLIFT_AGENT_CLOUD: 'azure',
      }),
    ).toThrow(/SPOTLIFT_AZURE_VM_NAME/);
  });
});
