/**
 * The layering rules of eslint.config.js fire: each case lints a small import through the project's own
 * configuration, as if it were the first lines of a real file of that layer, and expects the rule's report.
 * (A rule that cannot fail would let the layers grow back together without anyone noticing.)
 */
import { ESLint } from 'eslint';

const eslint = new ESLint({
  cwd: process.cwd(),
  ruleFilter: ({ ruleId }) => /restricted-imports|no-cycle/.test(ruleId),
});

async function reports(file: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(`${code}\nexport {};\n`, { filePath: file });
  return (result?.messages ?? []).map((m) => `${m.ruleId}: ${m.message}`);
}

describe('layering lint rules', () => {
  it('refuses an import cycle in libs/engine (recovery.ts <-> migration-steps.ts was one)', async () => {
    const found = await reports('libs/engine/src/steps/migration-steps.ts', "import '../node-ops/node-scripts.js';");
    expect(found).toEqual([]);
    const cycle = await reports(
      'libs/engine/src/recovery.ts',
      "import type { MigrationSteps } from './steps/migration-steps.js';",
    );
    expect(cycle).toEqual([]);
    const back = await reports(
      'libs/engine/src/node-ops/node-ops.ts',
      "import { MigrationSteps } from '../steps/migration-steps.js';",
    );
    expect(back).toEqual([
      expect.stringMatching(
        /^spotlift\/no-cycle: import cycle: libs\/engine\/src\/node-ops\/node-ops\.ts -> libs\/engine\/src\/steps\/migration-steps\.ts -> .*libs\/engine\/src\/node-ops\/node-ops\.ts$/,
      ),
    ]);
  });

  it.each([
    ['libs/criu/src/argv.ts', "import { spawn } from 'node:child_process';"],
    ['libs/criu/src/argv.ts', "import { readFileSync } from 'node:fs';"],
    ['libs/domain/src/models.ts', "import Redis from 'ioredis';"],
    ['libs/placement/src/index.ts', "import { Injectable } from '@nestjs/common';"],
    ['libs/placement/src/index.ts', "import { NodeShell } from '@spotlift/transport';"],
    ['libs/domain/src/models.ts', "import { Client } from 'ssh2';"],
    ['libs/criu/src/argv.ts', "import { Queue } from 'bullmq';"],
    ['libs/node-commands/src/shell.ts', "import { spawn } from 'node:child_process';"],
    ['libs/node-commands/src/shell.ts', "import Redis from 'ioredis';"],
  ])('a pure lib does no I/O: %s may not %s', async (file, code) => {
    expect(await reports(file, code)).toEqual([
      expect.stringContaining('pure libs (criu, domain, placement, node-commands) do no I/O'),
    ]);
  });

  it.each([
    "import { Injectable } from '@nestjs/common';",
    "import { AppConfig } from '../../../apps/orchestrator/src/config/app-config.js';",
    "import { ScriptedNodeShell } from '@spotlift/testing';",
    "import Redis from 'ioredis';",
  ])('libs/engine imports no Nest, app code or test helper: %s', async (code) => {
    expect(await reports('libs/engine/src/rollback.ts', code)).toEqual(
      expect.arrayContaining([expect.stringContaining('libs/engine imports no Nest, no app code')]),
    );
  });

  it.each([
    ["import { NodeOps } from '@spotlift/engine';", 'the CLI imports only types'],
    ["import { aNode } from '@spotlift/testing';", 'the CLI imports only types'],
    ["import { request } from 'node:http';", 'through api-client.ts and event-stream-client.ts only'],
    ["import Redis from 'ioredis';", 'through api-client.ts and event-stream-client.ts only'],
  ])('the CLI imports only its HTTP client and shared types: %s', async (code, why) => {
    expect(await reports('apps/cli/src/format.ts', code)).toEqual(
      expect.arrayContaining([expect.stringContaining(why)]),
    );
  });

  it('only the node-operations layer writes node commands', async () => {
    const outside = await reports(
      'libs/engine/src/strategies/stop-and-copy.ts',
      "import { nodeCommand } from '../node-ops/node-command.js';",
    );
    expect(outside).toEqual([expect.stringContaining('node commands are written in libs/engine/src/node-ops only')]);
    const app = await reports(
      'apps/orchestrator/src/workloads/workloads.service.ts',
      "import { nodeCommand } from '../../../../libs/engine/src/node-ops/node-command.js';",
    );
    expect(app).toEqual([expect.stringContaining('no-restricted-imports')]);
    expect(
      await reports('libs/engine/src/node-ops/node-scripts.ts', "import { nodeCommand } from './node-command.js';"),
    ).toEqual([]);
  });

  it.each([
    'libs/transport/src/directory-streamer.ts',
    'libs/engine/src/strategies/stop-and-copy.ts',
    'apps/orchestrator/src/workloads/workloads.service.ts',
    'test/migration.e2e-spec.ts',
  ])("the brand's own lib lets no one else make a node command: %s", async (file) => {
    expect(await reports(file, "import { nodeCommand } from '@spotlift/node-commands';")).toEqual([
      expect.stringContaining('node commands are written in libs/engine/src/node-ops and libs/node-commands only'),
    ]);
    // Its builders (each a named, quoted command) are anyone's to use.
    expect(await reports(file, "import { tarCommand, type NodeCommand } from '@spotlift/node-commands';")).toEqual([]);
  });

  it('the node-commands layer makes them: node-ops and libs/node-commands', async () => {
    const make = "import { nodeCommand } from '@spotlift/node-commands';";
    expect(await reports('libs/engine/src/node-ops/node-command.ts', make)).toEqual([]);
    expect(
      await reports('libs/node-commands/src/tunnel-commands.ts', "import { nodeCommand } from './node-command.js';"),
    ).toEqual([]);
  });

  it("calls NodeOps' runners only inside node-ops: everyone else names the operation", async () => {
    const runner = new ESLint({ cwd: process.cwd(), ruleFilter: ({ ruleId }) => ruleId === 'spotlift/no-node-runner' });
    const code = [
      "import type { NodeRecord } from '@spotlift/domain';",
      "import type { ProcessNodeOps } from '../node-ops/process/process-ops.js';",
      'export async function f(ops: ProcessNodeOps, n: NodeRecord, c: never) {',
      '  const o = ops;',
      '  await o.run(n, c, 1_000);',
      '  await ops.armTimed(n, c, 1_000);',
      "  await ops.stopPageServer(n, '/d');",
      '}',
    ].join('\n');
    const lint = async (file: string) =>
      ((await runner.lintText(code, { filePath: file }))[0]?.messages ?? []).map((m) => m.message);
    // Neither this file nor what it imports is linted with other text above: the type-aware parser keeps one
    // program per process, and types a file it was handed other text for (node-ops.ts, above) from that text.
    expect(await lint('libs/engine/src/strategies/post-copy.ts')).toEqual([
      expect.stringContaining("'run' runs a raw node command"),
      expect.stringContaining("'armTimed' runs a raw node command"),
    ]);
    expect(await lint('libs/engine/src/node-ops/podman/podman-ops.ts')).toEqual([]);
  });

  it('lets each layer import what it may', async () => {
    expect(await reports('apps/cli/src/format.ts', "import type { NodeRecord } from '@spotlift/domain';")).toEqual([]);
    expect(await reports('apps/cli/src/api-client.ts', "import { request } from 'node:https';")).toEqual([]);
    expect(await reports('libs/placement/src/index.ts', "import { isFinished } from '@spotlift/domain';")).toEqual([]);
    expect(
      await reports('libs/engine/src/rollback.ts', "import { DirectoryStreamer } from '@spotlift/transport';"),
    ).toEqual([]);
  });
});
