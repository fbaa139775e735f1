import type { FastifyInstance } from 'fastify';
import { METRICS, type OtterMetrics } from '#otter/metrics';

/** The route label of a request that matched no route: raw URLs would let any client mint new series. */
export const UNMATCHED_ROUTE = 'unmatched';

/** Times every request by its route template (`/api/v1/nodes/:id`, never the raw URL) and status code. */
export function recordHttpDurations(fastify: FastifyInstance, metrics: OtterMetrics): void {
  const durations = metrics.histogram(METRICS.httpRequestDuration);
  fastify.addHook('onResponse', (request, reply, done) => {
    durations.observe(
      {
        method: request.method,
        route: request.routeOptions.url ?? UNMATCHED_ROUTE,
        status: String(reply.statusCode),
      },
      reply.elapsedTime / 1000,
    );
    done();
  });
}
