import { Logger } from '@nestjs/common';
import rateLimit, { normalizeIP } from '@fastify/rate-limit';
import { RouteConfig, type NestFastifyApplication } from '@nestjs/platform-fastify';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import type { Redis } from 'ioredis';
import type { OtterConfig, RateLimit } from '#otter/config';
import { OtterError, OtterExceptionFilter } from '#otter/errors';

/** The unauthenticated device endpoints, grouped by the limits they share (docs/attestation.md, "Floods"). */
export type DeviceRateLimitGroup = 'enrollment' | 'deviceLogin';

declare module 'fastify' {
  interface FastifyContextConfig {
    deviceRateLimit?: DeviceRateLimitGroup;
  }
}

/** Puts a route under its group's per-address and global limits; each route is counted on its own. */
export const RateLimited = (group: DeviceRateLimitGroup): MethodDecorator =>
  RouteConfig({ deviceRateLimit: group });

const WHAT: Record<DeviceRateLimitGroup, string> = {
  enrollment: 'enrollment',
  deviceLogin: 'device login',
};

/** Keys warned about in the current window: one log line per flooding address, not one per request. */
const WARNED_HELD = 10_000;

type Limiter = ReturnType<FastifyInstance['createRateLimit']>;

/**
 * Rate limits on the unauthenticated device routes, counted in Redis (@fastify/rate-limit's Redis store, a
 * Lua INCR + PEXPIRE per check), so every api replica shares one count. Checked in onRequest, before the body
 * is read or any TPM evidence parsed, and only on the routes marked @RateLimited: other routes never wait for
 * it. The per-address limit is checked first, so an address over its own limit does not use up the global
 * one. The address is Fastify's request.ip: the peer, or X-Forwarded-For only from OTTER_TRUSTED_PROXIES;
 * IPv6 addresses count per /64, which is what one subscriber usually gets. If Redis cannot count, the request
 * is refused (503): these routes need Redis anyway (assertion replay cache), and failing open would let a
 * flood through whenever Redis is slow.
 */
export async function registerDeviceRateLimits(
  app: NestFastifyApplication,
  config: OtterConfig,
  redis: Redis,
): Promise<void> {
  await app.register(rateLimit, {
    global: false,
    redis,
    nameSpace: `${config.queuePrefix}:rate-limit:`,
    skipOnError: false,
  });
  const fastify = app.getHttpAdapter().getInstance();
  const logger = new Logger('DeviceRateLimits');
  const errors = new OtterExceptionFilter();
  const warned = new Map<string, number>();
  const timeWindow = config.rateLimits.windowSeconds * 1000;
  const limiters = (limit: RateLimit): { perAddress: Limiter; global: Limiter } => ({
    perAddress: fastify.createRateLimit({
      max: limit.perAddress,
      timeWindow,
      keyGenerator: (request) => `${routeKey(request)}:address:${normalizeIP(request.ip)}`,
    }),
    global: fastify.createRateLimit({
      max: limit.global,
      timeWindow,
      keyGenerator: (request) => `${routeKey(request)}:all`,
    }),
  });
  const groups: Record<DeviceRateLimitGroup, { perAddress: Limiter; global: Limiter }> = {
    enrollment: limiters(config.rateLimits.enrollment),
    deviceLogin: limiters(config.rateLimits.deviceLogin),
  };

  // Hooked per route as Nest registers them (after this), so unmarked routes run no code of this at all.
  fastify.addHook('onRoute', (route) => {
    const group = route.config?.deviceRateLimit;
    if (!group) return;
    const check = async (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
      try {
        await enforce(group, request);
        return undefined;
      } catch (e) {
        errors.respond(e, request, reply);
        return reply;
      }
    };
    route.onRequest = [...(route.onRequest === undefined ? [] : [route.onRequest].flat()), check];
  });

  async function enforce(group: DeviceRateLimitGroup, request: FastifyRequest): Promise<void> {
    for (const scope of ['perAddress', 'global'] as const) {
      let result: Awaited<ReturnType<Limiter>>;
      try {
        result = await groups[group][scope](request);
      } catch (e) {
        logger.error({ reason: (e as Error).message }, 'rate limit store unavailable: request refused');
        throw new OtterError('RATE_LIMIT_UNAVAILABLE', 'the rate limiter cannot count: retry shortly', {
          retryAfterSeconds: 5,
        });
      }
      if (result.isAllowed || !result.isExceeded) continue;
      const retryAfterSeconds = Math.max(1, result.ttlInSeconds);
      warnOnce(group, scope, request, result.key, retryAfterSeconds);
      const from = scope === 'perAddress' ? 'from this address' : 'to this server';
      throw new OtterError(
        'RATE_LIMITED',
        `too many ${WHAT[group]} requests ${from}: retry in ${retryAfterSeconds} s`,
        { retryAfterSeconds, limit: scope === 'perAddress' ? 'address' : 'global', max: result.max },
      );
    }
  }

  function warnOnce(
    group: DeviceRateLimitGroup,
    scope: 'perAddress' | 'global',
    request: FastifyRequest,
    key: string,
    retryAfterSeconds: number,
  ): void {
    const now = Date.now();
    if ((warned.get(key) ?? 0) > now) return;
    if (warned.size >= WARNED_HELD) warned.clear();
    warned.set(key, now + retryAfterSeconds * 1000);
    logger.warn(
      {
        group,
        limit: scope === 'perAddress' ? 'address' : 'global',
        ip: request.ip,
        route: request.routeOptions.url,
      },
      'rate limit reached: refusing with 429 until the window ends',
    );
  }
}

function routeKey(request: FastifyRequest): string {
  return `${request.method}:${request.routeOptions.url ?? request.url}`;
}
