import { chmodSync, mkdirSync, readFileSync, renameSync, statSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join } from 'node:path';

/** What `spotlift login` stores: where the orchestrator is, the token, and a private CA if it needs one. */
export interface CliConfigFile {
  url?: string;
  token?: string;
  ca?: string;
}

export const DEFAULT_URL = 'http://127.0.0.1:8080';

type Env = Record<string, string | undefined>;

/** `SPOTLIFT_CLI_CONFIG`, else `$XDG_CONFIG_HOME/spotlift/config.json`, else `~/.config/spotlift/config.json`. */
export function configPath(env: Env = process.env, home = homedir()): string {
  if (env.SPOTLIFT_CLI_CONFIG) return env.SPOTLIFT_CLI_CONFIG;
  return join(env.XDG_CONFIG_HOME || join(home, '.config'), 'spotlift', 'config.json');
}

export class CliConfigError extends Error {}

/** The file's settings (none when it does not exist). A file others may read is used, with a warning. */
export function readConfigFile(path: string, warn: (msg: string) => void = () => undefined): CliConfigFile {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return {};
    throw new CliConfigError(`cannot read ${path}: ${(error as Error).message}`);
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    throw new CliConfigError(`${path} is not JSON (remove it, or run spotlift login again)`);
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed))
    throw new CliConfigError(`${path} must hold a JSON object`);
  const out: CliConfigFile = {};
  for (const key of ['url', 'token', 'ca'] as const) {
    const v = (parsed as Record<string, unknown>)[key];
    if (v === undefined) continue;
    if (typeof v !== 'string' || !v) throw new CliConfigError(`${path}: '${key}' must be a non-empty string`);
    out[key] = v;
  }
  if (out.token && (statSync(path).mode & 0o077) !== 0)
    warn(`${path} holds a token and others may read it: chmod 600 ${path}`);
  return out;
}

/**
 * Written owner-only from the first byte (a temp file created 0600, then renamed over the old one), in a 0700
 * directory: the token never sits in a file others can read, not even for a moment.
 */
export function writeConfigFile(path: string, config: CliConfigFile): void {
  mkdirSync(dirname(path), { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.tmp`;
  writeFileSync(tmp, JSON.stringify(config, null, 2) + '\n', { mode: 0o600, flag: 'w' });
  chmodSync(tmp, 0o600); // an old temp file of the same name keeps its mode through writeFileSync
  renameSync(tmp, path);
}

/** Flags win over the environment, the environment over the file (so a script can point one call elsewhere). */
export function resolveSettings(
  flags: { url?: string; token?: string; ca?: string },
  env: Env,
  file: CliConfigFile,
): { url: string; token?: string; ca?: string } {
  const token = flags.token ?? env.SPOTLIFT_API_TOKEN ?? file.token;
  const ca = flags.ca ?? env.SPOTLIFT_CA ?? file.ca;
  return {
    url: flags.url ?? env.SPOTLIFT_URL ?? file.url ?? DEFAULT_URL,
    ...(token ? { token } : {}),
    ...(ca ? { ca } : {}),
  };
}
