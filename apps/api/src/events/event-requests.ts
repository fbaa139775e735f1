import type { z } from 'zod';
import { STREAM_ID_PATTERN, type eventFilterQuerySchema } from '#otter/contracts';
import { ValidationError } from '#otter/errors';
import type { EventStreamRequest } from './event-stream.service.js';

/**
 * The stream request from GET /api/v1/events's query and Last-Event-ID header (the header wins: it is what an
 * EventSource sends when it reconnects to the URL it first opened). A bad filter is a 400 naming it.
 */
export function parseEventQuery(
  schema: typeof eventFilterQuerySchema,
  query: unknown,
  lastEventIdHeader: string | undefined,
): EventStreamRequest {
  const result = schema.safeParse(query ?? {});
  if (!result.success) {
    const issue = result.error.issues[0];
    const keys = issue && issue.code === 'unrecognized_keys' ? issue.keys : [];
    // The query parameter, not the position inside a repeated one (`kind`, not `kind.1`).
    const field = String(issue?.path[0] ?? keys[0] ?? '(query)');
    const reason = issue?.message ?? 'invalid query';
    throw new ValidationError(`invalid query: ${field}: ${reason}`, { field, reason });
  }
  const q: z.infer<typeof eventFilterQuerySchema> = result.data;
  let lastEventId = q.lastEventId;
  if (lastEventIdHeader !== undefined) {
    if (!STREAM_ID_PATTERN.test(lastEventIdHeader))
      throw new ValidationError('Last-Event-ID: a stream id like 1765000000000-0', {
        field: 'Last-Event-ID',
      });
    lastEventId = lastEventIdHeader;
  }
  return {
    filter: { kinds: q.kind, rolloutId: q.rollout, nodeId: q.node, hardwareId: q.hardware },
    lastEventId,
    follow: q.follow,
  };
}
