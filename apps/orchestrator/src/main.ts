import 'reflect-metadata';
import { ConsoleLogger } from '@nestjs/common';
import { NestFactory } from '@nestjs/core';
import { DocumentBuilder, SwaggerModule } from '@nestjs/swagger';
import { AppModule } from './app.module.js';
import { ConfigError, loadConfig } from './config/app-config.js';

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
  const app = await NestFactory.create(AppModule.forRoot(config), { logger });
  app.enableShutdownHooks();
  const doc = new DocumentBuilder()
    .setTitle('spotlift')
    .setDescription('Live migration of running processes off spot nodes, with CRIU')
    .setVersion('0.1.0')
    .addBearerAuth()
    .build();
  SwaggerModule.setup('docs', app, () => SwaggerModule.createDocument(app, doc), {
    jsonDocumentUrl: 'docs/openapi.json',
  });
  await app.listen(config.port, config.host);
  logger.log(`listening on http://${config.host}:${config.port} (role ${config.role}); OpenAPI at /docs`, 'bootstrap');
}

void bootstrap();
