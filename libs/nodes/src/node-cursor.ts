import { ValidationError } from '#otter/errors';
import type { NodePagePosition } from './node-list.repository.js';

/**
 * The node list's cursor: the last node of a page as base64url JSON. Opaque to clients (they pass back what
 * they got); checked on the way in, because it comes back from the outside like any query parameter.
 */
export function encodeNodeCursor(position: NodePagePosition): string {
  return Buffer.from(JSON.stringify([position.createdAt, position.id])).toString('base64url');
}

const ISO_TIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?(?:Z|[+-]\d{2}:\d{2})$/;

export function decodeNodeCursor(cursor: string): NodePagePosition {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (
    !Array.isArray(parsed) ||
    parsed.length !== 2 ||
    typeof parsed[0] !== 'string' ||
    typeof parsed[1] !== 'string' ||
    !ISO_TIME.test(parsed[0]) ||
    parsed[1].length > 64
  ) {
    throw new ValidationError('invalid query: cursor: not a cursor this list returned', {
      field: 'cursor',
      reason: 'not a cursor this list returned',
    });
  }
  return { createdAt: parsed[0], id: parsed[1] };
}
