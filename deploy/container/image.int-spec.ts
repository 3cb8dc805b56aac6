/**
 * The container image, built for real with buildah from deploy/container/Containerfile (after `npm run build`),
 * on a base made from this machine's own node, npm, busybox and openssl (make-base.sh: no registry here), then
 * run with podman (runc): the entrypoint loads the whole orchestrator and refuses an empty environment with its
 * list of problems, the CLI and the node agent run from the same image, as uid 10001, with production
 * dependencies only and no sources. The first build runs npm ci of the production dependencies (~50 s here from
 * the host's npm cache, ~3 min from the registry); buildah's layer cache (--layers) and the kept base image make
 * later runs take ~20 s.
 */
import { execFile } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';

const repo = join(dirname(fileURLToPath(import.meta.url)), '../..');
const BASE = 'localhost/spotlift-node-base:20';
const IMAGE = 'localhost/spotlift:int-test';
const tmp = mkdtempSync(join(tmpdir(), 'spotlift-image-'));
// rlimits cannot be set here (no CAP_SYS_RESOURCE): podman must not try (LAB.md "Containers").
const env = { ...process.env, CONTAINERS_CONF: join(tmp, 'containers.conf') };

async function sh(cmd: string, args: string[]): Promise<{ code: number; out: string; err: string }> {
  try {
    const r = await promisify(execFile)(cmd, args, { env, cwd: repo, maxBuffer: 64 * 2 ** 20 });
    return { code: 0, out: r.stdout, err: r.stderr };
  } catch (error) {
    const e = error as { code?: number; stdout?: string; stderr?: string };
    return { code: typeof e.code === 'number' ? e.code : -1, out: e.stdout ?? '', err: e.stderr ?? '' };
  }
}

const podman = (args: string[]) => sh('podman', ['run', '--rm', '--runtime', 'runc', '--network', 'none', ...args]);

beforeAll(async () => {
  writeFileSync(env.CONTAINERS_CONF, '[containers]\ndefault_ulimits = []\n');
  if (!existsSync(join(repo, 'dist/apps/orchestrator/src/main.js'))) throw new Error('run `npm run build` first');
  if ((await sh('buildah', ['inspect', BASE])).code !== 0) {
    const base = await sh('bash', ['deploy/container/make-base.sh', BASE]);
    if (base.code !== 0) throw new Error(`make-base.sh failed: ${base.err}`);
  }
  const args = ['bud', '--layers', '--network', 'host', '--build-arg', `NODE_IMAGE=${BASE}`];
  const cache = join(homedir(), '.npm');
  if (existsSync(cache)) args.push('-v', `${cache}:/root/.npm`, '--build-arg', 'npm_config_prefer_offline=true');
  const build = await sh('buildah', [...args, '-f', 'deploy/container/Containerfile', '-t', IMAGE, '.']);
  if (build.code !== 0) throw new Error(`buildah bud failed:\n${build.out.slice(-3000)}\n${build.err.slice(-3000)}`);
}, 900_000);

describe('deploy/container', () => {
  it('runs as uid 10001 with the orchestrator as its entrypoint', async () => {
    const inspected = JSON.parse((await sh('buildah', ['inspect', '--type', 'image', IMAGE])).out) as {
      OCIv1: { config: { User: string; Entrypoint: string[] } };
    };
    const config = inspected.OCIv1.config;
    expect(config.User).toBe('10001:10001');
    expect(config.Entrypoint).toEqual(['node', '/app/dist/apps/orchestrator/src/main.js']);
    expect((await podman(['--entrypoint', '/bin/id', IMAGE, '-u'])).out.trim()).toBe('10001');
  });

  it('the entrypoint loads the whole orchestrator and lists what its empty environment lacks (exit 2, its code for bad configuration)', async () => {
    const r = await podman([IMAGE]);
    expect(r.code).toBe(2);
    expect(r.err).toContain('Invalid environment');
    expect(r.err).toMatch(/SPOTLIFT_CONFIG[\s\S]*SPOTLIFT_API_TOKEN/);
    expect(r.err).not.toMatch(/SyntaxError|ERR_MODULE_NOT_FOUND|Cannot find/);
  });

  it('the CLI and the node agent run from the same image', async () => {
    const cli = await podman(['--entrypoint', 'node', IMAGE, '/app/dist/apps/cli/src/main.js', '--help']);
    expect(cli.code).toBe(0);
    expect(cli.out).toMatch(/Usage: spotlift/);
    const agent = await podman(['--entrypoint', 'node', IMAGE, '/app/dist/apps/node-agent/src/main.js']);
    expect(agent.err).toMatch(/SPOTLIFT_AGENT_TOKEN/);
    expect(agent.err).not.toMatch(/SyntaxError|ERR_MODULE_NOT_FOUND/);
  });

  it('holds production dependencies only, no sources, no source maps; openssl for the page-traffic CA', async () => {
    const r = await podman([
      '--entrypoint',
      '/bin/sh',
      IMAGE,
      '-c',
      'ls /app; ls /app/node_modules; ls -d /app/node_modules/@nestjs/*; find /app/dist -name "*.map" | wc -l; openssl version',
    ]);
    expect(r.code).toBe(0);
    const lines = r.out.split('\n');
    expect(lines).toEqual(expect.arrayContaining(['dist', 'node_modules', 'package.json', 'ssh2', 'bullmq']));
    // (typescript is there: @nestjs/swagger depends on it at run time)
    for (const dev of ['jest', 'eslint', 'ts-jest', 'prettier', 'tsc-alias', '@nestjs/testing', 'kubernetes-models'])
      expect(r.out.split('\n').filter((l) => l === dev || l === `/app/node_modules/${dev}`)).toEqual([]);
    expect(lines).not.toContain('apps');
    expect(lines).not.toContain('libs');
    expect(r.out).toMatch(/^0$/m);
    expect(r.out).toMatch(/OpenSSL 3/);
  });
});
