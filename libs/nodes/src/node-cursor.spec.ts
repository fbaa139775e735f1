import { describe, expect, it } from 'vitest';
import { ValidationError } from '#otter/errors';
import { decodeNodeCursor, encodeNodeCursor } from './node-cursor.js';

describe('node list cursor', () => {
  it('round-trips a position', () => {
    const position = { createdAt: '2026-12-07T21:00:00.123Z', id: '0f0e0d0c-aaaa-4bbb-8ccc-123456789abc' };
    expect(decodeNodeCursor(encodeNodeCursor(position))).toEqual(position);
  });

  it.each([
    ['not base64 JSON', '!!!'],
    ['JSON of another shape', Buffer.from('{"a":1}').toString('base64url')],
    ['a time that is not one', Buffer.from('["yesterday","x"]').toString('base64url')],
    [
      'an id too long',
      Buffer.from(JSON.stringify(['2026-12-07T21:00:00Z', 'x'.repeat(65)])).toString('base64url'),
    ],
  ])('refuses %s with a 400 naming the cursor', (_, cursor) => {
    expect(() => decodeNodeCursor(cursor)).toThrow(ValidationError);
    expect(() => decodeNodeCursor(cursor)).toThrow(/cursor/);
  });
});
