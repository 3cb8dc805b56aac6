/**
 * The dashboard (/ui) in a real headless Chromium (Debian's package, driven by playwright-core), against the real
 * orchestrator with the lab's nodes, real CRIU and Redis: a migration started through REST shows up live with
 * its phases and downtime, a notice shows its countdown, a failed migration and a Redis outage read as such, an
 * orchestrator without nodes says so. Screenshots go to test-artifacts/dashboard/ (gitignored); no console errors.
 */
import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import type { MigrationRecord } from '@spotlift/domain';
import { repoRoot, startRedis, stopRedis } from '@spotlift/testing';
import { type E2eEnv, setupE2e, sleep, spawnInNode } from './support/e2e-env.js';
import { startOrchestrator } from './support/orchestrator-harness.js';

/** The page's document, as the functions run inside it see it (this project compiles without the DOM lib). */
declare const document: { querySelector(selector: string): { textContent: string | null } | null };

const CHROMIUM = process.env.SPOTLIFT_CHROMIUM ?? '/usr/lib/chromium/chromium';
const shots = join(repoRoot(), 'test-artifacts', 'dashboard');

let env: E2eEnv;
let browser: Browser;
let page: Page;
const consoleErrors: string[] = [];

async function shot(name: string): Promise<void> {
  await page.screenshot({ path: join(shots, `${name}.png`), fullPage: true });
}

async function openDashboard(baseUrl: string, token: string): Promise<Page> {
  const p = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  p.on('console', (m) => {
    if (m.type() === 'error') consoleErrors.push(`${m.text()} (${m.location().url})`);
  });
  p.on('pageerror', (e) => consoleErrors.push(`page error: ${e.message}`));
  await p.goto(`${baseUrl}/ui`);
  await p.fill('#token', token);
  await p.click('#login button[type=submit]');
  await p.waitForSelector('#board:not([hidden])');
  return p;
}

beforeAll(async () => {
  mkdirSync(shots, { recursive: true });
  env = await setupE2e({ nodes: 3, redisPort: 6477 });
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox'] });
  page = await openDashboard(env.orch.baseUrl, env.orch.token);
}, 240_000);

afterAll(async () => {
  await browser?.close();
  await env?.teardown();
}, 120_000);

