import type { IncomingMessage } from 'node:http';
import { Logger } from '@nestjs/common';
import { RouteConfig } from '@nestjs/platform-fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { OtterError, OtterExceptionFilter } from '#otter/errors';

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The handler reads the body as a stream for as long as it takes (release uploads): no deadline. */
    streamsRequestBody?: boolean;
  }
}

/**
 * Exempts a route from the request deadline. Only for routes that authenticate before they read the body,
 * so an unauthenticated client cannot use the exemption to hold a connection open.
 */
export const StreamsRequestBody = (): MethodDecorator => RouteConfig({ streamsRequestBody: true });

/**
 * A client must deliver a request's headers and its whole body within `seconds` (OTTER_REQUEST_TIMEOUT_SECONDS),
 * or it is answered 408 and its connection closed: a slow sender (slowloris) cannot hold a connection, and
 * the memory of a half-read body, for ever. Node's own requestTimeout would do the same for every route, but
 * also cut release uploads that take longer, and Fastify's handlerTimeout would cut long image downloads
 * too; this deadline ends once the request has arrived, whatever the answer then takes to stream.
 */
export function enforceRequestDeadline(fastify: FastifyInstance, seconds: number): void {
  const logger = new Logger('RequestDeadline');
  const errors = new OtterExceptionFilter();
  // Node checks this every 30 s (connectionsCheckingInterval): headers arrive within `seconds` plus that.
  fastify.server.headersTimeout = seconds * 1000;
  fastify.addHook('onRequest', (request, reply, done) => {
    if (!hasBody(request.raw) || request.raw.complete || request.routeOptions.config.streamsRequestBody) {
      done();
      return;
    }
    const timer = setTimeout(() => expire(request, reply), seconds * 1000);
    // 'end' once the body is read (or drained after an early answer), 'close' if the client went away.
    const clear = (): void => clearTimeout(timer);
    request.raw.once('end', clear);
    request.raw.once('close', clear);
    done();
  });

  function expire(request: FastifyRequest, reply: FastifyReply): void {
    if (request.raw.complete) return;
    logger.warn(
      { ip: request.ip, method: request.method, url: request.routeOptions.url, seconds },
      'request body too slow: connection closed',
    );
    const socket = request.raw.socket;
    if (reply.sent) {
      // Already answered (say, refused before its body was read) while Node drains the rest: stop draining.
      socket.destroy();
      return;
    }
    void reply.header('connection', 'close');
    reply.raw.once('finish', () => socket.destroy());
    errors.respond(
      new OtterError('REQUEST_TIMEOUT', `the request did not arrive within ${seconds} s`),
      request,
      reply,
    );
  }
}

function hasBody(raw: IncomingMessage): boolean {
  const length = raw.headers['content-length'];
  return raw.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}
