/**
 * `spotlift --help` must not print the API token: commander prints option defaults, and the token used to be
 * the --token default taken from the environment.
 */
import type { Command } from 'commander';

const SECRET = 'spl_0123456789ab_do-not-print-me-0123456789abcdefghijklmnopq';

describe('spotlift --help', () => {
  let program: Command;

  beforeAll(async () => {
    process.env.SPOTLIFT_API_TOKEN = SECRET; // before the import: a default read from env would capture it
    ({ program } = await import('./main.js'));
  });
  afterAll(() => {
    delete process.env.SPOTLIFT_API_TOKEN;
  });

  async function helpOf(argv: string[]): Promise<string> {
    let out = '';
    program.exitOverride().configureOutput({ writeOut: (s) => (out += s), writeErr: (s) => (out += s) });
    for (const c of program.commands) c.exitOverride().configureOutput({ writeOut: (s) => (out += s) });
    await expect(program.parseAsync(['node', 'spotlift', ...argv])).rejects.toMatchObject({
      code: 'commander.helpDisplayed',
    });
    return out;
  }

  it('says where the token comes from and never shows it', async () => {
    const help = await helpOf(['--help']);
    expect(help).toContain('--token <token>');
    expect(help).toMatch(/\(default: from SPOTLIFT_API_TOKEN,\s+else the config\s+file\)/);
    expect(help).toMatch(/Exit codes: 0 done, 1 failed, 2 bad input/);
    expect(help).toContain('--ca <file>');
    expect(help).not.toContain(SECRET);
    expect(help).not.toContain('do-not-print-me');
  });

  it('lists the token and audit commands, and their help shows no secret either', async () => {
    expect(await helpOf(['--help'])).toMatch(/tokens[\s\S]*audit/);
    const sub = await helpOf(['tokens', '--help']);
    expect(sub).toMatch(/create[\s\S]*list[\s\S]*revoke/);
    expect(sub).not.toContain(SECRET);
  });
});
