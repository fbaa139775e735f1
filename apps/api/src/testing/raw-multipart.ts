/** One part of a hand-built multipart body: a text field, or a file when `filename` is given. */
export interface RawPart {
  name: string;
  value: string | Buffer;
  filename?: string;
}

/**
 * A multipart/form-data body written byte by byte, so a test can send what no well-behaved client would:
 * parts in any order, a body without its closing boundary, a boundary other than the header's.
 */
export function rawMultipart(
  boundary: string,
  parts: readonly RawPart[],
  options: { close?: boolean } = {},
): Buffer {
  const chunks: Buffer[] = [];
  for (const part of parts) {
    const disposition =
      `Content-Disposition: form-data; name="${part.name}"` +
      (part.filename === undefined
        ? ''
        : `; filename="${part.filename}"\r\nContent-Type: application/octet-stream`);
    chunks.push(
      Buffer.from(`--${boundary}\r\n${disposition}\r\n\r\n`),
      Buffer.from(part.value),
      Buffer.from('\r\n'),
    );
  }
  if (options.close !== false) chunks.push(Buffer.from(`--${boundary}--\r\n`));
  return Buffer.concat(chunks);
}
