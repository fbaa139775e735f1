import type { FastifyInstance, FastifyRequest } from 'fastify';
import { parseUntrustedJson, UntrustedJsonError } from '#otter/contracts';
import { OtterError, ValidationError } from '#otter/errors';

/**
 * Fastify reads a body before any Nest guard runs, so a body it could not parse used to be answered 400 or
 * 415 before the caller was authenticated. These parsers never fail: they note why the body is unusable on
 * the request, and BodyRefusalInterceptor throws that only after the route's guards let the caller in, so an
 * unauthenticated request is always a 401. (The body size limit still applies first: Fastify stops reading
 * at `bodyLimit`, answering 413, rather than take in an unbounded body.)
 */
const REFUSAL = Symbol('otter.bodyRefusal');

type RequestWithRefusal = FastifyRequest & { [REFUSAL]?: OtterError };

/**
 * Replaces Fastify's body parsers: JSON, read with parseUntrustedJson, and anything else refused as 415.
 * Multipart is added afterwards by its plugin, and read by the route itself, after its guards.
 */
export function registerDeferredBodyParsers(fastify: FastifyInstance): void {
  fastify.removeAllContentTypeParsers();
  fastify.addContentTypeParser('application/json', { parseAs: 'string' }, (request, body, done) => {
    try {
      done(null, parseUntrustedJson(body as string));
    } catch (e) {
      const reason = e instanceof UntrustedJsonError ? e.message : 'not valid JSON';
      refuse(request, new ValidationError(`invalid request body: ${reason}`, { field: '(body)', reason }));
      done(null, undefined);
    }
  });
  // Unread: Node discards what is left of the body once the answer is sent.
  fastify.addContentTypeParser('*', (request, _payload, done) => {
    const contentType = request.headers['content-type'] ?? null;
    refuse(
      request,
      new OtterError(
        'UNSUPPORTED_MEDIA_TYPE',
        'request bodies are application/json (release uploads: multipart/form-data)',
        { contentType },
      ),
    );
    done(null, undefined);
  });
}

/** Why the request's body was refused, if it was. */
export function bodyRefusal(request: FastifyRequest): OtterError | undefined {
  return (request as RequestWithRefusal)[REFUSAL];
}

function refuse(request: FastifyRequest, error: OtterError): void {
  (request as RequestWithRefusal)[REFUSAL] = error;
}
