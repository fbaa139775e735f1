import { z } from 'zod';
import { STREAM_ID_PATTERN, type EventFilterQuery } from '#otter/contracts';
import type { EventStreamRequest } from './event-stream.service.js';

/** What an EventSource sends when it reconnects to the URL it first opened. */
export const lastEventIdHeaderSchema = z
  .string()
  .regex(STREAM_ID_PATTERN, 'a stream id like 1765000000000-0')
  .optional()
  .meta({ description: 'Resume after this stream id (what an EventSource sends when it reconnects).' });

/**
 * The stream request from GET /api/v1/events's query and Last-Event-ID header (the header wins: it is what an
 * EventSource sends when it reconnects to the URL it first opened).
 */
export function eventStreamRequest(
  q: EventFilterQuery,
  lastEventIdHeader: string | undefined,
): EventStreamRequest {
  return {
    filter: { kinds: q.kind, rolloutId: q.rollout, nodeId: q.node, hardwareId: q.hardware },
    lastEventId: lastEventIdHeader ?? q.lastEventId,
    follow: q.follow,
  };
}
