/** The forensic fixture (test/fixtures/forensic): its images, and what /proc showed before the dump. */
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const FORENSIC_DIR = fileURLToPath(new URL('fixtures/forensic', import.meta.url));
export const IMAGES_DIR = join(FORENSIC_DIR, 'images');
/** The capture's temporary directory: the paths in the images start with it. */
export const WORKDIR = readFileSync(join(IMAGES_DIR, '.workdir'), 'utf8').trim();

export function loadImages(): Record<string, Uint8Array> {
  return Object.fromEntries(
    readdirSync(IMAGES_DIR)
      .filter((n) => !n.startsWith('.'))
      .map((n) => [n, new Uint8Array(readFileSync(join(IMAGES_DIR, n)))]),
  );
}

export interface ProcView {
  pid: number;
  child: number;
  cmdline: string[];
  fds: Record<string, { pos: number; target: string }>;
}

/** /proc of the workload just before `criu dump`, with WORK put back to the real directory. */
export function procView(): ProcView {
  const text = readFileSync(join(FORENSIC_DIR, 'proc.json'), 'utf8').replaceAll('WORK', WORKDIR);
  return JSON.parse(text) as ProcView;
}
