import { Controller, Get, Header, NotFoundException, Param, Res } from '@nestjs/common';
import { ApiExcludeController } from '@nestjs/swagger';
import type { Response } from 'express';
import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Public } from '../auth/roles.decorator.js';

/** The dashboard's files: one page, one script, one style sheet (apps/orchestrator/ui). */
const FILES: Record<string, string> = {
  'index.html': 'text/html; charset=utf-8',
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
};

/**
 * The page may load its own files and call this origin, nothing else: no inline script, no third party, and
 * no framing (the token typed into it stays in this tab's sessionStorage).
 */
const CSP =
  "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; " +
  "form-action 'none'; frame-ancestors 'none'; base-uri 'none'";

/** apps/orchestrator/ui, found from src (tests, ts) and from dist (the build) alike. */
export function uiDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, 'apps', 'orchestrator', 'ui');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    dir = dirname(dir);
  }
  throw new Error('dashboard files (apps/orchestrator/ui) not found above ' + fileURLToPath(import.meta.url));
}

/**
 * `/ui`: the dashboard, served without a token (the files hold no data; the page asks for a token and sends it
 * as a bearer header on every call, `GET /events` included). Read once, at first request.
 */
@ApiExcludeController()
@Public()
@Controller('ui')
export class UiController {
  private files: Map<string, Buffer> | undefined;

  @Get()
  @Header('cache-control', 'no-cache')
  page(@Res() res: Response): void {
    this.send(res, 'index.html');
  }

  @Get(':file')
  @Header('cache-control', 'no-cache')
  file(@Param('file') file: string, @Res() res: Response): void {
    this.send(res, file);
  }

  private send(res: Response, name: string): void {
    const type = FILES[name];
    if (!type) throw new NotFoundException(`no such dashboard file: ${name.slice(0, 64)}`);
    this.files ??= new Map(Object.keys(FILES).map((f) => [f, readFileSync(join(uiDir(), f))]));
    res
      .status(200)
      .set({
        'content-type': type,
        'content-security-policy': CSP,
        'x-content-type-options': 'nosniff',
        'referrer-policy': 'no-referrer',
      })
      .send(this.files.get(name));
  }
}
