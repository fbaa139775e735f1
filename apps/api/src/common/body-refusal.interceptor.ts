import { Injectable, type CallHandler, type ExecutionContext, type NestInterceptor } from '@nestjs/common';
import type { FastifyRequest } from 'fastify';
import type { Observable } from 'rxjs';
import { bodyRefusal } from './deferred-body.js';

/**
 * Interceptors run after every guard: a body refused while it was parsed is answered only to a caller the
 * route's guards let in (deferred-body.ts).
 */
@Injectable()
export class BodyRefusalInterceptor implements NestInterceptor {
  intercept(context: ExecutionContext, next: CallHandler): Observable<unknown> {
    const refusal = bodyRefusal(context.switchToHttp().getRequest<FastifyRequest>());
    if (refusal) throw refusal;
    return next.handle();
  }
}
