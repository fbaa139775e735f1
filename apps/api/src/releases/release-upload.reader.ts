import type { FastifyRequest } from 'fastify';
import type { Readable } from 'node:stream';
import { OtterError, ValidationError } from '#otter/errors';

export interface ReleaseUpload {
  fields: Record<string, string>;
  image: Readable;
}

const TEXT_FIELDS = new Set(['hardware', 'version', 'measurements', 'notes']);

/**
 * Reads the text fields of a multipart release upload, stopping at the `image` file part so the caller can
 * validate everything before it streams a single image byte.
 */
export async function readReleaseUpload(req: FastifyRequest): Promise<ReleaseUpload> {
  if (!req.isMultipart()) {
    throw new OtterError(
      'UNSUPPORTED_MEDIA_TYPE',
      'release uploads are multipart/form-data: text fields, then the image file',
    );
  }
  const fields: Record<string, string> = {};
  for await (const part of req.parts()) {
    if (part.type === 'file') {
      if (part.fieldname !== 'image')
        throw new ValidationError(`unexpected file field "${part.fieldname}": the image goes in "image"`);
      // Busboy ends a file stream silently at the size limit; make that an error so a cut image is never stored.
      part.file.once('limit', () =>
        part.file.destroy(
          new OtterError(
            'PAYLOAD_TOO_LARGE',
            'image: larger than the server accepts (OTTER_MAX_UPLOAD_BYTES)',
          ),
        ),
      );
      return { fields, image: part.file };
    }
    if (!TEXT_FIELDS.has(part.fieldname))
      throw new ValidationError(`unknown field "${part.fieldname}"`, { field: part.fieldname });
    if (part.fieldname in fields)
      throw new ValidationError(`field "${part.fieldname}" given twice`, { field: part.fieldname });
    if (part.valueTruncated)
      throw new ValidationError(`field "${part.fieldname}" is too long`, { field: part.fieldname });
    fields[part.fieldname] = String(part.value);
  }
  throw new ValidationError('the upload has no "image" file part (text fields first, then the image)');
}
