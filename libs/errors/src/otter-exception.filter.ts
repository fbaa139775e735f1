import { randomUUID } from 'node:crypto';
import { Catch, HttpException, Logger, type ArgumentsHost, type ExceptionFilter } from '@nestjs/common';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { ErrorBody } from './error-body.js';
import { OtterError } from './otter-error.js';

/** Maps domain error codes to HTTP statuses; anything unknown becomes a 500 with an error id in the log. */
@Catch()
export class OtterExceptionFilter implements ExceptionFilter {
  private readonly logger = new Logger('OtterExceptionFilter');

  catch(exception: unknown, host: ArgumentsHost): void {
    this.respond(
      exception,
      host.switchToHttp().getRequest<FastifyRequest>(),
      host.switchToHttp().getResponse(),
    );
  }

  /** The same answer for a plain Fastify route, which Nest's filters never see. */
  respond(exception: unknown, request: FastifyRequest, reply: FastifyReply): void {
    const body = this.toBody(exception);
    void reply.status(body.statusCode).header('cache-control', 'no-store');
    const retryAfter = body.details?.retryAfterSeconds;
    if (typeof retryAfter === 'number')
      void reply.header('retry-after', String(Math.max(1, Math.ceil(retryAfter))));
    // Refused before its body was read: Node drains what is left of a small body so the connection stays
    // usable, but closing before a client has finished writing makes it see EPIPE instead of this answer.
    // A large or unsized body (an image upload) is not worth receiving just to discard it: close instead.
    if (!request.raw.complete && !isSmallBody(request)) void reply.header('connection', 'close');
    void reply.send(body);
  }

  private toBody(exception: unknown): ErrorBody {
    if (exception instanceof OtterError) {
      return {
        statusCode: exception.status,
        code: exception.code,
        message: exception.message,
        details: exception.details,
      };
    }
    if (exception instanceof HttpException) {
      const status = exception.getStatus();
      const response = exception.getResponse();
      const message =
        typeof response === 'string'
          ? response
          : String((response as { message?: unknown }).message ?? exception.message);
      return { statusCode: status, code: httpCode(status), message };
    }
    const fastifyError = exception as { statusCode?: unknown; code?: unknown; message?: unknown };
    if (
      typeof fastifyError.statusCode === 'number' &&
      fastifyError.statusCode >= 400 &&
      fastifyError.statusCode < 500
    ) {
      return {
        statusCode: fastifyError.statusCode,
        code: httpCode(fastifyError.statusCode),
        message: String(fastifyError.message),
      };
    }
    const errorId = randomUUID();
    this.logger.error({ errorId, err: exception }, 'unhandled error');
    return { statusCode: 500, code: 'INTERNAL', message: 'internal error', errorId };
  }
}

/** Bodies up to this size are read and discarded after a refusal rather than cut off. */
const DRAINED_BODY_LIMIT = 1024 * 1024;

function isSmallBody(request: FastifyRequest): boolean {
  const length = Number(request.headers['content-length']);
  return Number.isFinite(length) && length <= DRAINED_BODY_LIMIT;
}

function httpCode(status: number): string {
  const known: Record<number, string> = {
    400: 'BAD_REQUEST',
    401: 'UNAUTHENTICATED',
    403: 'FORBIDDEN',
    404: 'NOT_FOUND',
    405: 'METHOD_NOT_ALLOWED',
    406: 'NOT_ACCEPTABLE',
    413: 'PAYLOAD_TOO_LARGE',
    415: 'UNSUPPORTED_MEDIA_TYPE',
    416: 'RANGE_NOT_SATISFIABLE',
    429: 'TOO_MANY_REQUESTS',
  };
  return known[status] ?? `HTTP_${status}`;
}
