/** The Redis keys of the event stream and its tickets, under the deployment's OTTER_QUEUE_PREFIX. */
export function eventStreamKey(prefix: string): string {
  return `${prefix}:events`;
}

export function eventTicketKey(prefix: string, ticket: string): string {
  return `${prefix}:events:ticket:${ticket}`;
}

/** The one field of a stream entry: the event as JSON. */
export const EVENT_FIELD = 'e';
