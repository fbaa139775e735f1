import { createParser, type EventSourceMessage } from 'eventsource-parser';
import { STREAM_RESET_EVENT, otterEventSchema, type EventTicketDto, type OtterEvent } from '#otter/contracts';
import { OtterApiClient } from './otter-api-client.js';

export interface EventStreamOptions {
  /** Keep the stream open for new events; otherwise it ends once what the stream holds is sent. */
  follow?: boolean;
  kinds?: string[];
  rolloutId?: string;
  nodeId?: string;
  hardwareId?: string;
  /** Resume after this stream id (sent as Last-Event-ID); `0-0` from the oldest event held. */
  lastEventId?: string;
  signal?: AbortSignal;
}

/** What the stream yields: an event with its stream id, or the notice that events were lost to retention. */
export type StreamedMessage =
  | { type: 'event'; id: string; event: OtterEvent }
  | { type: 'reset'; lastEventId: string; oldestId: string | null };

/** The event stream (`/api/v1/events`, docs/events.md). */
export class EventsClient extends OtterApiClient {
  issueEventTicket(): Promise<EventTicketDto> {
    return this.request<EventTicketDto>('POST', 'api/v1/events/tickets');
  }

  /** The stream's messages in order; ends when the server ends the stream (or `signal` aborts). */
  async *events(options: EventStreamOptions = {}): AsyncGenerator<StreamedMessage> {
    const query = new URLSearchParams();
    for (const kind of options.kinds ?? []) query.append('kind', kind);
    if (options.rolloutId) query.set('rollout', options.rolloutId);
    if (options.nodeId) query.set('node', options.nodeId);
    if (options.hardwareId) query.set('hardware', options.hardwareId);
    if (!options.follow) query.set('follow', 'false');
    const response = await this.openStream(
      `api/v1/events${query.size > 0 ? `?${query}` : ''}`,
      {
        accept: 'text/event-stream',
        ...(options.lastEventId ? { 'last-event-id': options.lastEventId } : {}),
      },
      options.signal,
    );
    const queue: EventSourceMessage[] = [];
    const parser = createParser({ onEvent: (message) => queue.push(message) });
    const decoder = new TextDecoder();
    try {
      for await (const chunk of response.body ?? []) {
        parser.feed(decoder.decode(chunk as Uint8Array, { stream: true }));
        for (const message of queue.splice(0)) {
          const parsed = toMessage(message);
          if (parsed) yield parsed;
        }
      }
    } catch (e) {
      if (!options.signal?.aborted) throw e;
    }
  }
}

function toMessage(message: EventSourceMessage): StreamedMessage | undefined {
  const data = JSON.parse(message.data) as unknown;
  if (message.event === STREAM_RESET_EVENT) {
    const reset = data as { lastEventId: string; oldestId: string | null };
    return { type: 'reset', lastEventId: reset.lastEventId, oldestId: reset.oldestId };
  }
  // A kind this client does not know (a newer server) is skipped rather than shown half-understood.
  const event = otterEventSchema.safeParse(data);
  if (!event.success || message.id === undefined) return undefined;
  return { type: 'event', id: message.id, event: event.data };
}
