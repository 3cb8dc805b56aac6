#!/usr/bin/env node
import { Command, CommanderError } from 'commander';
import { realpathSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { CliContext, processIo, type CliIo } from './cli-context.js';
import { registerAccess } from './commands/access.js';
import { registerNodes, registerWorkloads } from './commands/fleet.js';
import { registerCheckpoints, registerEvacuations, registerMigrations, type UpdateSources } from './commands/jobs.js';
import { registerRebalance } from './commands/rebalance.js';
import { bashCompletion } from './completion.js';
import { addWatchCommand } from './watch.js';
import { EXIT, exitCodeOfError, UsageError } from './exit-codes.js';
import { ApiError } from './api-client.js';

/** The whole CLI as one commander program over one context (tests build their own with their own io). */
export function buildCli(io: CliIo = processIo(), sources: UpdateSources = {}): { program: Command; cli: CliContext } {
  const program = new Command()
    .name('spotlift')
    .description('Operate the spotlift orchestrator over its REST API')
    .option('--url <url>', 'orchestrator URL (default: SPOTLIFT_URL, else the config file, else http://127.0.0.1:8080)')
    // No commander default from the environment here: --help prints defaults, and this one is a secret.
    .option('--token <token>', 'API token (default: from SPOTLIFT_API_TOKEN, else the config file)')
    .option('--ca <file>', "PEM CA certificate(s) of the orchestrator's HTTPS (default: SPOTLIFT_CA)")
    .option('--json', 'print JSON (the API records) instead of tables; errors as JSON on stderr')
    .addHelpText(
      'after',
      '\nConfig file: ~/.config/spotlift/config.json (SPOTLIFT_CLI_CONFIG), written by `spotlift login`.\n' +
        'Exit codes: 0 done, 1 failed, 2 bad input (400/404/409, bad arguments), 3 rolled back, 4 cancelled,\n' +
        '            5 no token or refused (401/403), 6 orchestrator unreachable.',
    );
  const cli = new CliContext(program, io);
  registerAccess(program, cli);
  registerNodes(program, cli);
  registerWorkloads(program, cli);
  registerMigrations(program, cli, sources);
  registerEvacuations(program, cli, sources);
  registerCheckpoints(program, cli);
  registerRebalance(program, cli);
  addWatchCommand(program, () => cli.connection());
  program
    .command('completion')
    .argument('[shell]', 'bash (zsh: autoload bashcompinit && bashcompinit first)', 'bash')
    .description('print a shell completion script: source <(spotlift completion bash)')
    .action((shell: string) => {
      if (shell !== 'bash' && shell !== 'zsh') throw new UsageError(`no completion for '${shell}' (bash, zsh)`);
      io.out(bashCompletion(program));
    });
  return { program, cli };
}

/** The tests' `program` (help output) and the launcher's entry point. */
export const { program } = buildCli();

/** Runs one command line and answers its exit code; never throws. */
export async function run(argv: string[], io: CliIo = processIo(), sources: UpdateSources = {}): Promise<number> {
  const { program: p, cli } = buildCli(io, sources);
  const quiet = (c: Command): void => {
    c.exitOverride().configureOutput({ writeOut: (s) => io.out(s.trimEnd()), writeErr: (s) => io.err(s.trimEnd()) });
    c.commands.forEach(quiet);
  };
  quiet(p);
  try {
    await p.parseAsync(argv, { from: 'user' });
    return cli.exitCode;
  } catch (error) {
    if (error instanceof CommanderError) {
      if (error.code === 'commander.helpDisplayed' || error.code === 'commander.version') return EXIT.ok;
      if (error.code === 'commander.help') return EXIT.ok;
      return EXIT.badInput; // commander printed the problem already
    }
    const code = exitCodeOfError(error);
    const message = (error as Error).message;
    if (cli.json) {
      const status = error instanceof ApiError ? error.status : undefined;
      io.err(JSON.stringify({ error: message, exitCode: code, ...(status ? { status } : {}) }));
    } else io.err(`spotlift: ${message}`);
    return code;
  }
}

/** The process entry point (bin/spotlift.js, or this file run directly). */
export async function main(argv: string[]): Promise<void> {
  // `spotlift nodes ls | head`: a reader that goes away early is no error.
  process.stdout.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code === 'EPIPE') process.exit(process.exitCode ?? 0);
    throw error;
  });
  process.exitCode = await run(argv);
}

// Run only when started as the CLI, not when a test imports the program.
if (process.argv[1] && import.meta.url === pathToFileURL(realpathSync(process.argv[1])).href) {
  void main(process.argv.slice(2));
}