describe('the dashboard at /ui, in Chromium', () => {
  it('serves the page with a strict CSP and no data without a token', async () => {
    const res = await fetch(`${env.orch.baseUrl}/ui`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(await res.text()).not.toMatch(/<script>/);
    expect((await fetch(`${env.orch.baseUrl}/ui/secrets.txt`)).status).toBe(404);
    expect((await fetch(`${env.orch.baseUrl}/nodes`)).status).toBe(401);
  });

  it('shows the fleet', async () => {
    await page.waitForSelector('#nodes tr[data-node="node-c"]');
    expect(await page.locator('#nodes tr[data-node]').count()).toBe(3);
    expect(await page.textContent('#nodes tr[data-node="node-a"]')).toMatch(/ready/);
    expect(await page.textContent('#link')).toBe('live');
  });

  it('a real migration started through REST shows up live with its phases, then its downtime', async () => {
    const { workload } = await env.launch('ui-move', 'node-a');
    const m = await env.create({ workload: workload.id, destination: 'node-b' });
    const row = `#inflight tr[data-migration="${m.id}"]`;
    await page.waitForSelector(`${row} .phase[data-phase="preflight"]`, { timeout: 30_000 });
    await page.waitForSelector(`${row} .phase[data-phase="dump"]`, { timeout: 60_000 });
    await shot('migration-in-flight');
    const done = await env.finished(m.id);
    expect(done.state).toBe('completed');
    const recent = `#recent tr[data-migration="${m.id}"]`;
    await page.waitForSelector(recent, { timeout: 15_000 });
    await page.waitForFunction(
      (sel) => (document.querySelector(`${sel} [data-field="downtime"]`)?.textContent ?? '') !== '',
      recent,
      { timeout: 15_000 },
    );
    const downtime = await page.textContent(`${recent} [data-field="downtime"]`);
    const expected = done.downtimeMs! < 1000 ? `${Math.round(done.downtimeMs!)} ms` : /\d s$/;
    expect(downtime).toEqual(typeof expected === 'string' ? expected : expect.stringMatching(expected));
    expect(await page.textContent(`${recent} [data-field="outcome"]`)).toMatch(/completed/);
    // The chart has the point; the event log has the phases as they came.
    await page.waitForSelector(`#chart-time circle[data-migration="${m.id}"]`);
    await page.waitForSelector('#chart-strategy g[data-strategy="stop-and-copy"]');
    const log = await page.textContent('#events');
    for (const p of done.phases) expect(log).toContain(`${m.id} ${p.name} ended`);
    await shot('migration-done');
  });

  it('a migration whose restore fails reads as rolled back, with the reason', async () => {
    const name = 'ui-rollback';
    const { workload } = await env.launch(name, 'node-b');
    // As in migration.e2e-spec.ts: node-c holds the workload's UDP port, so CRIU's restore there really fails.
    const port = env.collector.last(name)!.fromPort;
    const holder = spawnInNode('node-c', [
      'python3',
      '-c',
      `import socket,time; s=socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.bind(('0.0.0.0', ${port})); time.sleep(600)`,
    ]);
    try {
      await sleep(500);
      const m: MigrationRecord = await env.migrate({ workload: workload.id, destination: 'node-c' });
      expect(m.state).toBe('rolled_back');
      const outcome = `#recent tr[data-migration="${m.id}"] [data-field="outcome"]`;
      await page.waitForSelector(outcome, { timeout: 15_000 });
      await page.waitForFunction((sel) => /rolled back/.test(document.querySelector(sel)?.textContent ?? ''), outcome);
      expect(await page.textContent(outcome)).toContain(m.rollbackReason!.slice(0, 40));
      await shot('migration-rolled-back');
    } finally {
      holder.kill();
    }
  });

  it('a notice shows its deadline counting down on the node and its evacuation', async () => {
    const res = await env.orch.api('POST', '/notices', { nodeId: 'node-c', kind: 'termination', secondsUntil: 600 });
    expect(res.status).toBe(202);
    const cell = '#nodes tr[data-node="node-c"] [data-field="notice"] .countdown';
    await page.waitForSelector(cell, { timeout: 15_000 });
    expect(await page.textContent('#nodes tr[data-node="node-c"]')).toMatch(/terminating/);
    const first = (await page.textContent(cell))!;
    expect(first).toMatch(/^in (9|10)m \d\ds$/);
    await sleep(2_000);
    const later = (await page.textContent(cell))!;
    expect(seconds(later)).toBeLessThan(seconds(first));
    await page.waitForSelector('#evacuations .evac[data-evacuation] .badge');
    expect(await page.textContent('#evacuations')).toMatch(/node-c/);
    await shot('notice-countdown');
    // The evacuation of an empty node ends at once; the node is then cleared for the next suites.
    for (let i = 0; i < 100; i++) {
      if ((await env.orch.api('POST', '/nodes/node-c/clear-notice')).status === 200) break;
      await sleep(100);
    }
    await page.waitForFunction(() =>
      /ready/.test(document.querySelector('#nodes tr[data-node="node-c"]')?.textContent ?? ''),
    );
  });

  it('no console errors so far', () => {
    expect(consoleErrors).toEqual([]);
  });

  it('Redis away reads as such, and the page comes back live after', async () => {
    await stopRedis(env.redisPort);
    try {
      await page.waitForFunction(
        () => document.querySelector('#link')?.textContent === 'waiting for Redis',
        undefined,
        {
          timeout: 20_000,
        },
      );
      await page.waitForFunction(
        () => /Redis is unreachable/.test(document.querySelector('#banner')?.textContent ?? ''),
        undefined,
        {
          timeout: 20_000,
        },
      );
      await shot('redis-down');
    } finally {
      await startRedis(env.redisPort);
    }
    await page.waitForFunction(() => document.querySelector('#link')?.textContent === 'live', undefined, {
      timeout: 30_000,
    });
    // The snapshot read right after Redis is back may still meet a 503; the page retries until it reads.
    await page.waitForSelector('#banner', { state: 'hidden', timeout: 30_000 });
    expect(await page.isHidden('#banner')).toBe(true);
  });

  it('an orchestrator without nodes says so', async () => {
    const bare = await startOrchestrator({ nodesConfig: { ...env.lab, nodes: [] }, redisPort: env.redisPort });
    try {
      const p = await openDashboard(bare.baseUrl, bare.token);
      await p.waitForSelector('#nodes .empty');
      expect(await p.textContent('#nodes')).toMatch(/no nodes yet/);
      expect(await p.textContent('#inflight')).toMatch(/nothing moving/);
      expect(await p.textContent('#evacuations')).toMatch(/no evacuations/);
      await p.screenshot({ path: join(shots, 'no-nodes.png'), fullPage: true });
      await p.close();
    } finally {
      await bare.close();
    }
  });
});

/** "in 9m 58s" -> 598 */
function seconds(text: string): number {
  const m = /in (?:(\d+)m )?(\d+)s/.exec(text);
  if (!m) throw new Error(`not a countdown: ${text}`);
  return Number(m[1] ?? 0) * 60 + Number(m[2]);
}
