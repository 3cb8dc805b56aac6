import { execFile } from 'node:child_process';
import { labDir, labScript } from './paths.js';

export interface ScriptResult {
  stdout: string;
  stderr: string;
}

/**
 * Runs scripts/lab/NAME with bash. Rejects with an Error that carries the script's stderr, so a failing
 * lab step explains itself in the test output.
 */
export function runLabScript(name: string, args: string[], timeoutMs = 120_000): Promise<ScriptResult> {
  const script = labScript(name);
  return new Promise((resolvePromise, reject) => {
    execFile(
      'bash',
      [script, ...args],
      {
        timeout: timeoutMs,
        maxBuffer: 16 * 1024 * 1024,
        env: { ...process.env, SPOTLIFT_LAB_DIR: labDir() },
      },
      (error, stdout, stderr) => {
        if (error) {
          const why = error.killed ? `timed out after ${timeoutMs} ms` : `exit code ${String(error.code)}`;
          reject(
            new Error(`lab: ${name} ${args.join(' ')} failed (${why})\n${stderr.trim()}\n${stdout.trim()}`.trim()),
          );
          return;
        }
        resolvePromise({ stdout, stderr });
      },
    );
  });
}
