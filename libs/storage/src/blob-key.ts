import { OtterError, ValidationError } from '#otter/errors';
import type { BlobRange } from './blob-store.js';

export const MAX_BLOB_KEY_LENGTH = 512;
/** The usual filesystem name limit (NAME_MAX), applied on every backend so keys work on all of them. */
export const MAX_BLOB_KEY_SEGMENT_LENGTH = 255;

// One or more segments of safe characters joined by single slashes: this alone refuses absolute paths,
// empty segments (`a//b`, trailing `/`), backslashes, NUL and every other byte a filesystem or URL could
// interpret; `.` and `..` segments are refused separately below.
const KEY_SHAPE = /^[A-Za-z0-9._-]+(?:\/[A-Za-z0-9._-]+)*$/;

/** Refuses any key that could escape the store's root or mean different things to different backends. */
export function assertBlobKey(key: unknown): asserts key is string {
  if (typeof key !== 'string' || key.length === 0 || key.length > MAX_BLOB_KEY_LENGTH) {
    throw new ValidationError(`blob key must be 1 to ${MAX_BLOB_KEY_LENGTH} characters`);
  }
  const badSegment = (segment: string): boolean =>
    segment === '.' || segment === '..' || segment.length > MAX_BLOB_KEY_SEGMENT_LENGTH;
  if (!KEY_SHAPE.test(key) || key.split('/').some(badSegment)) {
    throw new ValidationError(
      `blob key must be a relative path of [A-Za-z0-9._-] segments of at most ${MAX_BLOB_KEY_SEGMENT_LENGTH} characters, without . or ..`,
      { key: key.slice(0, 80) },
    );
  }
}

/** Checks the shape of a range; whether it fits the blob is each backend's check against the real length. */
export function assertRangeShape(range: BlobRange): void {
  const { start, end } = range;
  if (!Number.isSafeInteger(start) || !Number.isSafeInteger(end) || start < 0 || end < start) {
    throw rangeNotSatisfiable(range);
  }
}

export function rangeNotSatisfiable(range: BlobRange, length?: number): OtterError {
  return new OtterError('RANGE_NOT_SATISFIABLE', 'requested range is not satisfiable', {
    start: range.start,
    end: range.end,
    ...(length === undefined ? {} : { length }),
  });
}

export function blobNotFound(key: string): OtterError {
  return new OtterError('BLOB_NOT_FOUND', 'blob not found', { key });
}
