import 'reflect-metadata';
import { ConsoleLogger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { AppModule } from './app.module.js';
import { setupApiDocs } from './auth/api-docs.js';
import { ConfigError, loadConfig } from './config/app-config.js';
import { RedisNotDurable } from './core/redis-durability.js';

async function bootstrap(): Promise<void> {
  let config;
  try {
    config = loadConfig();
  } catch (error) {
    if (error instanceof ConfigError) {
      console.error(error.message);
      process.exit(2);
    }
    throw error;
  }
  const logger = new ConsoleLogger({ json: config.logFormat === 'json', prefix: 'spotlift' });
  // HTTPS when SPOTLIFT_TLS_CERT/KEY are set; otherwise plain HTTP (loopback by default, or behind a TLS proxy).
  const app = await NestFactory.create(AppModule.forRoot(config), {
    logger,
    ...(config.api.tls ? { httpsOptions: { cert: config.api.tls.cert, key: config.api.tls.key } } : {}),
  });
  app.enableShutdownHooks();
  setupApiDocs(app, config);
  try {
    await app.listen(config.port, config.host);
  } catch (error) {
    // Refused at start (SPOTLIFT_REDIS_REQUIRE_DURABILITY=refuse): the reason, not a stack trace.
    if (error instanceof RedisNotDurable) {
      logger.error(error.message, 'redis');
      process.exit(3);
    }
    throw error;
  }
  const scheme = config.api.tls ? 'https' : 'http';
  logger.log(
    `listening on ${scheme}://${config.host}:${config.port} (role ${config.role}); ` +
      (config.api.docs ? 'OpenAPI at /docs (viewer token)' : 'no /docs (SPOTLIFT_API_DOCS=false)'),
    'bootstrap',
  );
}

void bootstrap();
