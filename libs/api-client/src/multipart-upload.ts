import { randomBytes } from 'node:crypto';
import { constants, createReadStream } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { Readable } from 'node:stream';

/** Bytes read from disk per chunk; bounds memory regardless of image size. */
const UPLOAD_CHUNK_BYTES = 1024 * 1024;
const CRLF = '\r\n';

export interface MultipartFilePart {
  field: string;
  path: string;
  filename: string;
  contentType: string;
}

export interface MultipartUpload {
  /** The full `content-type` header value, boundary included. */
  contentType: string;
  /** Exact byte length of `body`, known up front so the server can refuse an oversize upload before reading it. */
  contentLength: number;
  /** The file's size; what progress is reported against. */
  fileBytes: number;
  body: Readable;
}

/** An image that changed size between stat and upload; the body would no longer match its content-length. */
export class UploadSourceError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'UploadSourceError';
  }
}

/**
 * A multipart/form-data body: the text fields in the given order, then one file part streamed from disk,
 * then the closing boundary. Nothing but the current chunk of the file is held in memory.
 * `onProgress(fileBytesSent, fileBytes)` runs each time the consumer has taken a chunk of the file.
 */
export async function createMultipartUpload(
  fields: ReadonlyArray<readonly [name: string, value: string]>,
  file: MultipartFilePart,
  onProgress?: (sent: number, total: number) => void,
): Promise<MultipartUpload> {
  const info = await stat(file.path);
  if (!info.isFile()) throw new UploadSourceError(`${file.path} is not a regular file`);
  // Fail on an unreadable file now rather than halfway into the request.
  await access(file.path, constants.R_OK);
  const size = info.size;

  const boundary = `----OtterFormBoundary${randomBytes(16).toString('hex')}`;
  let head = '';
  for (const [name, value] of fields) {
    head += `--${boundary}${CRLF}Content-Disposition: form-data; name="${headerParam(name)}"${CRLF}${CRLF}${value}${CRLF}`;
  }
  head +=
    `--${boundary}${CRLF}` +
    `Content-Disposition: form-data; name="${headerParam(file.field)}"; filename="${headerParam(file.filename)}"${CRLF}` +
    `Content-Type: ${file.contentType}${CRLF}${CRLF}`;
  const headBytes = Buffer.from(head, 'utf8');
  const tailBytes = Buffer.from(`${CRLF}--${boundary}--${CRLF}`, 'utf8');

  async function* chunks(): AsyncGenerator<Buffer> {
    yield headBytes;
    let sent = 0;
    if (size > 0) {
      // `end` caps the read at the stat'ed size: a file that grows mid-upload cannot overrun content-length.
      const stream = createReadStream(file.path, {
        start: 0,
        end: size - 1,
        highWaterMark: UPLOAD_CHUNK_BYTES,
      });
      for await (const chunk of stream as AsyncIterable<Buffer>) {
        yield chunk;
        sent += chunk.length;
        onProgress?.(sent, size);
      }
    }
    if (sent !== size) {
      throw new UploadSourceError(`${file.path} shrank while uploading (${sent} of ${size} bytes read)`);
    }
    if (size === 0) onProgress?.(0, 0);
    yield tailBytes;
  }

  return {
    contentType: `multipart/form-data; boundary=${boundary}`,
    contentLength: headBytes.length + size + tailBytes.length,
    fileBytes: size,
    body: Readable.from(chunks(), { objectMode: false, highWaterMark: UPLOAD_CHUNK_BYTES }),
  };
}

/** Quoted header parameters cannot carry quotes, backslashes, line breaks or non-ASCII reliably. */
function headerParam(value: string): string {
  return value.replace(/[^\x20-\x7e]|["\\]/g, '_');
}
