import {
  type CanActivate,
  type ExecutionContext,
  Injectable,
  SetMetadata,
  UnauthorizedException,
} from '@nestjs/common';
import { Reflector } from '@nestjs/core';
import { timingSafeEqual } from 'node:crypto';
import type { Request } from 'express';
import { AppConfig } from '../config/app-config.js';

const PUBLIC = 'spotlift:public';
/** Marks a route that needs no token (health probes). */
export const Public = () => SetMetadata(PUBLIC, true);

/** Bearer-token auth on every route but the public ones; compared in constant time. */
@Injectable()
export class AuthGuard implements CanActivate {
  private readonly token: Buffer;

  constructor(
    config: AppConfig,
    private readonly reflector: Reflector,
  ) {
    this.token = Buffer.from(config.apiToken);
  }

  canActivate(context: ExecutionContext): boolean {
    if (this.reflector.getAllAndOverride<boolean>(PUBLIC, [context.getHandler(), context.getClass()])) return true;
    const header = context.switchToHttp().getRequest<Request>().headers.authorization ?? '';
    const given = Buffer.from(header.startsWith('Bearer ') ? header.slice(7) : '');
    if (given.length === this.token.length && timingSafeEqual(given, this.token)) return true;
    throw new UnauthorizedException('a valid bearer token is required (Authorization: Bearer <SPOTLIFT_API_TOKEN>)');
  }
}
