import { Readable } from 'node:stream';
import { Logger } from '@nestjs/common';
import type { Multipart } from '@fastify/multipart';
import type { FastifyRequest } from 'fastify';
import { OtterError, ValidationError } from '#otter/errors';

export interface ReleaseUpload {
  fields: Record<string, string>;
  /**
   * The image bytes. It ends only once the whole multipart body has been read and found to end right after
   * the image; a part after the image, or a body cut short or malformed, makes it fail instead, so a
   * consumer that stores the image and only then signs it never signs an upload that meant something else.
   */
  image: Readable;
}

const TEXT_FIELDS = new Set(['hardware', 'version', 'measurements', 'notes']);
const ORDER = 'text fields first, then the image file last';

const logger = new Logger('ReleaseUpload');

type NextPart = () => Promise<Multipart | undefined>;

/**
 * Reads the text fields of a multipart release upload, stopping at the `image` file part so the caller can
 * validate everything before it streams a single image byte.
 */
export async function readReleaseUpload(req: FastifyRequest): Promise<ReleaseUpload> {
  if (!req.isMultipart()) {
    throw new OtterError('UNSUPPORTED_MEDIA_TYPE', `release uploads are multipart/form-data: ${ORDER}`);
  }
  const next = nextPart(req);
  const fields: Record<string, string> = {};
  for (let part = await next(); part; part = await next()) {
    if (part.type === 'file') {
      if (part.fieldname !== 'image') {
        part.file.resume();
        throw new ValidationError(`unexpected file field "${part.fieldname}": the image goes in "image"`, {
          field: part.fieldname,
        });
      }
      // Busboy ends a file stream silently at the size limit; make that an error so a cut image is never stored.
      part.file.once('limit', () =>
        part.file.destroy(
          new OtterError(
            'PAYLOAD_TOO_LARGE',
            'image: larger than the server accepts (OTTER_MAX_UPLOAD_BYTES)',
          ),
        ),
      );
      return { fields, image: Readable.from(imageThenEnd(part.file, next, req), { objectMode: false }) };
    }
    if (!TEXT_FIELDS.has(part.fieldname))
      throw new ValidationError(`unknown field "${part.fieldname}"`, { field: part.fieldname });
    if (part.fieldname in fields)
      throw new ValidationError(`field "${part.fieldname}" given twice`, { field: part.fieldname });
    if (part.valueTruncated)
      throw new ValidationError(`field "${part.fieldname}" is too long`, { field: part.fieldname });
    fields[part.fieldname] = String(part.value);
  }
  throw new ValidationError(`the upload has no "image" file part (${ORDER})`);
}

/** The image's bytes, then proof that the body ends there: no further part, and the closing boundary. */
async function* imageThenEnd(image: Readable, next: NextPart, req: FastifyRequest): AsyncGenerator<Buffer> {
  try {
    for await (const chunk of image) yield chunk as Buffer;
  } catch (e) {
    throw uploadError(e, req);
  }
  const after = await next();
  if (after) {
    if (after.type === 'file') after.file.resume();
    const what =
      after.type === 'file' && after.fieldname === 'image'
        ? 'a second "image" part'
        : `part "${after.fieldname}"`;
    throw new ValidationError(`${what} comes after the image: a release upload is ${ORDER}`, {
      field: after.fieldname,
    });
  }
}

/** The body's parts one at a time; a body that is not well-formed multipart is a 400, never a 500. */
function nextPart(req: FastifyRequest): NextPart {
  let parts: AsyncIterator<Multipart>;
  return async () => {
    try {
      parts ??= req.parts()[Symbol.asyncIterator]();
      const { value, done } = await parts.next();
      return done ? undefined : value;
    } catch (e) {
      throw uploadError(e, req);
    }
  };
}

/**
 * What went wrong reading the body, as the client should hear it. Busboy's own errors (no or wrong boundary,
 * no closing boundary, a malformed part header) are the client's malformed body; a second file is a second
 * image; a client that went away mid-upload is worth an info line, not an error with a stack.
 */
function uploadError(e: unknown, req: FastifyRequest): unknown {
  if (e instanceof OtterError) return e;
  if (req.raw.destroyed && !req.raw.complete) {
    logger.log(
      { reason: (e as Error).message },
      'release upload abandoned: the client closed the connection',
    );
    return new OtterError('UPLOAD_ABORTED', 'the client closed the connection before the upload ended');
  }
  const code = (e as { code?: unknown }).code;
  if (code === 'FST_FILES_LIMIT')
    return new ValidationError(`a second file part: a release upload is ${ORDER}`, { field: 'image' });
  const status = (e as { statusCode?: unknown }).statusCode;
  if (typeof status === 'number' && status >= 400 && status < 500) return e;
  return new ValidationError(`malformed multipart body: ${(e as Error).message}`, {
    reason: (e as Error).message,
  });
}
