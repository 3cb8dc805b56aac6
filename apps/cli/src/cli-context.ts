import type { Command } from 'commander';
import { readFileSync } from 'node:fs';
import { ApiClient } from './api-client.js';
import { configPath, readConfigFile, resolveSettings } from './cli-config.js';
import { NoTokenError, type ExitCode } from './exit-codes.js';

/** Where output goes; tests give their own. */
export interface CliIo {
  out: (line: string) => void;
  err: (line: string) => void;
  /** Rewrites the current terminal line (live progress); absent when stdout is not a terminal. */
  live?: (line: string) => void;
  env: Record<string, string | undefined>;
}

export const processIo = (): CliIo => ({
  out: (s) => void process.stdout.write(s + '\n'),
  err: (s) => void process.stderr.write(s + '\n'),
  ...(process.stdout.isTTY ? { live: (s: string) => void process.stdout.write(`\r\x1b[K${s}`) } : {}),
  env: process.env,
});

export interface GlobalOptions {
  url?: string;
  token?: string;
  ca?: string;
  json?: boolean;
}

/** What every command needs: the settings (flags > env > config file), the API client, and printing. */
export class CliContext {
  /** The exit code the command asks for (its outcome); errors set theirs in main. */
  exitCode: ExitCode = 0;

  constructor(
    readonly program: Command,
    readonly io: CliIo,
  ) {}

  get opts(): GlobalOptions {
    return this.program.opts<GlobalOptions>();
  }

  get json(): boolean {
    return this.opts.json === true;
  }

  configPath(): string {
    return configPath(this.io.env);
  }

  settings(): { url: string; token?: string; ca?: string } {
    return resolveSettings(this.opts, this.io.env, readConfigFile(this.configPath(), this.io.err));
  }

  client(): ApiClient {
    const s = this.settings();
    if (!s.token) throw new NoTokenError('no API token: run spotlift login, set SPOTLIFT_API_TOKEN, or pass --token');
    return new ApiClient(s.url, s.token, s.ca ? { ca: readFileSync(s.ca) } : {});
  }

  /** JSON (the record as the API gave it) with --json, else the human form. */
  print(value: unknown, human: () => string): void {
    this.io.out(this.json ? JSON.stringify(value, null, 2) : human());
  }

  /** Progress for people; nothing with --json (stdout is then one JSON document). */
  note(line: string): void {
    if (!this.json) this.io.out(line);
  }
}
