/**
 * The node agent against a fake IMDS (named as a fake: the real one exists only on an EC2 instance) and a
 * real HTTP server standing in for the orchestrator's webhook: a spot interruption becomes exactly one
 * POST /notices with the cloud's deadline, retried through a 503, never repeated while the notice stays.
 */
import { createServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import type { Notice } from '@spotlift/notices';
import { FakeImdsServer, issueTestCertificates } from '@spotlift/testing';
import { runAgent } from './agent.js';
import { loadAgentConfig } from './agent-config.js';
import { NoticePusher } from './notice-pusher.js';

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
      SPOTLIFT_AGENT_TOKEN: 'agent-test-token-0123456789',
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
      /SPOTLIFT_URL[\s\S]*SPOTLIFT_AGENT_TOKEN[\s\S]*SPOTLIFT_NODE_ID[\s\S]*SPOTLIFT_AGENT_CLOUD/,
    );
    expect(() =>
      loadAgentConfig({
        SPOTLIFT_URL: 'http://x',
        SPOTLIFT_AGENT_TOKEN: '0123456789abcdef',
        SPOTLIFT_NODE_ID: 'n1',
        SPOTLIFT_AGENT_CLOUD: 'azure',
      }),
    ).toThrow(/SPOTLIFT_AZURE_VM_NAME/);
  });

  const base = {
    SPOTLIFT_AGENT_TOKEN: 'spl_0123456789ab_agent-token-000000000000000000000000000',
    SPOTLIFT_NODE_ID: 'node-a',
    SPOTLIFT_AGENT_CLOUD: 'aws',
  };

  it('refuses to send its token over plain http to another host, unless told so', () => {
    expect(() => loadAgentConfig({ ...base, SPOTLIFT_URL: 'http://10.0.0.5:8080' })).toThrow(
      /plain http:\/\/ to 10\.0\.0\.5 would send the agent token in clear.*--allow-insecure-http/,
    );
    expect(() => loadAgentConfig({ ...base, SPOTLIFT_URL: 'http://orchestrator.internal' })).toThrow(/in clear/);
    expect(loadAgentConfig({ ...base, SPOTLIFT_URL: 'http://10.0.0.5:8080' }, ['--allow-insecure-http']).token).toBe(
      base.SPOTLIFT_AGENT_TOKEN,
    );
    expect(
      loadAgentConfig({ ...base, SPOTLIFT_URL: 'http://10.0.0.5', SPOTLIFT_AGENT_ALLOW_INSECURE_HTTP: 'true' }).nodeId,
    ).toBe('node-a');
    for (const url of ['http://127.0.0.1:8080', 'http://localhost:8080', 'http://[::1]:8080', 'https://10.0.0.5']) {
      expect(loadAgentConfig({ ...base, SPOTLIFT_URL: url }).orchestratorUrl).toBe(url);
    }
    expect(() => loadAgentConfig({ ...base, SPOTLIFT_URL: 'https://x', SPOTLIFT_CA: '/nonexistent/ca.pem' })).toThrow(
      /SPOTLIFT_CA/,
    );
  });

  it('pushes over HTTPS to an orchestrator behind a private CA (SPOTLIFT_CA), and not without it', async () => {
    const certs = issueTestCertificates();
    const got: string[] = [];
    const server = createHttpsServer(
      { cert: readFileSync(certs.certPath), key: readFileSync(certs.keyPath) },
      (req, res) => {
        got.push(req.headers.authorization ?? '');
        req.resume();
        req.on('end', () => res.writeHead(202).end('{}'));
      },
    );
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const config = loadAgentConfig({ ...base, SPOTLIFT_URL: url, SPOTLIFT_CA: certs.caPath });
      const notice = {
        nodeId: 'node-a',
        kind: 'termination',
        source: 'aws',
        deadline: new Date(Date.now() + 60_000),
        dedupKey: 'aws:node-a:termination:e1',
        reason: 'test',
      } as unknown as Notice;
      const logs: string[] = [];
      expect(
        await new NoticePusher(config.orchestratorUrl, config.token, (m) => logs.push(m), config.ca).push(notice),
      ).toBe(true);
      expect(got).toEqual([`Bearer ${base.SPOTLIFT_AGENT_TOKEN}`]);
      // Without the CA the certificate is not trusted: nothing reaches the server, the push gives up by the deadline.
      const soon = { ...notice, deadline: new Date(Date.now() + 300) };
      expect(await new NoticePusher(url, config.token, (m) => logs.push(m)).push(soon)).toBe(false);
      expect(got).toHaveLength(1);
      expect(logs.join('\n')).toMatch(/self-signed|unable to (get|verify)/i);
    } finally {
      await new Promise((r) => server.close(r));
    }
  });
});
