import type { INestApplication } from '@nestjs/common';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import type { NextFunction, Request, Response } from 'express';
import type { AppConfig } from '../config/app-config.js';
import { decide } from './access-policy.js';
import { AuditRecorder } from './audit-recorder.js';
import { TokenService } from './token-service.js';

const DOCS = '/docs';

/**
 * OpenAPI at /docs (UI) and /docs/openapi.json, behind a viewer token: the schema lists every route and body,
 * which is reconnaissance for free if public. Swagger's routes are plain Express routes, outside Nest's guards,
 * so the same check runs here as Express middleware, registered before them. SPOTLIFT_API_DOCS=false serves none.
 */
export function setupApiDocs(app: INestApplication, config: AppConfig): void {
  if (!config.api.docs) return;
  const tokens = app.get(TokenService);
  const audit = app.get(AuditRecorder);
  app.use(DOCS, (req: Request, res: Response, next: NextFunction) => {
    void (async () => {
      const auth = await tokens.authenticate(req.headers.authorization);
      const denied = !auth.ok
        ? { status: 401, message: `a valid bearer token is required (${auth.reason})` }
        : (() => {
            const d = decide(auth.principal, { role: 'viewer' }, {});
            return d.ok ? undefined : { status: 403, message: d.message };
          })();
      if (!denied) return next();
      // req.path is relative to the mount point here: the log gets the full path
      const seen = { method: req.method, path: req.baseUrl + req.path, ...(req.ip ? { ip: req.ip } : {}) };
      audit.recordWhenDone(seen, res, {
        ...(auth.ok ? { principal: auth.principal } : auth.tokenId ? { tokenId: auth.tokenId } : {}),
        denied: denied.message,
      });
      res.status(denied.status).json({ code: `http_${denied.status}`, message: denied.message });
    })().catch(next);
  });
  const doc = new DocumentBuilder()
    .setTitle('spotlift')
    .setDescription('Live migration of running processes off spot nodes, with CRIU')
    .setVersion('0.1.0')
    .addBearerAuth()
    .build();
  // JSON only, under /docs: the default YAML copy would sit at /docs-yaml, outside the check above.
  SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, doc), {
    jsonDocumentUrl: 'docs/openapi.json',
    raw: ['json'],
  });
}
